# Two entry points for a fresh machine: `make run` and `make test`.
# Both create (once) and reuse a virtual environment in .venv.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2
TARGET ?= results/ds9/model_1.0.0.35/metrics.json
# overlays merged over config/config.yaml, e.g. CONFIGS=config/mias_real.yaml
CONFIGS ?=

.PHONY: run test lint docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake $(TARGET) --cores $(CORES) $(if $(CONFIGS),--configfile config/config.yaml $(CONFIGS))

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint

# the documentation site, built strictly (a warning, a broken link or anchor fails) into build/site
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf results resources logs benchmarks .snakemake
