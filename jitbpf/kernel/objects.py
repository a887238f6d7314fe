"""Our object's maps as kernel maps (stub; filled in when runtime maps land)."""

from __future__ import annotations

import weakref


class KernelMaps:
    _by_object: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

    def __init__(self, obj):
        self.obj = obj
        self.kernel = []

    @classmethod
    def of(cls, obj) -> "KernelMaps":
        maps = cls._by_object.get(obj)
        if maps is None:
            maps = cls._by_object[obj] = cls(obj)
        return maps

    @property
    def fds(self) -> list[int]:
        return [m.fd for m in self.kernel]

    def push(self) -> None:
        pass

    def pull(self) -> None:
        pass
