"""Load a linked Image for an engine's executor (native or unicorn)."""

from __future__ import annotations

from typing import Any

from jitbpf.engines import EngineSpec

from . import abi
from .link import Image


def load_image(image: Image, program: Any, spec: EngineSpec, **options: Any):
    """The callable ``f(r1..r5) -> r0`` running ``image`` for ``program`` on spec.executor."""
    functions = [abi.function_symbol(slot) for slot in program.functions]
    if spec.executor == "native":
        from .native import NativeCode
        return NativeCode(image, program.runtime, abi.ENTRY, functions)
    from .emulated import EmulatedCode
    return EmulatedCode(image, program.runtime, abi.ENTRY, functions, **options)
