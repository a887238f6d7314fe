"""Differential fuzzing: generated programs run on every engine, each on its own runtime.

- :mod:`.generate`: programs at three levels (raw bytes, structurally valid programs,
  semantic mutations of valid ones), every one reproducible from ``(seed, index)``;
- :mod:`.oracle`: one program on several engines, each with a fresh runtime holding the
  same maps, compared on r0, memory, maps and the kind of error;
- :mod:`.minimize`: delta debugging of a failing case, written as a regression file;
- :mod:`.robust`: damaged inputs fed to every loader and CLI command;
- :mod:`.cli`: ``jitbpf fuzz``; :mod:`.atheris_target`: the libFuzzer entry point.
"""
