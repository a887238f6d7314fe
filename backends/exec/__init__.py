"""Executors: load a linked Image and run it natively (``native``) or in unicorn."""

from __future__ import annotations

from typing import Any

from .. import abi
from ..link import Image
from .loaded import LoadedCode, RunOptions

__all__ = ["load_image", "LoadedCode", "RunOptions"]


def load_image(image: Image, program: Any, executor: str, run: RunOptions, **options: Any) -> LoadedCode:
    """The callable ``f(r1..r5) -> r0`` running ``image`` for ``program`` on ``executor``."""
    functions = [abi.function_symbol(slot) for slot in program.functions]
    if executor == "native":
        from .native import NativeCode
        return NativeCode(image, program.runtime, abi.ENTRY, functions, run)
    from .emulated import EmulatedCode
    return EmulatedCode(image, program.runtime, abi.ENTRY, functions, run, **options)
