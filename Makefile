# Local development and CI entry points. The logic lives in deploy/scripts/*.sh.
#
#   make up        everything: PostgreSQL, Kafka, topics, migrations, the three services
#   make down      stop it all (idempotent)
#   make infra-up  PostgreSQL + Kafka + topics only (what the tests need)
#   make test      lint + infra-up + browser + pytest
#   make browser   headless Chromium and its driver for the console's browser tests
#
# Set DATABASE_URL to use your own database instead of the private cluster.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SCRIPTS := deploy/scripts

.PHONY: help venv up down infra-up infra-down browser migrate lint test run bench bench-pair bench-scheduler bench-api bench-audience bench-campaign chaos status clean

help:
	@echo "targets: venv up down infra-up infra-down browser migrate lint test run bench bench-pair bench-scheduler bench-api bench-audience bench-campaign chaos status clean"

$(STAMP): pyproject.toml
	$(SCRIPTS)/venv.sh
	touch $@

venv: $(STAMP)

infra-up: venv
	@if [[ -n "$${DATABASE_URL:-}" ]]; then \
	  echo "DATABASE_URL is set: not starting the private PostgreSQL cluster"; \
	else \
	  $(SCRIPTS)/postgres.sh start; \
	fi
	$(SCRIPTS)/kafka.sh fetch start wait topics

browser:
	$(SCRIPTS)/browser.sh

infra-down:
	$(SCRIPTS)/kafka.sh stop
	$(SCRIPTS)/postgres.sh stop

migrate: venv
	$(SCRIPTS)/services.sh env migrate

up: infra-up
	$(SCRIPTS)/services.sh env migrate start wait

down:
	$(SCRIPTS)/services.sh stop
	$(MAKE) --no-print-directory infra-down

status:
	@$(SCRIPTS)/services.sh status || true
	@$(SCRIPTS)/kafka.sh status || true
	@$(SCRIPTS)/postgres.sh status || true

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: venv lint infra-up browser
	$(BIN)/pytest $(PYTEST_ARGS)

run: up
	$(SCRIPTS)/services.sh env
	set -a; . .local/env; set +a; $(BIN)/python -m services.demo
	$(SCRIPTS)/services.sh summary

# Event-path bench; sizes and the service checkout come from BENCH_* variables (README, Performance).
bench: infra-up
	$(BIN)/python -m tests.bench.engagement_bench

# The same, plus a drain by two engagement processes in one consumer group.
bench-pair: infra-up
	BENCH_PROCESSES=2 $(BIN)/python -m tests.bench.engagement_bench

bench-scheduler: infra-up
	$(BIN)/python -m tests.bench.scheduler_bench

# wrk drives the API from outside Python; installed from Debian's packages when missing.
bench-api: infra-up
	command -v wrk >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get update -q; apt-get install -y -q wrk; }
	$(BIN)/python -m tests.bench.api_bench

# Segment counts, previews and a CSV export over BENCH_MEMBERS members (default 1,000,000) in BENCH_SHOPS shops (1).
bench-audience: infra-up
	$(BIN)/python -m tests.bench.audience_bench

# A campaign wave to BENCH_MEMBERS members (default 1,000,000), its relay to Kafka and its report.
bench-campaign: infra-up
	$(BIN)/python -m tests.bench.campaign_bench

# The fault suite runs its own stack (.local/chaos, other ports), never the development one.
chaos: venv
	$(BIN)/python -m tests.chaos.fault_suite

clean: down
	rm -rf .local
