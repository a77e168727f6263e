# Humans and CI use the same targets. `make run` and `make test` set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kuwa-installed

.PHONY: run test lint check format bench clean services

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

# Redis must be installable: `up` starts a private redis-server when no KUWA_REDIS_URL is set.
services:
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server (apt-get)"; \
	  (apt-get install -y -q redis-server || (apt-get update -q && apt-get install -y -q redis-server)) >/dev/null; }
	@command -v node >/dev/null || echo "note: node not found; the seed's JavaScript test needs Node.js 20+"

run: $(STAMP) services
	$(BIN)/kuwa-cli up

test: $(STAMP) services
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

check: lint test

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP) services
	$(BIN)/python bench/stream_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
