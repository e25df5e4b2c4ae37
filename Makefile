# smartpole: the two commands of the README are `make demo` and `make test`.
PY ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PYTHON := $(PY)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Python keeps the bytecode it compiles: with PYTHONDONTWRITEBYTECODE set (as on some CI
# machines) every process compiled each module it imported again, two seconds of each CLI call
# and each server a test starts.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install demo test fuzz lint typecheck pytest bench bench-short soak soak-short system-deps clean

$(UV):
	@$(PY) -m venv $(TOOLS) || (bash scripts/system-deps.sh python && $(PY) -m venv $(TOOLS))
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-extras --compile-bytecode
	@touch $@

## install: create/refresh the virtualenv from the lock file
install: $(VENV)/.synced

## system-deps: Debian packages the tests and benchmarks need (PostgreSQL, Mosquitto, Chromium, CJK fonts)
system-deps:
	@bash scripts/system-deps.sh test

## demo: a sample district served on the embedded store (README command one)
demo: install
	$(VENV)/bin/smartpole demo

## test: lint, type-check and the whole test suite (README command two)
test: install system-deps lint typecheck pytest

## fuzz: only the fuzz tests (REST API, MQTT, broker, cross-tenant, hub oracle), with FUZZ_EXAMPLES cases each
FUZZ_EXAMPLES ?= 300
fuzz: install system-deps
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(VENV)/bin/pytest -n 2 tests/test_api_fuzz.py \
		tests/test_mqtt_fuzz.py tests/test_broker_fuzz.py tests/test_tenancy_fuzz.py \
		tests/test_hub_oracle.py

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: install
	$(VENV)/bin/mypy

pytest: install
	$(VENV)/bin/pytest -n 3

## bench: the benchmarks at full size; bench-short: the quick run CI does
bench: install system-deps
	$(VENV)/bin/python -m bench.ingest
	$(VENV)/bin/python -m bench.hub
	$(VENV)/bin/python -m bench.anomaly
	PATH="$$PATH:/usr/sbin" $(VENV)/bin/python -m bench.mqtt
	$(VENV)/bin/python -m bench.fleet
	$(VENV)/bin/python -m bench.stages
	$(VENV)/bin/python -m bench.outage
	$(VENV)/bin/python -m bench.cli
	$(VENV)/bin/python -m bench.map
	$(VENV)/bin/python -m bench.console
	$(VENV)/bin/python -m bench.lighting
	$(VENV)/bin/python -m bench.lighting_diagnostics
	$(VENV)/bin/python -m bench.lighting_energy
	$(VENV)/bin/python -m bench.lighting_night
	$(VENV)/bin/python -m bench.ngsi_ld

bench-short: install system-deps
	$(VENV)/bin/python -m bench.ingest --short
	$(VENV)/bin/python -m bench.hub --short
	$(VENV)/bin/python -m bench.anomaly --short
	PATH="$$PATH:/usr/sbin" $(VENV)/bin/python -m bench.mqtt --short
	$(VENV)/bin/python -m bench.fleet --short
	$(VENV)/bin/python -m bench.stages --short
	$(VENV)/bin/python -m bench.soak --short
	$(VENV)/bin/python -m bench.cli --short
	$(VENV)/bin/python -m bench.map --short
	$(VENV)/bin/python -m bench.console --short
	$(VENV)/bin/python -m bench.lighting --short
	$(VENV)/bin/python -m bench.lighting_diagnostics --short
	$(VENV)/bin/python -m bench.lighting_energy --short
	$(VENV)/bin/python -m bench.lighting_night --short
	$(VENV)/bin/python -m bench.ngsi_ld --short

## soak: serve + simulator for 30 minutes, memory, files and queues every minute (bench/soak.py);
## soak-short: about 30 s (CI runs it in bench-short)
soak: install
	$(VENV)/bin/python -m bench.soak

soak-short: install
	$(VENV)/bin/python -m bench.soak --short

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
