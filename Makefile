# Set-up and everyday commands. `make demo` and `make test` each work on a fresh machine
# with Python >= 3.10: they create .venv, install gexpred into it and run.
PYTHON     ?= python3
VENV       ?= .venv
CORES      ?= all
# torch first, so that the package's `torch>=2.3` is already satisfied. Override for a CUDA
# build, e.g. make demo TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"
TORCH_SPEC ?= torch==2.13.0

BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install demo report test test-fast lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/.installed

## Run the demo on the bundled B. subtilis data and build the HTML report.
demo: install
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/report.html
	@echo "Report: results/report.html"

report: install
	$(BIN)/snakemake --report results/report.html

## Install and run the whole test suite on two pytest-xdist workers, a test module to a worker
## (--dist loadfile: the tests that share a module's workflow run build it once), the modules in
## collection order (--no-loadscope-reorder: tests/conftest.py puts the long workflow runs first).
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

## Unit tests only (skips the end-to-end workflow runs).
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/snakemake --lint

clean:
	rm -rf results .snakemake
