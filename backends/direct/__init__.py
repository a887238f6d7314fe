"""The direct JITs: one template per BPF instruction, assembled by keystone (:mod:`.emitter`)."""

from .emitter import lower

__all__ = ["lower"]
