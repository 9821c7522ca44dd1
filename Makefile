# slabscope: `make run` starts the collector and dashboard on this host; `make test` runs
# every test. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DB     ?= sqlite:///slabscope.db
INTERVAL ?= 15
# The dashboard's port: `make run PORT=8123` (or SLABSCOPE_WEB_PORT, which the app reads).
PORT   ?=

.PHONY: venv run test lint unit bench bench-quick bench-deps clean compose-test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check app tests bench
	$(BIN)/mypy --strict app

unit: venv
	$(BIN)/pytest -q

test: lint unit

run: venv
	SLABSCOPE_DATABASE_URL=$(DB) SLABSCOPE_COLLECT_INTERVAL_SECONDS=$(INTERVAL) \
		$(if $(PORT),SLABSCOPE_WEB_PORT=$(PORT)) $(BIN)/python -m app.run

# The peer the scrape bench compares with (Debian's node_exporter), when we may install it.
bench-deps:
	@command -v prometheus-node-exporter >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		  apt-get install -y -qq prometheus-node-exporter >/dev/null; }

bench: venv bench-deps
	$(BIN)/python bench/scrape.py
	$(BIN)/python bench/model.py --no-reference
	$(BIN)/python bench/pages.py

# Every bench in its short mode (a few minutes): proves they run, figures are indicative only.
# bench/fleet.py (1,000 hosts x 1,000 cgroups, --workers 2) is run on its own: see its docstring.
bench-quick: venv bench-deps
	$(BIN)/python bench/scrape.py --quick
	$(BIN)/python bench/model.py --quick
	$(BIN)/python bench/pages.py --quick
	$(BIN)/python bench/simulations.py --quick
	$(BIN)/python bench/fleet.py --quick
	$(BIN)/python bench/faults.py --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis tests/artifacts

compose-test:
	sh ci/compose-test.sh
