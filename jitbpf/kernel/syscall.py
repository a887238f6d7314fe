"""bpf(2) through ctypes: maps, BTF, program load with the verifier log, object
info and BPF_PROG_TEST_RUN. No libbpf: the attribute layouts below follow
``include/uapi/linux/bpf.h``; the kernel accepts a shorter attribute than it
knows (missing tail fields are zero), so only the fields used are declared.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import mmap
import os
import platform
import re
from dataclasses import dataclass

from ..errors import BpfEngineError, BpfVerifierError
# Linux's map types (by our names), map flags and update flags, defined once in runtime.maps
from ..runtime.maps import MAP_TYPES, round8
from ..runtime.maps import BPF_F_MMAPABLE as F_MMAPABLE, BPF_F_RDONLY_PROG as F_RDONLY_PROG  # noqa: F401
from ..runtime.maps import BPF_ANY as ANY, BPF_EXIST as EXIST, BPF_NOEXIST as NOEXIST  # noqa: F401

#: bpf(2) system call numbers by machine.
_NR_BPF = {"x86_64": 321, "amd64": 321, "aarch64": 280, "arm64": 280, "riscv64": 280, "loongarch64": 280}


class Cmd:
    MAP_CREATE = 0
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    MAP_GET_NEXT_KEY = 4
    PROG_LOAD = 5
    PROG_TEST_RUN = 10
    OBJ_GET_INFO_BY_FD = 15
    BTF_LOAD = 18
    MAP_LOOKUP_AND_DELETE_ELEM = 21
    MAP_FREEZE = 22


#: Program types by name (enum bpf_prog_type).
PROG_TYPES = {
    "socket_filter": 1, "kprobe": 2, "sched_cls": 3, "sched_act": 4, "tracepoint": 5, "xdp": 6,
    "perf_event": 7, "cgroup_skb": 8, "lwt_in": 10, "lwt_out": 11, "lwt_xmit": 12, "sk_skb": 14,
    "raw_tracepoint": 17, "flow_dissector": 22, "tracing": 26, "lsm": 29, "syscall": 31,
}

#: Map types whose values hold one 8-aligned slot per possible CPU.
PERCPU_MAP_TYPES = frozenset(MAP_TYPES[t] for t in ("percpu_hash", "percpu_array", "lru_percpu_hash"))

OBJ_NAME_LEN = 16
LOG_LEVEL = 1
LOG_START = 1 << 16
LOG_MAX = (1 << 30) - 1         # the kernel's limit on log_size (UINT_MAX >> 2)


class _MapCreate(ctypes.Structure):
    _fields_ = [("map_type", ctypes.c_uint32), ("key_size", ctypes.c_uint32),
                ("value_size", ctypes.c_uint32), ("max_entries", ctypes.c_uint32),
                ("map_flags", ctypes.c_uint32), ("inner_map_fd", ctypes.c_uint32),
                ("numa_node", ctypes.c_uint32), ("map_name", ctypes.c_char * OBJ_NAME_LEN),
                ("map_ifindex", ctypes.c_uint32), ("btf_fd", ctypes.c_uint32),
                ("btf_key_type_id", ctypes.c_uint32), ("btf_value_type_id", ctypes.c_uint32),
                ("btf_vmlinux_value_type_id", ctypes.c_uint32), ("map_extra", ctypes.c_uint64)]


class _MapElem(ctypes.Structure):
    _fields_ = [("map_fd", ctypes.c_uint32), ("key", ctypes.c_uint64),
                ("value", ctypes.c_uint64), ("flags", ctypes.c_uint64)]


class _ProgLoad(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
                ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
                ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * OBJ_NAME_LEN),
                ("prog_ifindex", ctypes.c_uint32), ("expected_attach_type", ctypes.c_uint32),
                ("prog_btf_fd", ctypes.c_uint32), ("func_info_rec_size", ctypes.c_uint32),
                ("func_info", ctypes.c_uint64), ("func_info_cnt", ctypes.c_uint32),
                ("line_info_rec_size", ctypes.c_uint32), ("line_info", ctypes.c_uint64),
                ("line_info_cnt", ctypes.c_uint32), ("attach_btf_id", ctypes.c_uint32),
                ("attach_prog_fd", ctypes.c_uint32), ("core_relo_cnt", ctypes.c_uint32),
                ("fd_array", ctypes.c_uint64), ("core_relos", ctypes.c_uint64),
                ("core_relo_rec_size", ctypes.c_uint32), ("log_true_size", ctypes.c_uint32)]


class _TestRun(ctypes.Structure):
    _fields_ = [("prog_fd", ctypes.c_uint32), ("retval", ctypes.c_uint32),
                ("data_size_in", ctypes.c_uint32), ("data_size_out", ctypes.c_uint32),
                ("data_in", ctypes.c_uint64), ("data_out", ctypes.c_uint64),
                ("repeat", ctypes.c_uint32), ("duration", ctypes.c_uint32),
                ("ctx_size_in", ctypes.c_uint32), ("ctx_size_out", ctypes.c_uint32),
                ("ctx_in", ctypes.c_uint64), ("ctx_out", ctypes.c_uint64),
                ("flags", ctypes.c_uint32), ("cpu", ctypes.c_uint32), ("batch_size", ctypes.c_uint32)]


class _InfoByFd(ctypes.Structure):
    _fields_ = [("bpf_fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32), ("info", ctypes.c_uint64)]


class _ProgInfo(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("tag", ctypes.c_uint8 * 8),
                ("jited_prog_len", ctypes.c_uint32), ("xlated_prog_len", ctypes.c_uint32),
                ("jited_prog_insns", ctypes.c_uint64), ("xlated_prog_insns", ctypes.c_uint64),
                ("load_time", ctypes.c_uint64), ("created_by_uid", ctypes.c_uint32),
                ("nr_map_ids", ctypes.c_uint32), ("map_ids", ctypes.c_uint64),
                ("name", ctypes.c_char * OBJ_NAME_LEN), ("ifindex", ctypes.c_uint32),
                ("gpl_compatible", ctypes.c_uint32), ("netns_dev", ctypes.c_uint64),
                ("netns_ino", ctypes.c_uint64), ("nr_jited_ksyms", ctypes.c_uint32),
                ("nr_jited_func_lens", ctypes.c_uint32), ("jited_ksyms", ctypes.c_uint64),
                ("jited_func_lens", ctypes.c_uint64), ("btf_id", ctypes.c_uint32),
                ("func_info_rec_size", ctypes.c_uint32), ("func_info", ctypes.c_uint64),
                ("nr_func_info", ctypes.c_uint32), ("nr_line_info", ctypes.c_uint32),
                ("line_info", ctypes.c_uint64), ("jited_line_info", ctypes.c_uint64),
                ("nr_jited_line_info", ctypes.c_uint32), ("line_info_rec_size", ctypes.c_uint32),
                ("jited_line_info_rec_size", ctypes.c_uint32), ("nr_prog_tags", ctypes.c_uint32),
                ("prog_tags", ctypes.c_uint64), ("run_time_ns", ctypes.c_uint64),
                ("run_cnt", ctypes.c_uint64), ("recursion_misses", ctypes.c_uint64),
                ("verified_insns", ctypes.c_uint32), ("attach_btf_obj_id", ctypes.c_uint32),
                ("attach_btf_id", ctypes.c_uint32), ("_pad", ctypes.c_uint32)]


class _BtfLoad(ctypes.Structure):
    _fields_ = [("btf", ctypes.c_uint64), ("btf_log_buf", ctypes.c_uint64),
                ("btf_size", ctypes.c_uint32), ("btf_log_size", ctypes.c_uint32),
                ("btf_log_level", ctypes.c_uint32), ("btf_log_true_size", ctypes.c_uint32)]


class KernelError(BpfEngineError):
    """A bpf(2) command failed; ``errno`` holds the error number."""

    def __init__(self, message: str, err: int = 0):
        self.errno = err
        super().__init__(message)


class KernelUnavailable(KernelError):
    """bpf(2) cannot be used here (not permitted, not built in, not Linux)."""


class KernelVerifierError(BpfVerifierError):
    """The kernel verifier rejected a program; ``log`` is its full verifier log."""

    def __init__(self, message: str, log: str, pc: int | None = None, err: int = 0, line: str | None = None):
        self.log = log
        self.errno = err
        super().__init__(message, pc, line)


# --------------------------------------------------------------------------- the system call

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.syscall.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_ulong]


def _addr(obj) -> int:
    return ctypes.addressof(obj) if obj is not None else 0


_NR = _NR_BPF.get(platform.machine().lower()) if hasattr(os, "sched_getaffinity") else None


def bpf(cmd: int, attr: ctypes.Structure) -> int:
    """Call bpf(2); returns its result or raises OSError with the errno."""
    if _NR is None:
        raise OSError(errno.ENOSYS, f"bpf(2) is not available on {platform.system()} {platform.machine()}")
    while True:
        ret = _libc.syscall(_NR, cmd, ctypes.addressof(attr), ctypes.sizeof(attr))
        if ret >= 0:
            return ret
        err = ctypes.get_errno()
        if err != errno.EINTR and err != errno.EAGAIN:
            raise OSError(err, os.strerror(err))


_RETURN_ZERO = bytes.fromhex("b700000000000000" "9500000000000000")   # mov r0, 0; exit


@functools.cache
def availability() -> str | None:
    """None when bpf(2) works here (an array map can be created and a trivial
    program loaded), else the reason; computed once per process. ``JITBPF_KERNEL=0``
    in the environment turns the kernel engine off."""
    if os.environ.get("JITBPF_KERNEL") == "0":
        return "bpf(2) not permitted: disabled by JITBPF_KERNEL=0"
    try:
        m = create_map("array", 4, 8, 1)
        m.close()
        prog = load_program(_RETURN_ZERO, "socket_filter")
        os.close(prog)
    except OSError as e:
        what = {errno.EPERM: "not permitted", errno.EACCES: "not permitted",
                errno.ENOSYS: "not supported"}.get(e.errno, "failed")
        return f"bpf(2) {what}: {e.strerror}"
    except (KernelError, BpfVerifierError) as e:
        return f"bpf(2) {'not permitted' if e.errno in (errno.EPERM, errno.EACCES) else 'failed'}: {e}"
    return None


def kernel_available() -> bool:
    return availability() is None


def require() -> None:
    """Raise KernelUnavailable with the reason when bpf(2) cannot be used."""
    reason = availability()
    if reason is not None:
        raise KernelUnavailable(reason)


def _fail(what: str, e: OSError) -> KernelError:
    cls = KernelUnavailable if e.errno in (errno.EPERM, errno.ENOSYS) else KernelError
    return cls(f"{what}: {e.strerror} ({errno.errorcode.get(e.errno, e.errno)})", e.errno or 0)


# --------------------------------------------------------------------------- maps

class KernelMap:
    """A kernel map by fd; keys and values are bytes. ``view`` is the mmap'ed
    value area of a ``BPF_F_MMAPABLE`` array (element i at ``i * round8(value_size)``)."""

    def __init__(self, fd: int, type: int, key_size: int, value_size: int, max_entries: int,
                 flags: int = 0, name: str = ""):
        self.fd, self.type, self.key_size, self.value_size = fd, type, key_size, value_size
        self.max_entries, self.flags, self.name = max_entries, flags, name
        self._mmap: mmap.mmap | None = None

    @property
    def stride(self) -> int:
        return round8(self.value_size)

    @property
    def view(self) -> memoryview:
        if self._mmap is None:
            if not self.flags & F_MMAPABLE:
                raise KernelError(f"map '{self.name}' is not mmap-able")
            size = self.stride * self.max_entries
            self._mmap = mmap.mmap(self.fd, (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE * mmap.PAGESIZE,
                                   mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        return memoryview(self._mmap)

    def lookup(self, key: bytes) -> bytes | None:
        kbuf = ctypes.create_string_buffer(key, self.key_size)
        vbuf = ctypes.create_string_buffer(self.value_bytes)
        try:
            bpf(Cmd.MAP_LOOKUP_ELEM, _MapElem(self.fd, _addr(kbuf), _addr(vbuf), 0))
        except OSError as e:
            if e.errno == errno.ENOENT:
                return None
            raise _fail(f"lookup in map '{self.name}'", e) from None
        return vbuf.raw

    def update(self, key: bytes, value: bytes, flags: int = ANY) -> None:
        kbuf = ctypes.create_string_buffer(key, max(self.key_size, 1))
        vbuf = ctypes.create_string_buffer(value, self.value_bytes)
        try:
            bpf(Cmd.MAP_UPDATE_ELEM, _MapElem(self.fd, _addr(kbuf), _addr(vbuf), flags))
        except OSError as e:
            raise _fail(f"update of map '{self.name}'", e) from None

    def delete(self, key: bytes) -> bool:
        kbuf = ctypes.create_string_buffer(key, self.key_size)
        try:
            bpf(Cmd.MAP_DELETE_ELEM, _MapElem(self.fd, _addr(kbuf), 0, 0))
        except OSError as e:
            if e.errno == errno.ENOENT:
                return False
            raise _fail(f"delete from map '{self.name}'", e) from None
        return True

    def pop(self) -> bytes | None:
        """Queue/stack: take the next value (None when empty)."""
        vbuf = ctypes.create_string_buffer(self.value_size)
        try:
            bpf(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, _MapElem(self.fd, 0, _addr(vbuf), 0))
        except OSError as e:
            if e.errno == errno.ENOENT:
                return None
            raise _fail(f"pop from map '{self.name}'", e) from None
        return vbuf.raw

    def push(self, value: bytes) -> None:
        """Queue/stack/bloom filter: add a value (these maps have no keys)."""
        vbuf = ctypes.create_string_buffer(value, self.value_size)
        try:
            bpf(Cmd.MAP_UPDATE_ELEM, _MapElem(self.fd, 0, _addr(vbuf), ANY))
        except OSError as e:
            raise _fail(f"push to map '{self.name}'", e) from None

    def next_key(self, key: bytes | None) -> bytes | None:
        kbuf = ctypes.create_string_buffer(key, self.key_size) if key is not None else None
        nbuf = ctypes.create_string_buffer(self.key_size)
        try:
            bpf(Cmd.MAP_GET_NEXT_KEY, _MapElem(self.fd, _addr(kbuf), _addr(nbuf), 0))
        except OSError as e:
            if e.errno == errno.ENOENT:
                return None
            raise _fail(f"next key of map '{self.name}'", e) from None
        return nbuf.raw

    def keys(self):
        key = self.next_key(None)
        while key is not None:
            yield key
            key = self.next_key(key)

    def items(self) -> list[tuple[bytes, bytes]]:
        return [(k, v) for k in list(self.keys()) if (v := self.lookup(k)) is not None]

    def freeze(self) -> None:
        try:
            bpf(Cmd.MAP_FREEZE, _MapElem(self.fd, 0, 0, 0))
        except OSError as e:
            raise _fail(f"freezing map '{self.name}'", e) from None

    @property
    def value_bytes(self) -> int:
        """Bytes a lookup returns: per-CPU maps give one 8-aligned value per possible CPU."""
        if self.type in PERCPU_MAP_TYPES:
            return self.stride * possible_cpus()
        return self.value_size

    def close(self) -> None:
        if self._mmap is not None:
            try:
                self._mmap.close()
            except BufferError:       # a view is still exported; the mapping goes with it
                pass
            self._mmap = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def create_map(type: str | int, key_size: int, value_size: int, max_entries: int, flags: int = 0,
               name: str = "", inner_map_fd: int = 0, btf_fd: int = 0, btf_key_type_id: int = 0,
               btf_value_type_id: int = 0, map_extra: int = 0) -> KernelMap:
    type_id = MAP_TYPES[type] if isinstance(type, str) else type
    attr = _MapCreate(type_id, key_size, value_size, max_entries, flags, inner_map_fd, 0,
                      _obj_name(name), 0, btf_fd, btf_key_type_id, btf_value_type_id, 0, map_extra)
    try:
        fd = bpf(Cmd.MAP_CREATE, attr)
    except OSError as e:
        raise _fail(f"creating map '{name}' (type {type}, key {key_size}, value {value_size}, "
                    f"entries {max_entries}, flags 0x{flags:x})", e) from None
    return KernelMap(fd, type_id, key_size, value_size, max_entries, flags, name)


def _obj_name(name: str) -> bytes:
    """Kernel object names: at most 15 characters of [A-Za-z0-9_.]."""
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name)[:OBJ_NAME_LEN - 1].encode()


@functools.cache
def possible_cpus() -> int:
    """The number of possible CPUs (per-CPU map values hold one slot each)."""
    try:
        text = open("/sys/devices/system/cpu/possible").read().strip()
    except OSError:
        return os.cpu_count() or 1
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count


# --------------------------------------------------------------------------- BTF

def load_btf(data: bytes) -> int:
    """Load raw BTF (the ``.BTF`` section) and return its fd; errors carry the BTF log."""
    blob = ctypes.create_string_buffer(data, len(data))
    try:
        return bpf(Cmd.BTF_LOAD, _BtfLoad(_addr(blob), 0, len(data), 0, 0))
    except OSError as e:
        first = e
    log = ctypes.create_string_buffer(LOG_START)
    try:
        return bpf(Cmd.BTF_LOAD, _BtfLoad(_addr(blob), _addr(log), len(data), LOG_START, 1))
    except OSError:
        pass
    raise KernelVerifierError(f"the kernel rejects the BTF: {_last_line(log.value.decode(errors='replace'))}"
                              f" ({first.strerror})", log.value.decode(errors="replace"), err=first.errno or 0)


# --------------------------------------------------------------------------- programs

@dataclass
class LoadOptions:
    """Everything BPF_PROG_LOAD takes besides the instructions."""

    expected_attach_type: int = 0
    prog_flags: int = 0
    license: str = "GPL"
    name: str = ""
    fd_array: list[int] | None = None     # lddw map_idx / map_idx_value index this array
    btf_fd: int = 0
    func_info: bytes = b""
    func_info_rec_size: int = 0
    line_info: bytes = b""
    line_info_rec_size: int = 0
    attach_btf_id: int = 0


def load_program(code: bytes | list[int], prog_type: str | int, options: LoadOptions | None = None,
                 log_level: int = 0) -> int:
    """BPF_PROG_LOAD; returns the program fd.

    The program is loaded with the verifier log off (fast, even for big programs);
    only if that fails is it loaded again with the log on, growing the buffer until
    the whole log fits, and the error is a :class:`KernelVerifierError` carrying it.
    With ``log_level`` > 0 the log is on from the start (see :func:`load_with_log`).
    """
    if log_level:
        return load_with_log(code, prog_type, options, log_level)[0]
    try:
        return _prog_load(code, prog_type, options or LoadOptions(), 0, None)
    except OSError as e:
        if e.errno in (errno.EPERM, errno.ENOSYS) and not _verifier_errno(e):
            raise _fail("loading a program", e) from None
    load_with_log(code, prog_type, options, LOG_LEVEL)
    raise KernelError("the kernel rejected the program without a log, then accepted it with the log on")


def _verifier_errno(e: OSError) -> bool:
    return e.errno in (errno.EACCES, errno.EINVAL, errno.E2BIG, errno.ENOSPC, errno.EFAULT,
                       errno.ENOTSUP, errno.EOPNOTSUPP, errno.ERANGE) or e.errno == 524


def load_with_log(code: bytes | list[int], prog_type: str | int, options: LoadOptions | None = None,
                  log_level: int = LOG_LEVEL) -> tuple[int, str]:
    """BPF_PROG_LOAD with the verifier log on; returns (fd, log) or raises KernelVerifierError."""
    options = options or LoadOptions()
    size = LOG_START
    while True:
        log = ctypes.create_string_buffer(size)
        try:
            fd = _prog_load(code, prog_type, options, log_level, log)
            return fd, log.value.decode(errors="replace")
        except OSError as e:
            true_size = getattr(e, "log_true_size", 0)
            if e.errno == errno.ENOSPC and size < LOG_MAX:
                size = min(LOG_MAX, max(size * 4, true_size + 1))
                continue
            text = log.value.decode(errors="replace")
            if e.errno in (errno.EPERM,) and not text:
                raise _fail("loading a program", e) from None
            raise KernelVerifierError(f"the kernel verifier rejects the program: {_last_line(text) or e.strerror}",
                                      text, _failing_pc(text), e.errno or 0) from None


def _prog_load(code, prog_type, options: LoadOptions, log_level: int, log) -> int:
    raw = bytes(code)
    if len(raw) % 8 or not raw:
        raise KernelError(f"program of {len(raw)} bytes is not a whole number of instructions")
    insns = ctypes.create_string_buffer(raw, len(raw))
    license = ctypes.create_string_buffer(options.license.encode())
    fds = (ctypes.c_int32 * len(options.fd_array))(*options.fd_array) if options.fd_array else None
    finfo = ctypes.create_string_buffer(options.func_info, len(options.func_info)) if options.func_info else None
    linfo = ctypes.create_string_buffer(options.line_info, len(options.line_info)) if options.line_info else None
    attr = _ProgLoad(
        prog_type=PROG_TYPES[prog_type] if isinstance(prog_type, str) else prog_type,
        insn_cnt=len(raw) // 8, insns=_addr(insns), license=_addr(license),
        log_level=log_level if log is not None else 0, log_size=len(log) if log is not None else 0,
        log_buf=_addr(log), prog_flags=options.prog_flags, prog_name=_obj_name(options.name),
        expected_attach_type=options.expected_attach_type, prog_btf_fd=options.btf_fd,
        func_info_rec_size=options.func_info_rec_size if finfo is not None else 0, func_info=_addr(finfo),
        func_info_cnt=len(options.func_info) // options.func_info_rec_size if finfo is not None else 0,
        line_info_rec_size=options.line_info_rec_size if linfo is not None else 0, line_info=_addr(linfo),
        line_info_cnt=len(options.line_info) // options.line_info_rec_size if linfo is not None else 0,
        attach_btf_id=options.attach_btf_id, fd_array=_addr(fds))
    try:
        return bpf(Cmd.PROG_LOAD, attr)
    except OSError as e:
        e.log_true_size = attr.log_true_size
        raise


def _last_line(log: str) -> str:
    """The verifier's complaint: the log lines after the last instruction or state
    line, without the statistics, joined by "; "."""
    skip = ("processed ", "verification time", "stack depth", "max_states_per_insn", "mark_precise",
            "-- END PROG LOAD LOG --")
    complaint: list[str] = []
    for line in reversed([ln.strip() for ln in log.splitlines() if ln.strip()]):
        if line.startswith(skip):
            continue
        head = line.split(":", 1)[0]
        if head.isdigit() or line.startswith("from ") or line.startswith("; "):
            break
        complaint.insert(0, line)
    return "; ".join(complaint)


def _failing_pc(log: str) -> int | None:
    """The instruction index of the last instruction line ("N: (xx) ...") in the log,
    else the first "insn N" the complaint mentions (CFG errors print no instructions)."""
    pc = None
    for line in log.splitlines():
        head, sep, rest = line.partition(": (")
        if sep and head.strip().isdigit():
            pc = int(head)
    if pc is None:
        found = re.search(r"\binsn (\d+)", _last_line(log))
        pc = int(found.group(1)) if found else None
    return pc


# --------------------------------------------------------------------------- info and test runs

@dataclass
class ProgInfo:
    type: int
    id: int
    name: str
    tag: bytes
    xlated: bytes                  # the verified and rewritten instructions (map fds as map ids)
    jited: bytes                   # native code of every function, concatenated
    jited_ksyms: list[int]         # kernel address of each function
    jited_func_lens: list[int]     # bytes of native code per function
    verified_insns: int
    run_time_ns: int
    run_cnt: int


def prog_info(fd: int) -> ProgInfo:
    """BPF_OBJ_GET_INFO_BY_FD on a program, twice: sizes first, then the code."""
    first = _ProgInfo()
    _get_info(fd, first)
    info = _ProgInfo()
    xlated = ctypes.create_string_buffer(first.xlated_prog_len)
    jited = ctypes.create_string_buffer(first.jited_prog_len)
    ksyms = (ctypes.c_uint64 * max(first.nr_jited_ksyms, 1))()
    lens = (ctypes.c_uint32 * max(first.nr_jited_func_lens, 1))()
    info.xlated_prog_len, info.xlated_prog_insns = first.xlated_prog_len, _addr(xlated)
    info.jited_prog_len, info.jited_prog_insns = first.jited_prog_len, _addr(jited)
    info.nr_jited_ksyms, info.jited_ksyms = first.nr_jited_ksyms, _addr(ksyms)
    info.nr_jited_func_lens, info.jited_func_lens = first.nr_jited_func_lens, _addr(lens)
    _get_info(fd, info)
    return ProgInfo(info.type, info.id, info.name.decode(errors="replace"), bytes(info.tag),
                    xlated.raw[:info.xlated_prog_len], jited.raw[:info.jited_prog_len],
                    list(ksyms)[:info.nr_jited_ksyms], list(lens)[:info.nr_jited_func_lens],
                    info.verified_insns, info.run_time_ns, info.run_cnt)


def _get_info(fd: int, info: _ProgInfo) -> None:
    try:
        bpf(Cmd.OBJ_GET_INFO_BY_FD, _InfoByFd(fd, ctypes.sizeof(info), _addr(info)))
    except OSError as e:
        raise _fail("reading program info", e) from None


@dataclass
class TestRun:
    retval: int                    # the low 32 bits of r0
    duration_ns: int               # average time per run, as the kernel measured it
    data_out: bytes
    ctx_out: bytes


def test_run(prog_fd: int, data: bytes | None = None, ctx: bytes | None = None, repeat: int = 1,
             data_out_size: int | None = None, ctx_out_size: int | None = None, flags: int = 0,
             cpu: int = 0) -> TestRun:
    """BPF_PROG_TEST_RUN: run ``repeat`` times with packet ``data`` and context ``ctx``.

    ``data_out_size``/``ctx_out_size`` size the output buffers (default: room for
    the packet to grow, the context's size). With ``ctx_out_size=0`` no ctx_out is
    passed and ``ctx_out`` is the ctx_in buffer after the run (syscall programs
    write their context back there).
    """
    din = ctypes.create_string_buffer(data, len(data)) if data else None
    out_size = data_out_size if data_out_size is not None else (len(data) + 4096 if data else 0)
    dout = ctypes.create_string_buffer(out_size) if out_size else None
    cin = ctypes.create_string_buffer(ctx, len(ctx)) if ctx else None
    cout_size = ctx_out_size if ctx_out_size is not None else len(ctx or b"")
    cout = ctypes.create_string_buffer(cout_size) if cout_size else None
    attr = _TestRun(prog_fd=prog_fd, data_size_in=len(data) if data else 0, data_size_out=out_size,
                    data_in=_addr(din), data_out=_addr(dout), repeat=repeat,
                    ctx_size_in=len(ctx) if ctx else 0, ctx_size_out=cout_size,
                    ctx_in=_addr(cin), ctx_out=_addr(cout), flags=flags, cpu=cpu)
    try:
        bpf(Cmd.PROG_TEST_RUN, attr)
    except OSError as e:
        raise _fail("BPF_PROG_TEST_RUN", e) from None
    ctx_after = cout.raw[:attr.ctx_size_out] if cout is not None else (cin.raw if cin is not None else b"")
    return TestRun(attr.retval, attr.duration,
                   dout.raw[:attr.data_size_out] if dout is not None else b"", ctx_after)
