"""The LLVM backend: lowering to IR text (:mod:`.lower`), then LLVM (:mod:`.compile`)."""

from .compile import CACHE, OPT_LEVELS, LLVMOptions, lower, module_text, optimised

__all__ = ["CACHE", "OPT_LEVELS", "LLVMOptions", "lower", "module_text", "optimised"]
