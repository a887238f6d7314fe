"""Code generators (llvm, direct), the linker (link) and the executors (exec).

Installed as ``jitbpf.backends``. Nothing here imports the engine registry
(jitbpf.pipeline): the pipeline calls the backends, never the other way round.
"""
