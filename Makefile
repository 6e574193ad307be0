# Two commands on a machine with only python3 (3.11+) and make:
#   make demo   builds .venv from pyproject.toml and runs the default experiment
#   make test   builds .venv if needed and runs the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Test processes run side by side (pytest-xdist); 2 matches the CI machine.
TEST_WORKERS ?= 2
# Real data sets live next to the project; tests that need one skip when it is absent.
export JAXRNN_DATA ?= ../shared/data
# Let glibc back XLA's large temporary buffers with transparent huge pages: without it every
# jitted call page-faults its fresh buffers 4 KiB at a time (benchmarks/README.md has the
# measurements). glibc < 2.35 ignores it.
export GLIBC_TUNABLES ?= glibc.malloc.hugetlb=1

.PHONY: demo test docs serve-docs lint format clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "jaxrnn needs Python 3.11 or newer; '$(PYTHON)' is $$($(PYTHON) --version)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[experiments,dev,docs]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m experiments.ball

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The API reference and the notebooks as a site, in strict mode (tests/test_docs.py builds it too).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

serve-docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict

lint: $(STAMP)
	$(BIN)/ruff format --check . && $(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis site
