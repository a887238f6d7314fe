"""Code generators (LLVM, direct x86_64/arm64) and executors (native, unicorn)."""
