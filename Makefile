# jitbpf — every target sets itself up: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
CONFORMANCE ?= ../shared/conformance/tests
JOBS   ?= auto

.PHONY: install run test conformance bench fixtures clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/jitbpf run jitbpf/examples/fib.asm --mem-hex 00000000000000000000 --engine interp

test: $(STAMP)
	$(PY) -m pytest -n $(JOBS)

conformance: $(STAMP)
	$(VENV)/bin/jitbpf conformance $(CONFORMANCE) --engine all

bench: $(STAMP)
	$(PY) benchmarks/interp_speed.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
