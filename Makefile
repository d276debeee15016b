# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT

.PHONY: run test lint format bench clean-var

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.requirements: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.requirements-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.requirements

## run: the whole system (web, worker on every queue, beat) on the embedded default
run: $(VENV)/.requirements
	$(BIN)/python manage.py migrate --noinput
	@# The sandbox payment gateway and carrier keep their state in a store of their own (var/sandbox.sqlite3 here).
	$(BIN)/python manage.py migrate --database sandbox --noinput
	$(BIN)/python manage.py seed_demo
	@echo ""
	@echo "  Shop:        http://127.0.0.1:$(PORT)/"
	@echo "  Admin:       http://127.0.0.1:$(PORT)/admin/"
	@echo "  API schema:  http://127.0.0.1:$(PORT)/api/schema/  (docs: /api/docs/)"
	@echo ""
	@# Metrics the last run's processes left (prometheus_client multiprocess files) would add to this run's.
	rm -f "$${PROMETHEUS_MULTIPROC_DIR:-var/prometheus}"/*.db
	@# The Celery app defaults to the production settings: name the development ones (manage.py's default).
	DJANGO_SETTINGS_MODULE="$${DJANGO_SETTINGS_MODULE:-config.settings.local}" \
		PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile

## run-prod: the production processes (Procfile.prod) on the local PostgreSQL and Redis, production settings
# gunicorn, a Celery worker per group of queues, beat and the relay, with a secret generated once into
# var/prod-local.env (scripts/run_prod.sh; docs/deployment.md).
.PHONY: run-prod
run-prod: $(VENV)/.requirements
	BIN="$(CURDIR)/$(BIN)" scripts/run_prod.sh

## test: the whole suite against PostgreSQL and Redis; the outbox's own suite in its own minimal project
test: $(VENV)/.requirements-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(BIN)/python -m pytest tests/outbox --ds=tests.outbox.project.settings $(PYTEST_ARGS)

## bench: the benchmark suite against its plain-Celery floor, medians of 3 runs (docs/benchmarks.md)
bench: $(VENV)/.requirements-dev
	$(BIN)/python -m bench all $(BENCH_ARGS)

lint: $(VENV)/.requirements-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# The import contracts of pyproject.toml ([tool.importlinter]): the outbox imports no context, nor config.
	$(BIN)/lint-imports

format: $(VENV)/.requirements-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
