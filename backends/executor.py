"""What the two executors share: placing an Image and the run protocol; and
``load_image``, which picks the executor an engine asks for."""

from __future__ import annotations

from typing import Any

from jitbpf.engines import EngineSpec
from jitbpf.errors import BpfRuntimeError
from jitbpf.runtime import Region, Runtime

from . import abi
from .link import Image


class LoadedCode:
    """An Image placed at ``base`` for a runtime; call it with r1..r5 to run the entry.

    Subclasses say which regions a run needs (``run_regions``), how to run from the
    outermost frame (``_enter``) and how to run a callback from inside a helper
    (``_nested``). During a run ``rt.invoke`` reaches this code's functions; a pending
    helper error or program end is settled by ``Runtime.finish_unwind``.
    """

    image: Image
    rt: Runtime
    base: int

    def _place(self, image: Image, rt: Runtime, base: int, entry: str, function_symbols: list[str] | None) -> None:
        self.image, self.rt, self.base = image, rt, base
        self.entry_address = image.address_of(base, entry)
        self.functions = {image.address_of(base, n) for n in (function_symbols or [entry])}

    def run_regions(self) -> list[Region]:
        raise NotImplementedError

    def _enter(self, address: int, args: tuple[int, ...]) -> int:
        raise NotImplementedError

    def _nested(self, address: int, args: tuple[int, ...]) -> int:
        raise NotImplementedError

    def __call__(self, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0, r5: int = 0) -> int:
        rt = self.rt
        outer_invoke = rt.invoke
        rt.invoke = self.invoke
        try:
            with rt.mapped(*self.run_regions()):
                r0 = self._enter(self.entry_address, (r1, r2, r3, r4, r5))
        except BpfRuntimeError:
            rt.finish_unwind(0)            # a helper's error, if any, explains the fault better
            raise
        finally:
            rt.invoke = outer_invoke
        return rt.finish_unwind(r0)

    def invoke(self, pointer: int, *args: int) -> int:
        """Call a BPF function pointer (a function of this image) from a helper."""
        if pointer not in self.functions:
            raise BpfRuntimeError(f"0x{pointer:x} is not a BPF function of this program")
        return self._nested(pointer, args)

    def address(self, symbol: str) -> int:
        return self.image.address_of(self.base, symbol)


def load_image(image: Image, program: Any, spec: EngineSpec, **options: Any):
    """The callable ``f(r1..r5) -> r0`` running ``image`` for ``program`` on spec.executor."""
    functions = [abi.function_symbol(slot) for slot in program.functions]
    if spec.executor == "native":
        from .native import NativeCode
        return NativeCode(image, program.runtime, abi.ENTRY, functions)
    from .emulated import EmulatedCode
    return EmulatedCode(image, program.runtime, abi.ENTRY, functions, **options)
