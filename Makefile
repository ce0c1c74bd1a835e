# Two commands do all set-up on a fresh machine:
#   make demo   - synthetic corpus -> teacher trained on local Ray (DDP) -> evaluation table, in MLflow
#   make test   - the test suite (unit tests + integration tests on a local Ray instance)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CORPUS ?= data/synth

.PHONY: install demo test test-all test-unit test-gpu bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

$(CORPUS)/manifest.csv: | $(STAMP)
	$(VENV)/bin/raytag synth $(CORPUS) --clips 400 --sample-rate 16000 --overwrite

demo: $(STAMP) $(CORPUS)/manifest.csv
	$(VENV)/bin/raytag train jobs/demo-teacher.yaml

# The multi-node tests start their own Ray cluster: they run in a pytest process of their own,
# never beside the shared local Ray instance of the other integration tests.
# CI runs `make test` (under 30 minutes on 2 cores); `make test-all` adds the tests marked slow.
# CI has no GPU: the tests marked gpu (they need a CUDA device) are left out of every lane but
# `make test-gpu`, which runs only them and, with CI=true, fails on a machine without a device.
test: $(STAMP)
	$(PY) -m pytest -q --durations=20 -m "not multinode and not slow and not gpu"
	$(PY) -m pytest -q --durations=10 -m multinode

test-all: $(STAMP)
	$(PY) -m pytest -q -m "not multinode and not gpu"
	$(PY) -m pytest -q --durations=10 -m multinode

test-unit: $(STAMP)
	$(PY) -m pytest -q -m "not ray and not multinode and not gpu"

test-gpu: $(STAMP)
	CI=true $(PY) -m pytest -q -m gpu

bench: $(STAMP)
	$(PY) bench/bench_synth.py

clean:
	rm -rf ray_results mlruns mlflow.db $(CORPUS)
