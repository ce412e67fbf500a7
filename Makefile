# Two commands do everything on a fresh machine:  make run   and   make test
PYTHON     ?= python3
VENV       ?= .venv
PY         := $(VENV)/bin/python
# torch/torchvision pins: these resolve from the local disk here; on a CUDA cluster pick your own build,
# e.g.  make setup TORCH_SPEC="torch torchvision --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP      := $(VENV)/.scyc-installed
ARGS       ?=
PYTEST_ARGS ?=

.PHONY: setup data run test test-all lint format clean help

help:
	@echo "make run          set up, fetch Fashion-MNIST, run the default S-Cyc experiment (ARGS='key=value ...')"
	@echo "make test         set up, fetch data, run the fast test suite (what CI runs)"
	@echo "make test-all     the whole suite, slow tests included"
	@echo "make lint         ruff"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing $(TORCH_SPEC) and scyc[test] into $(VENV) (log: $(VENV)/pip.log)"
	@$(PY) -m pip install -q $(TORCH_SPEC) > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	@$(PY) -m pip install -q -e '.[test]' >> $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	@touch $(STAMP)

setup: $(STAMP)

data: $(STAMP)
	@$(PY) scripts/fetch_data.py fashion_mnist --data-dir data

run: setup data
	$(PY) train.py $(ARGS)

test: setup data
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: setup data
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
