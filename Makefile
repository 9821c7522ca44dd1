# slabscope: `make run` starts the collector and dashboard on this host; `make test` runs
# every test. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DB     ?= sqlite:///slabscope.db
INTERVAL ?= 15

.PHONY: venv run test lint unit bench clean compose-test

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
		$(BIN)/python -m app.run

bench: venv
	$(BIN)/python bench/scrape.py
	$(BIN)/python bench/model.py --no-reference
	$(BIN)/python bench/pages.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis tests/artifacts

compose-test:
	sh ci/compose-test.sh
