"""A plain-Python reference model of Linux map semantics, written from the kernel's
documented behaviour (man bpf(2), kernel/bpf/arraymap.c and hashtab.c) and nothing of
jitbpf's: the oracle the runtime's maps (and the native code over them) are compared with.

Results are what the helpers return: 0 or -errno for updates and deletes, the value or
None for lookups, the next key or None for get_next_key.
"""

from __future__ import annotations

from collections import OrderedDict

ENOENT, E2BIG, EEXIST, EINVAL = 2, 7, 17, 22
ANY, NOEXIST, EXIST, F_LOCK = 0, 1, 2, 4      # F_LOCK: these maps' values hold no bpf_spin_lock


class ArrayModel:
    def __init__(self, max_entries: int):
        self.values = [0] * max_entries

    def update(self, key: int, value: int, flags: int) -> int:
        if flags & ~F_LOCK > EXIST:
            return -EINVAL
        if key >= len(self.values):
            return -E2BIG
        if flags & NOEXIST:
            return -EEXIST                      # every element of an array exists
        if flags & F_LOCK:
            return -EINVAL                      # (checked after the index, as arraymap.c does)
        self.values[key] = value
        return 0

    def delete(self, key: int) -> int:
        return -EINVAL

    def lookup(self, key: int) -> int | None:
        return self.values[key] if key < len(self.values) else None

    def next_key(self, key: int | None) -> int | None:
        if key is None or key >= len(self.values):
            return 0
        return key + 1 if key + 1 < len(self.values) else None

    def contents(self) -> dict[int, int]:
        return dict(enumerate(self.values))


class HashModel:
    """hash (``lru=False``) and lru_hash: a full LRU map evicts its least recently used
    key (updates and lookups make a key recent; Linux approximates this order)."""

    def __init__(self, max_entries: int, lru: bool = False):
        self.max_entries, self.lru = max_entries, lru
        self.items: OrderedDict[int, int] = OrderedDict()    # least recent first

    def update(self, key: int, value: int, flags: int) -> int:
        if flags > EXIST:                       # F_LOCK too: no spin lock in the value
            return -EINVAL
        if flags == NOEXIST and key in self.items:
            return -EEXIST
        if flags == EXIST and key not in self.items:
            return -ENOENT
        if key not in self.items and len(self.items) >= self.max_entries:
            if not self.lru:
                return -E2BIG
            self.items.popitem(last=False)
        self.items[key] = value
        self.items.move_to_end(key)
        return 0

    def delete(self, key: int) -> int:
        return 0 if self.items.pop(key, None) is not None else -ENOENT

    def lookup(self, key: int) -> int | None:
        if key in self.items and self.lru:
            self.items.move_to_end(key)
        return self.items.get(key)

    def contents(self) -> dict[int, int]:
        return dict(self.items)
