"""Analyses of BPF programs that the passes, the backends and the verifier share."""
