"""Executors: load a linked Image and run it natively (``native``) or in unicorn."""

from __future__ import annotations

from typing import Any

from .. import abi
from ..link import Image
from .loaded import LoadedCode, RunOptions

__all__ = ["load_image", "LoadedCode", "RunOptions"]


def load_image(image: Image, runtime: Any, functions: list[int], executor: str, run: RunOptions,
               **options: Any) -> LoadedCode:
    """The callable ``f(r1..r5) -> r0`` running ``image`` (BPF functions at slots
    ``functions``) over ``runtime``'s maps and helpers on ``executor``."""
    symbols = [abi.function_symbol(slot) for slot in functions]
    if executor == "native":
        from .native import NativeCode
        return NativeCode(image, runtime, abi.ENTRY, symbols, run)
    from .emulated import EmulatedCode
    return EmulatedCode(image, runtime, abi.ENTRY, symbols, run, **options)
