# The two commands a newcomer needs: `make run` and `make test`.

# PYTHON
# ------------------------------------------------------------------------------
# Any Python from 3.11 up: the newest of python3.13, python3.12, python3.11 on PATH that runs,
# or the one named (`make run PYTHON=/usr/local/bin/python3.12`). It only makes the venv.
MIN_PYTHON := 3.11
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for p in python3.13 python3.12 python3.11; do \
	"$$p" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { command -v "$$p"; break; }; done)
endif
# A venv per Python if you like: `make test VENV=.venv-3.13 PYTHON=python3.13`.
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT

.PHONY: run test lint format bench clean-var lock upgrade python-check port-check install install-dev

python-check:
	@if [ ! -x "$(BIN)/python" ]; then \
		if [ -z "$(PYTHON)" ]; then \
			echo "make: no Python $(MIN_PYTHON) or newer on PATH (looked for python3.13, python3.12, python3.11)." >&2; \
			echo "  Install one, e.g. 'sudo apt install python3.11-venv' (Debian/Ubuntu), 'brew install python@3.13'" >&2; \
			echo "  (macOS) or from https://www.python.org/downloads/; or name one: make run PYTHON=/path/to/python3.12" >&2; \
			exit 1; \
		fi; \
		"$(PYTHON)" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
			echo "make: PYTHON=$(PYTHON) is not Python $(MIN_PYTHON) or newer (or does not run); install one," >&2; \
			echo "  e.g. 'sudo apt install python3.11-venv' or 'brew install python@3.13', and name it with PYTHON=..." >&2; \
			exit 1; }; \
	fi

# DEPENDENCIES
# ------------------------------------------------------------------------------
# requirements.in / requirements-dev.in hold the direct dependencies; `make lock` compiles them, with every
# transitive one and the hashes of their files, into requirements.txt / requirements-dev.txt, which are all
# that is ever installed (--require-hashes).
$(BIN)/python: | python-check
	"$(PYTHON)" -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.requirements: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.txt
	touch $@

$(VENV)/.requirements-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.txt
	touch $@ $(VENV)/.requirements

install: $(VENV)/.requirements
install-dev: $(VENV)/.requirements-dev

# PIP-COMPILE resolves against PyPI alone, whatever this machine's pip configuration adds (other indexes,
# find-links), and keeps the versions already locked unless an .in file asks for another; `make upgrade`
# moves every transitive dependency to its newest release the .in pins allow.
PIP_COMPILE = PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= PIP_EXTRA_INDEX_URL= $(BIN)/python -m piptools compile \
	--quiet --generate-hashes --allow-unsafe --strip-extras --resolver backtracking \
	--index-url https://pypi.org/simple --no-emit-index-url --no-emit-find-links

## lock: compile requirements*.in into the hashed requirements*.txt (after editing an .in file)
# On Python 3.11, the oldest supported: what a dependency needs only there (async-timeout below 3.11.3) is then
# in the lock too, and newer Pythons need nothing 3.11 does not (checked on 3.13); each pin carries the hashes of
# all its files, so every Python's wheels are allowed.
lock: $(VENV)/.requirements-dev
	@$(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
		echo "make lock: resolve on Python 3.11 (the oldest supported), e.g. make lock VENV=.venv-3.11 PYTHON=python3.11" >&2; \
		exit 1; }
	$(PIP_COMPILE) $(LOCK_ARGS) --output-file requirements.txt requirements.in
	$(PIP_COMPILE) $(LOCK_ARGS) --output-file requirements-dev.txt requirements-dev.in

## upgrade: the same, every transitive dependency at its newest release the .in files allow
upgrade:
	$(MAKE) lock LOCK_ARGS=--upgrade

# RUN
# ------------------------------------------------------------------------------
port-check:
	@# Before anything starts: a port in use would stop every process a moment after they started.
	@"$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))" scripts/check_port.py "$(PORT)"

## run: the whole system (web, worker on every queue, beat) on the embedded default
run: python-check port-check $(VENV)/.requirements
	$(BIN)/python manage.py migrate --noinput
	@# The sandbox payment gateway and carrier keep their state in a store of their own (var/sandbox.sqlite3 here).
	$(BIN)/python manage.py migrate --database sandbox --noinput
	$(BIN)/python manage.py seed_demo
	@# Metrics the last run's processes left (prometheus_client multiprocess files) would add to this run's.
	rm -f "$${PROMETHEUS_MULTIPROC_DIR:-$${VAR_DIR:-var}/prometheus}"/*.db
	@# The Celery app defaults to the production settings: name the development ones (manage.py's default).
	@# The Procfile's banner prints the URLs and demo users once the web answers (honcho hands each process a
	@# PORT of its own, counting up from the web's: the banner is told the web's as WEB_PORT).
	DJANGO_SETTINGS_MODULE="$${DJANGO_SETTINGS_MODULE:-config.settings.local}" WEB_PORT="$(PORT)" \
		PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile

## run-prod: the production processes (Procfile.prod) on the local PostgreSQL and Redis, production settings
# gunicorn, a Celery worker per group of queues, beat and the relay, with a secret generated once into
# var/prod-local.env (scripts/run_prod.sh; docs/deployment.md).
.PHONY: run-prod
run-prod: python-check $(VENV)/.requirements
	BIN="$(CURDIR)/$(BIN)" scripts/run_prod.sh

# TEST
# ------------------------------------------------------------------------------
## test: the whole suite against PostgreSQL and Redis; the outbox's own suite in its own minimal project
test: $(VENV)/.requirements-dev
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/coverage run -m pytest tests/outbox --ds=tests.outbox.project.settings $(PYTEST_ARGS)
	@# Both runs and every worker, relay and server they started ([tool.coverage.*] in pyproject.toml);
	@# the floor (fail_under) holds for the whole suite, not for a run narrowed with PYTEST_ARGS.
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report $(if $(PYTEST_ARGS),--fail-under=0)

## bench: the benchmark suite against its plain-Celery floor, medians of 3 runs (docs/benchmarks.md)
bench: $(VENV)/.requirements-dev
	$(BIN)/python -m bench all $(BENCH_ARGS)

# LINT
# ------------------------------------------------------------------------------
lint: $(VENV)/.requirements-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# The import contracts of pyproject.toml ([tool.importlinter]): the outbox imports no context, nor config.
	$(BIN)/lint-imports
	$(BIN)/mypy

format: $(VENV)/.requirements-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
