# Two commands do everything on a fresh machine (see README):
#   make demo   install, then run the main job on the demo media into ./lake (SQLite Dagster instance)
#   make test   install with test extras, start the services the tests need, run lint, types and tests
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export GX_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo test lint services bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: the CPU build lies on local disk; a plain `torch` would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $@

install: $(STAMP)

demo: $(STAMP)
	mkdir -p $(DAGSTER_HOME) && cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/mmp ingest demo/media
	$(BIN)/mmp status

lint: $(STAMP)
	$(BIN)/ruff check mm_platform assets sensors tests benchmarks definitions.py
	$(BIN)/mypy mm_platform assets sensors definitions.py

# PostgreSQL on 127.0.0.1:5432 (the Dagster instance tests), Redis on 127.0.0.1:6379 (the Celery broker of
# deploy/celery) and headless Chromium (the UI screenshot); idempotent.
services:
	scripts/ensure_postgres.sh
	scripts/ensure_redis.sh
	scripts/ensure_chromium.sh

test: $(STAMP) lint services
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf lake .dagster_home .test-artifacts
