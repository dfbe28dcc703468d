# Every target installs what it needs first (Python deps into .venv; Kafka and the registry into
# ~/.cache/order-processing), so each works on a fresh clone.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test unit integration contract e2e codegen codegen-check lint fetch install clean

run: install fetch
	$(PY) -m infra.run

test: install fetch codegen-check lint
	$(PY) -m pytest tests $(PYTEST_ARGS)

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

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9
	$(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements.lock
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .
	@touch $(STAMP)

clean:
	rm -rf $(VENV) .run var
