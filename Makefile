# make run: the whole system on this machine; make test: every check and test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PACKAGES := -e protos -e libs/common -e services/scheduler -e services/runner -e services/api-gateway \
            -e clients/jobsctl -e tools/launcher

.PHONY: install run test compose-test check lint typecheck protos browser bench chaos clean

$(STAMP): requirements-dev.txt bench/requirements.txt protos/pyproject.toml libs/common/pyproject.toml \
          services/scheduler/pyproject.toml services/runner/pyproject.toml \
          services/api-gateway/pyproject.toml clients/jobsctl/pyproject.toml \
          tools/launcher/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt $(PACKAGES)
	touch $@

install: $(STAMP)

run: install
	$(VENV)/bin/jobsched-launcher

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

check: lint typecheck

browser:
	bash scripts/ensure_chromium.sh

test: install browser check
	$(PY) -m pytest -n 2 --dist loadgroup

# docker-compose.yml for real, with podman: builds the images, runs and checks the system.
# scripts/containers/prepare.sh installs podman and gets the base images: pulled where a
# registry answers, else local stand-ins built from Debian (as root).
compose-test: install
	bash scripts/containers/prepare.sh
	$(PY) -m pytest tests/compose -m compose -s --timeout=600

protos: install
	PYTHON=$(PY) protos/generate.sh

chaos: install
	$(PY) -m tests.chaos

# About 11 minutes on 2 cores.
bench: install
	$(PY) bench/run.py
	$(PY) bench/front_door.py
	$(PY) bench/search.py
	$(PY) bench/scale.py
	$(PY) bench/peer.py
	$(PY) bench/claim.py
	$(PY) bench/schedules.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache tests/artifacts
