# Set-up is part of each target: the first run creates .venv and installs the pinned packages.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test test-all bench clean

$(VENV)/installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# The main job on a built-in default (no download): FCE on the 2D 8-gaussians density.
run: $(VENV)/installed
	$(PY) main.py $(ARGS)

# The fast tier (a few minutes on 2 cores); test-all adds the tests marked slow: full-size
# configs, subprocess and multi-worker runs, end-to-end experiments. CI runs test-all.
test: $(VENV)/installed
	$(PY) -m pytest -m "not slow" $(ARGS)

test-all: $(VENV)/installed
	$(PY) -m pytest $(ARGS)

# Seconds per step of the full-size image configs at batch 2 (see docs/benchmarks/README.md).
bench: $(VENV)/installed
	for c in svhn celeba cifar10 celeba64; do $(PY) -m bench.step_time --config=$$c --batch=2 --steps=3; done

clean:
	rm -rf $(VENV) runs
