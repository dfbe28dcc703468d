# Every target installs what it needs first (Python deps into .venv; Kafka and the registry into
# ~/.cache/order-processing), so each works on a fresh clone.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Test processes for `make test` (pytest-xdist; 0: one process). Each runs its own broker and registry on free
# ports; on two cores, chaos scenarios running side by side miss their timing checks, so one is the default.
TEST_WORKERS ?= 0

# `make run` ports: the services', Kafka's (and its KRaft controller's) and the Schema Registry's.
ORDER_PORT ?= 5001
FULFILLMENT_PORT ?= 5002
KAFKA_PORT ?= 9092
CONTROLLER_PORT ?= 9093
REGISTRY_PORT ?= 8081

.PHONY: run test unit integration contract schema-check schema-register contracts-release e2e bench chaos codegen \
	codegen-check lint fetch install oasdiff bytecode locks clean

run: install fetch
	$(PY) -m infra.run --order-port $(ORDER_PORT) --fulfillment-port $(FULFILLMENT_PORT) \
		--kafka-port $(KAFKA_PORT) --controller-port $(CONTROLLER_PORT) --registry-port $(REGISTRY_PORT)

test: install fetch codegen-check lint
	$(PY) -m pytest tests -n $(TEST_WORKERS) --dist load $(PYTEST_ARGS)

unit: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: install fetch
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

e2e: install fetch
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

codegen: install
	$(PY) -m codegen

codegen-check: install
	$(PY) -m codegen --check

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fetch: install
	$(PY) -m infra.fetch

install: $(STAMP) oasdiff bytecode

# Bytecode of the project's packages, written ahead (compileall writes it even under PYTHONDONTWRITEBYTECODE=1,
# which keeps the interpreter from caching it itself): without it every service process, test subprocess and CLI
# compiles every module it imports again (~3.5 s of CPU for a service on a slow core). Only what changed is
# compiled again; a module edited since is compiled in memory until then, as Python checks each source's mtime.
PACKAGES := $(patsubst %/__init__.py,%,$(wildcard */__init__.py))
bytecode: $(STAMP)
	@$(PY) -m compileall -q -j 0 $(PACKAGES)

# oasdiff (the OpenAPI gate, a Go program) pinned in tools/oasdiff.py, built once into .tools/ with `go install`.
oasdiff: $(STAMP)
	@$(PY) -m tools.oasdiff install

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -r requirements.lock
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .
	@touch $(STAMP)

# The two locks, from pyproject.toml, each one file for Python 3.11 to 3.13 (--universal; [tool.uv] bounds it):
# requirements.lock: runtime and every extra (development, tests, codegen, bench), what .venv installs;
# requirements-runtime.lock: [project].dependencies only, hash-pinned, what the image installs.
# uv keeps every pin already in a lock unless pyproject.toml moves it.
LOCK := $(VENV)/bin/uv pip compile pyproject.toml --quiet --universal --python-version 3.11 --custom-compile-command "make locks"
locks: $(STAMP)
	$(LOCK) --all-extras -o requirements.lock
	$(LOCK) --generate-hashes -o requirements-runtime.lock

clean:
	rm -rf $(VENV) .venv-* .run var .tools

# Benchmark: load generator, ceilings, scenarios; prints where report.md, report.json and the plots are.
# BENCH_ARGS=--quick for a short smoke run, BENCH_ARGS="--scenario long" for the 1,000,000-order run,
# BENCH_ARGS="--topology 1x1x1,2x2x2" for server processes (WORKERS) and partitions compared on PostgreSQL.
BENCH_ARGS ?=
bench: install fetch
	$(PY) -m bench $(BENCH_ARGS)

# Contract tests with 1,000 schemathesis cases per operation (`make test` runs them with 100): conformance of
# both running services to their OpenAPI specs, the served contract, schema gates, consumer contract, AsyncAPI.
CONTRACT_EXAMPLES ?= 1000
contract: install fetch codegen-check
	CONTRACT_EXAMPLES=$(CONTRACT_EXAMPLES) $(PY) -m pytest tests/contract $(PYTEST_ARGS)

# Event schemas: FULL_TRANSITIVE with every released version, locally and in a registry the check starts for
# itself; with SCHEMA_REGISTRY_URL set, also with the versions registered there (read only: nothing is written).
# OpenAPI: no breaking change against schemas/openapi/released/ (oasdiff).
schema-check: install fetch
	$(PY) -m tools.schema_check
	$(PY) -m tools.openapi_diff

# Deploy pipelines: set FULL_TRANSITIVE on every event subject and register the current schemas in
# $SCHEMA_REGISTRY_URL (idempotent), before services with AUTO_REGISTER_SCHEMAS=false start.
schema-register: install
	$(PY) -m tools.schema_register

# Record the current event schemas as their next versions in schemas/avro/history/ and the OpenAPI documents as
# schemas/openapi/released/, refusing a no-op and anything the gates refuse.
contracts-release: install
	$(PY) -m tools.contracts_release

# Every chaos scenario, full length, each on a fresh stack; tables land in chaos/results/.
chaos: install fetch
	$(PY) -m chaos
