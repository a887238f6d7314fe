"""Turn hardware faults in native JIT code into BpfRuntimeError instead of a dead process.

A guarded call goes through a small assembly trampoline that saves the callee-saved
registers and the stack pointer in a guard record, then calls the JIT code. A
SIGSEGV/SIGBUS/SIGILL/SIGFPE handler (also assembly; no Python runs in signal
context) checks that the faulting instruction lies inside the code range of the
running image; if so it records the fault address and pc and rewrites the signal
context so that, when the kernel returns from the handler, execution resumes in
the trampoline's epilogue with the saved stack pointer — the call simply returns,
and Python raises the error. Faults anywhere else go to the previously installed
handler (e.g. Python's faulthandler) or the default action, exactly as before.

This catches wild reads/writes that hit unmapped or protected memory; it cannot
notice a stray write that lands in mapped memory, which is what the bounds-checked
compile option and the verifier are for. Implemented for x86_64 Linux hosts;
elsewhere ``available()`` is False and native code runs unguarded.
"""

from __future__ import annotations

import ctypes
import platform
import signal
import struct
import threading

from jitbpf.errors import BpfRuntimeError
from jitbpf.runtime.memory import HostBuffer

# Guard record layout (8-byte fields); the part up to RECORD_SIZE is saved and restored
# around nested guarded calls, the rest is static.
ACTIVE, SAVED_RSP, CODE_LO, CODE_HI, FAULTED, FAULT_ADDR, FAULT_PC, FAULT_SIG, ARGS = \
    (8 * i for i in range(9))
RECORD_SIZE = ARGS + 8 * 7            # args: function pointer, r1..r5 and the run state
SIGACTION_DFL = RECORD_SIZE           # a zeroed 32-byte kernel sigaction: SIG_DFL
PREV_TABLE = SIGACTION_DFL + 32       # previous handler per signal number (0..63)
CHAINED = PREV_TABLE + 64 * 8         # per signal: already passed on once (breaks handler cycles)
STATIC_SIZE = CHAINED + 64 * 8

# x86_64 Linux (glibc) ucontext_t / siginfo_t offsets.
UC_RSP, UC_RIP, UC_RAX = 40 + 15 * 8, 40 + 16 * 8, 40 + 13 * 8
SI_ADDR = 16
SIGNALS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE)
SA_SIGINFO, SA_ONSTACK = 4, 0x0800_0000

_TRAMPOLINE = """
    push rbx; push rbp; push r12; push r13; push r14; push r15
    sub rsp, 8
    mov [rdi + {SAVED_RSP}], rsp
    mov qword ptr [rdi + {FAULTED}], 0
    mov qword ptr [rdi + {ACTIVE}], 1
    mov rax, [rdi + {ARGS}]
    mov rsi, [rdi + {ARGS} + 16]
    mov rdx, [rdi + {ARGS} + 24]
    mov rcx, [rdi + {ARGS} + 32]
    mov r8,  [rdi + {ARGS} + 40]
    mov r9,  [rdi + {ARGS} + 48]
    mov rbx, rdi
    mov rdi, [rdi + {ARGS} + 8]
    call rax
    mov qword ptr [rbx + {ACTIVE}], 0
epilogue:
    add rsp, 8
    pop r15; pop r14; pop r13; pop r12; pop rbp; pop rbx
    ret
handler:
    movabs r11, {RECORD}
    cmp qword ptr [r11 + {ACTIVE}], 0
    je not_ours
    mov rax, [rdx + {UC_RIP}]
    cmp rax, [r11 + {CODE_LO}]
    jb not_ours
    cmp rax, [r11 + {CODE_HI}]
    jae not_ours
    mov [r11 + {FAULT_PC}], rax
    mov rax, [rsi + {SI_ADDR}]
    mov [r11 + {FAULT_ADDR}], rax
    mov [r11 + {FAULT_SIG}], rdi
    mov qword ptr [r11 + {FAULTED}], 1
    mov qword ptr [r11 + {ACTIVE}], 0
    mov rax, [r11 + {SAVED_RSP}]
    mov [rdx + {UC_RSP}], rax
    movabs rax, {EPILOGUE}
    mov [rdx + {UC_RIP}], rax
    mov qword ptr [rdx + {UC_RAX}], 0
    ret
not_ours:
    cmp qword ptr [r11 + rdi * 8 + {CHAINED}], 0
    jne default_action
    mov qword ptr [r11 + rdi * 8 + {CHAINED}], 1
    mov rax, [r11 + rdi * 8 + {PREV_TABLE}]
    cmp rax, 1
    jbe default_action
    jmp rax
default_action:
    mov eax, 13
    lea rsi, [r11 + {SIGACTION_DFL}]
    xor edx, edx
    mov r10d, 8
    syscall
    ret
"""


