# jitbpf — every target sets itself up: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
CONFORMANCE ?= ../shared/conformance/tests
JOBS   ?= auto

.PHONY: install run run-jit test conformance bench bench-scripts fixtures lint clean fuzz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The bundled clang example (committed .o; `make fixtures` rebuilds it) compiled ahead of time
# for x86_64 and arm64 with both backends, each object run over a small capture (native and
# unicorn) and cross-checked against interp; `make run-jit` runs it on one JIT engine instead.
RUN_ENGINE ?= llvm
run: $(STAMP)
	$(PY) -m jitbpf.aot.demo build

run-jit: $(STAMP)
	$(VENV)/bin/jitbpf run jitbpf/examples/xdp_stats.bpf.o --pcap jitbpf/examples/traffic.pcap \
		--engine $(RUN_ENGINE) --check --dump-maps

test: $(STAMP)
	$(PY) -m pytest -n $(JOBS)

lint: $(STAMP)
	$(VENV)/bin/ruff check --select F,E9 jitbpf backends verifier tests benchmarks

conformance: $(STAMP)
	$(VENV)/bin/jitbpf conformance $(CONFORMANCE) --engine all

# A short bounded differential campaign (and the robustness sweep); FUZZ_ARGS for more, e.g.
# FUZZ_ARGS="--time 3600 --jobs 2 --seed 7" make fuzz
FUZZ_ARGS ?= --iterations 300 --jobs 2
fuzz: $(STAMP)
	$(VENV)/bin/jitbpf fuzz $(FUZZ_ARGS)
	$(VENV)/bin/jitbpf fuzz --robustness --iterations 300


# `jitbpf bench`: the suite of benchmarks/programs on every engine, the kernel and native C
# (with the `bench` extra, for the chart). BENCH_ARGS="loop sieve --rounds 9" to choose.
BENCH_STAMP := $(VENV)/.bench-stamp
BENCH_ARGS  ?= --rounds 5 --processes 3 --json build/bench.json --plot build/bench.png
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	mkdir -p build
	$(VENV)/bin/jitbpf bench $(BENCH_ARGS)

# The older single-purpose benchmark scripts.
bench-scripts: $(STAMP)
	$(PY) benchmarks/interp_speed.py
	$(PY) benchmarks/compute.py
	$(PY) benchmarks/direct_speed.py
	$(PY) benchmarks/helper_call.py
	$(PY) benchmarks/ir_build.py
	$(PY) benchmarks/cbpf_speed.py
	$(PY) benchmarks/verifier_speed.py
	$(PY) benchmarks/independent_check.py

# BPF objects of the test fixtures and bundled examples, committed so tests need no clang.
# A source may ask for extra flags on a first line "// cflags: -mcpu=v4".
CLANG      ?= clang-19
BPF_CFLAGS ?= -O2 -g -target bpf -I/usr/include/$(shell uname -m)-linux-gnu
BPF_OBJS   := $(patsubst %.bpf.c,%.bpf.o,$(wildcard tests/fixtures/*.bpf.c tests/fixtures/elf/*.bpf.c jitbpf/examples/*.bpf.c benchmarks/*.bpf.c \
                                                     benchmarks/programs/*.bpf.c tests/verifier/c/*.bpf.c))

fixtures: $(BPF_OBJS)

%.bpf.o: %.bpf.c $(wildcard tests/fixtures/*.h)
	$(CLANG) $(BPF_CFLAGS) `sed -n 's|^// cflags: ||p' $<` -c $< -o $@

# The benchmark programs share their shim header (benchmarks/programs/bench.h).
benchmarks/programs/%.bpf.o: benchmarks/programs/%.bpf.c benchmarks/programs/bench.h
	$(CLANG) $(BPF_CFLAGS) `sed -n 's|^// cflags: ||p' $<` -c $< -o $@

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
