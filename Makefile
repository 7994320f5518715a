# The two commands of the README: `make run` and `make test`.
# Both work on a fresh machine with only Python 3.11 and make: they create .venv and install.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
PELICANFS_VENV := .venv-pelicanfs
PELICANFS_STAMP := $(PELICANFS_VENV)/.installed-$(shell cat requirements-pelicanfs.txt | cksum | cut -d' ' -f1)
DIRECTOR_DEMO ?= 1
HOST ?= 127.0.0.1
PORT ?= 8000
TLS_PORT ?= 8443

SCENARIO ?=
DURATION ?=
BENCH_STAMP := $(VENV)/.bench-installed-$(shell cat bench/requirements.txt | cksum | cut -d' ' -f1)

.PHONY: run test lint format install bench system-packages superuser

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || { echo "make: creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "make: installing the pinned requirements into $(VENV) (about a minute the first time)"
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

# pelicanfs, a real Pelican client, in a virtualenv of its own (requirements-pelicanfs.txt).
$(PELICANFS_STAMP): requirements-pelicanfs.txt
	@test -x $(PELICANFS_VENV)/bin/python || $(PYTHON) -m venv $(PELICANFS_VENV)
	$(PELICANFS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-pelicanfs.txt
	@rm -f $(PELICANFS_VENV)/.installed-*
	@touch $(PELICANFS_STAMP)

install: $(STAMP) $(PELICANFS_STAMP)

# HTTP on PORT and HTTPS on TLS_PORT, with a local CA made once into demo-tls/.
run: $(STAMP) $(PELICANFS_STAMP)
	@echo "make: migrating the database (DATABASE_URL, default db.sqlite3)"
	$(PY) manage.py migrate --noinput
	$(PY) manage.py serve --host $(HOST) --port $(PORT) --tls-port $(TLS_PORT) --demo-tls $(if $(filter 0,$(DIRECTOR_DEMO)),,--demo)

# A staff account for the admin and the console (asks for a name and a password).
superuser: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py createsuperuser

# Debian packages for the real peers (.ci/system-packages.txt), installed when missing.
system-packages:
	@.ci/system-packages

test: $(STAMP) $(PELICANFS_STAMP) system-packages
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) manage.py check --fail-level WARNING
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest $(PYTEST_ARGS)
	$(PY) tests/on_postgres.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

$(BENCH_STAMP): $(STAMP) bench/requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@.ci/system-packages wrk
	@command -v wrk >/dev/null || { echo "wrk is needed: install it (Debian: apt-get install wrk)"; exit 1; }
	@rm -f $(VENV)/.bench-installed-*
	@touch $(BENCH_STAMP)

# Every scenario in its quick form (about 5 minutes), or one: make bench SCENARIO=slow-origin DURATION=60
bench: $(BENCH_STAMP)
	$(PY) -m bench.run $(if $(SCENARIO),--scenario $(SCENARIO)) $(if $(DURATION),--duration $(DURATION))