class _Sigaction(ctypes.Structure):
    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ubyte * 128), ("flags", ctypes.c_int),
                ("restorer", ctypes.c_void_p)]


class FaultGuard:
    """One process-wide guard; guarded calls are serialised (re-entrant for nested runs)."""

    def __init__(self) -> None:
        import keystone
        self.record = HostBuffer(STATIC_SIZE)
        self.code = HostBuffer(4096)
        values = dict(ACTIVE=ACTIVE, SAVED_RSP=SAVED_RSP, CODE_LO=CODE_LO, CODE_HI=CODE_HI, FAULTED=FAULTED,
                      FAULT_ADDR=FAULT_ADDR, FAULT_PC=FAULT_PC, FAULT_SIG=FAULT_SIG, ARGS=ARGS,
                      SIGACTION_DFL=SIGACTION_DFL, PREV_TABLE=PREV_TABLE, CHAINED=CHAINED, UC_RSP=UC_RSP, UC_RIP=UC_RIP,
                      UC_RAX=UC_RAX, SI_ADDR=SI_ADDR, RECORD=self.record.address, EPILOGUE=0)
        ks = keystone.Ks(keystone.KS_ARCH_X86, keystone.KS_MODE_64)
        values["EPILOGUE"] = self.code.address + self._label_offset(ks, _TRAMPOLINE.format(**values), "epilogue")
        source = _TRAMPOLINE.format(**values)
        encoding, _ = ks.asm(source, self.code.address)
        self.code.view[:len(encoding)] = bytes(encoding)
        handler_offset = self._label_offset(ks, source, "handler")
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mprotect(ctypes.c_void_p(self.code.address), 4096, 5) != 0:     # PROT_READ | PROT_EXEC
            raise OSError(ctypes.get_errno(), "mprotect of the fault-guard trampoline failed")
        self._sigaction = libc.sigaction
        self._sigaction.argtypes = [ctypes.c_int, ctypes.POINTER(_Sigaction), ctypes.POINTER(_Sigaction)]
        self.handler = self.code.address + handler_offset
        self.call = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p)(self.code.address)
        self.lock = threading.RLock()

    def _label_offset(self, ks, source: str, label: str) -> int:
        head = source.split(f"\n{label}:", 1)[0]
        encoding, _ = ks.asm(head, self.code.address)
        return len(encoding)

    def _install(self) -> None:
        """(Re)install the handler if something else replaced it, chaining to that handler.

        A fault outside JIT code is passed on once per signal; if it comes back (a
        handler that re-raises into its own previous handler, which may be us), the
        default action ends the process instead of looping.
        """
        current = _Sigaction()
        self._sigaction(signal.SIGSEGV, None, ctypes.byref(current))
        if current.handler == self.handler:
            return
        for sig in SIGNALS:
            self._sigaction(sig, None, ctypes.byref(current))
            if current.handler == self.handler:
                continue
            struct.pack_into("<Q", self.record.view, PREV_TABLE + 8 * sig, current.handler or 0)
            action = _Sigaction()
            action.handler = self.handler
            action.flags = SA_SIGINFO | SA_ONSTACK
            if self._sigaction(sig, ctypes.byref(action), None) != 0:
                raise OSError(ctypes.get_errno(), f"sigaction({sig}) failed")

    def run(self, function: int, code_lo: int, code_hi: int, args: tuple[int, ...]) -> int:
        """Call ``function(args)``; a fault inside [code_lo, code_hi) raises BpfRuntimeError."""
        with self.lock:
            saved = bytes(self.record.view[:RECORD_SIZE])        # nested runs (tail calls, callbacks)
            try:
                self._install()
                view = self.record.view
                struct.pack_into("<QQ", view, CODE_LO, code_lo, code_hi)
                struct.pack_into("<7Q", view, ARGS, function, *args, *[0] * (6 - len(args)))
                r0 = self.call(self.record.address)
                faulted, address, pc, sig = struct.unpack_from("<4Q", view, FAULTED)
            finally:
                self.record.view[:RECORD_SIZE] = saved
            if faulted:
                name = signal.Signals(sig).name if sig in signal.Signals.__members__.values() else str(sig)
                raise NativeFault(name, address, pc)
            return r0


class NativeFault(BpfRuntimeError):
    """A hardware fault inside the guarded code range (``native_pc`` is the faulting host pc)."""

    def __init__(self, signal_name: str, address: int, pc: int):
        self.signal_name, self.address, self.native_pc = signal_name, address, pc
        super().__init__(f"native code faulted ({signal_name}) accessing 0x{address:x} at pc 0x{pc:x}")


_guard: FaultGuard | None = None


def available() -> bool:
    return platform.system() == "Linux" and platform.machine().lower() in ("x86_64", "amd64")


def guard() -> FaultGuard:
    global _guard
    if _guard is None:
        _guard = FaultGuard()
    return _guard

