# The README's two commands are `make run` and `make test`; CI calls `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint format bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/hubbub serve $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/ruff check src tests bench examples
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests bench examples
	$(BIN)/ruff check --fix src tests bench examples

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench $(ARGS)
	$(BIN)/python -m bench.store_throughput --postgresql postgresql://postgres@127.0.0.1:5432/postgres
	$(BIN)/python -m bench.store_cost --postgresql postgresql://postgres@127.0.0.1:5432/postgres
	$(BIN)/python -m bench.publish_http
	$(BIN)/python -m bench.gc_arrivals

# `make soak ARGS=--cluster`: two nodes on a private redis-server and a PostgreSQL
# database of the soak's own; Redis is restarted and a node SIGKILLed during the run.
soak: $(STAMP)
	$(BIN)/python -m tests.soak --spawn $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist data
