"""libpcap through ctypes: filter expressions compiled by ``pcap_compile``, and
libpcap's own ``pcap_offline_filter`` (the oracle of the tests and benchmarks).

Debian ships the library as ``libpcap.so.0.8`` (package libpcap0.8); no headers
or compiler are needed. An expression is compiled for a link type and snap
length on a dead handle (``pcap_open_dead``), as ``tcpdump -d -y TYPE`` does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from functools import lru_cache

from ..errors import BpfError
from .isa import Insn

DLT_EN10MB = 1
DEFAULT_SNAPLEN = 262144               # tcpdump's default: what an accepting filter returns
PCAP_NETMASK_UNKNOWN = 0xFFFF_FFFF
#: pcap file link types (LINKTYPE_*) whose libpcap DLT_* value differs, on Linux.
LINKTYPE_TO_DLT = {100: 11, 101: 12, 102: 15, 103: 16}
_LOCK = threading.Lock()               # older libpcaps' compilers keep global state


class LibpcapError(BpfError):
    """libpcap is missing, or it rejected a filter expression."""


class _BpfInsn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint32)]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_BpfInsn))]


class _PktHdr(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long), ("caplen", ctypes.c_uint32),
                ("len", ctypes.c_uint32)]


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    """The loaded libpcap, its functions declared; LibpcapError where it is missing."""
    names = ["libpcap.so.0.8", "libpcap.so.1", ctypes.util.find_library("pcap")]
    for name in filter(None, names):
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    else:
        raise LibpcapError("libpcap not found: install it (Debian: apt-get install libpcap0.8) "
                           "to compile filter expressions")
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.restype = ctypes.c_int
    lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram), ctypes.c_char_p,
                                 ctypes.c_int, ctypes.c_uint32]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    lib.pcap_offline_filter.restype = ctypes.c_int
    lib.pcap_offline_filter.argtypes = [ctypes.POINTER(_BpfProgram), ctypes.POINTER(_PktHdr), ctypes.c_char_p]
    lib.pcap_datalink_name_to_val.restype = ctypes.c_int
    lib.pcap_datalink_name_to_val.argtypes = [ctypes.c_char_p]
    return lib


def available() -> bool:
    try:
        library()
        return True
    except LibpcapError:
        return False


def linktype(name: str | int) -> int:
    """A link type by number or libpcap name (``EN10MB``, ``RAW``, ``LINUX_SLL`` ...)."""
    if isinstance(name, int) or str(name).isdigit():
        return int(name)
    value = library().pcap_datalink_name_to_val(str(name).encode())
    if value < 0:
        raise LibpcapError(f"unknown link type '{name}'")
    return value


def dlt(file_linktype: int) -> int:
    """The DLT_* value libpcap compiles for, of a link type read from a capture file."""
    return LINKTYPE_TO_DLT.get(file_linktype, file_linktype)


def compile_expr(expr: str, linktype: int = DLT_EN10MB, snaplen: int = DEFAULT_SNAPLEN,
                 optimize: bool = True, netmask: int = PCAP_NETMASK_UNKNOWN) -> list[Insn]:
    """``pcap_compile`` of a filter expression; its instructions."""
    lib = library()
    with _LOCK:
        handle = lib.pcap_open_dead(linktype, snaplen)
        if not handle:
            raise LibpcapError(f"pcap_open_dead refused link type {linktype}")
        try:
            prog = _BpfProgram()
            if lib.pcap_compile(handle, ctypes.byref(prog), expr.encode(), int(optimize), netmask) != 0:
                message = (lib.pcap_geterr(handle) or b"").decode(errors="replace")
                raise LibpcapError(f"filter expression {expr!r}: {message or 'rejected by pcap_compile'}")
            try:
                return [Insn(i.code, i.jt, i.jf, i.k) for i in prog.bf_insns[:prog.bf_len]]
            finally:
                lib.pcap_freecode(ctypes.byref(prog))
        finally:
            lib.pcap_close(handle)


class OfflineFilter:
    """A classic program held by libpcap: ``filter(packet, wirelen)`` is
    pcap_offline_filter's return value (the filter's own, 0 = no match)."""

    def __init__(self, insns: list[Insn]):
        self._lib = library()
        self._insns = (_BpfInsn * len(insns))(*[_BpfInsn(i.code, i.jt, i.jf, i.k) for i in insns])
        self._prog = _BpfProgram(len(insns), self._insns)
        self._hdr = _PktHdr()

    def __call__(self, packet: bytes, wirelen: int | None = None) -> int:
        self._hdr.caplen = len(packet)
        self._hdr.len = len(packet) if wirelen is None else wirelen
        return self._lib.pcap_offline_filter(ctypes.byref(self._prog), ctypes.byref(self._hdr), packet) & 0xFFFF_FFFF
