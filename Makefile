# The shop's commands. `make run` and `make test` work on a fresh machine with Python 3.11.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: run ops lock test serve nginx lint migrate browser bench bench-shed bench-metrics bench-boot chaos loadtest loadtest-ui synth checkov schemathesis clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==25.3

# Stamp files: a venv is reinstalled only when its requirement files change.
# Each requirements/X.txt is a lock with hashes written by `make lock` from requirements/X.in.
PIP_INSTALL := $(PY) -m pip install --quiet --require-hashes --no-deps
$(VENV)/.base: $(PY) requirements/base.txt
	$(PIP_INSTALL) -r requirements/base.txt
	touch $@

$(VENV)/.ops: $(PY) requirements/base.txt requirements/ops.txt
	$(PIP_INSTALL) -r requirements/ops.txt
	touch $@ $(VENV)/.base

$(VENV)/.dev: $(PY) requirements/base.txt requirements/ops.txt requirements/dev.txt
	$(PIP_INSTALL) -r requirements/dev.txt
	touch $@ $(VENV)/.base $(VENV)/.ops

## ops: the ops commands' requirements (troposphere, cfn-lint, ...) in .venv; `make test` installs them too
ops: $(VENV)/.ops

# uv writes the locks; it lives in a virtualenv of its own.
LOCK_VENV := .venv-lock
$(LOCK_VENV)/bin/uv:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet uv==0.13.9
LOCK := $(LOCK_VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11.7 \
	--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)

## lock: rewrite requirements/*.txt (hashed locks) from requirements/*.in; versions kept unless UPGRADE=1
lock: $(LOCK_VENV)/bin/uv
	cd requirements && for set in base ops dev checkov; do UV_PYTHON=$(PYTHON) ../$(LOCK) $$set.in -o $$set.txt || exit 1; done

## run: serve the storefront and API on http://127.0.0.1:8000 (SQLite + local memory, DEBUG on)
run: $(VENV)/.base
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py migrate --noinput
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py seed_products
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py runserver 127.0.0.1:$(PORT)

# pytest-xdist workers, one a core by default; TEST_WORKERS=0 runs the suite in this process. --dist loadgroup keeps
# each xdist_group (tests that must not share the machine with one another) on one worker (docs/testing.md).
TEST_WORKERS ?= auto
## test: the whole suite on every core (PostgreSQL/Redis tests skip unless DATABASE_URL/REDIS_URL are set)
test: $(VENV)/.dev
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# `make test` runs it with 25 examples per operation and phase; SCHEMATHESIS_SEED=n changes the fixed seed.
SCHEMATHESIS_EXAMPLES ?= 200
## schemathesis: the API against /api/schema/ with `--checks all` on gunicorn + PostgreSQL + Redis (DATABASE_URL/REDIS_URL)
schemathesis: $(VENV)/.dev
	SCHEMATHESIS_MAX_EXAMPLES=$(SCHEMATHESIS_EXAMPLES) $(PY) -m pytest tests/shop/test_schemathesis.py $(PYTEST_ARGS)

## serve: production-like: DEBUG off, collectstatic, 100 sample products on an empty database, nginx on 127.0.0.1:$(PORT) in front of gunicorn on a unix socket
## (docs/serving.md); nginx's run directory and logs are .shop/serve/
serve: $(VENV)/.base nginx
	DJANGO_DEBUG=0 $(PY) manage.py migrate --noinput
	DJANGO_DEBUG=0 $(PY) manage.py collectstatic --noinput --verbosity 0
	DJANGO_DEBUG=0 $(PY) manage.py seed_products --if-empty
	DJANGO_DEBUG=0 PORT=$(PORT) TRUSTED_PROXY_COUNT=$${TRUSTED_PROXY_COUNT:-1} $(PY) -m shop.nginx serve

## nginx: install Debian's nginx when it is missing (the front of make serve and tests/shop/test_front.py); only
## the binary is used: make serve runs its own nginx process, never the system's service
nginx:
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { apt-get update && apt-get install -y nginx; }

## browser: install Debian's chromium and chromium-driver when missing (the browser test,
## tests/catalog/test_storefront_browser.py, drives /usr/bin/chromium through /usr/bin/chromedriver)
browser:
	@{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; }

## bench-shed: load shedding at 4x the checkout capacity through nginx (bench/shedding.py, docs/serving.md)
bench-shed: $(VENV)/.base nginx
	$(PY) bench/shedding.py

## bench-metrics: a product cache hit's CPU with the app's metrics off vs on, in one process (DATABASE_URL/REDIS_URL;
## bench/metrics_cost.py, docs/metrics.md)
bench-metrics: $(VENV)/.base
	$(PY) bench/metrics_cost.py

## bench-boot: an instance's boot steps on the public and the baked image, real wheels and stubbed AWS (docs/image.md)
bench-boot: $(VENV)/.dev
	$(PY) -m bench.boot

## bench: wrk against gunicorn + PostgreSQL + Redis beside the floor app; QUICK=1 for a short run (see README)
bench: $(VENV)/.base
	@command -v wrk >/dev/null || apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }
	$(PY) bench/run.py

## chaos: each fault (database frozen/dropped/slow/reset/refused, Redis killed/frozen, stalled clients, killed
## worker, 4x overload) against nginx + gunicorn (as make serve), PostgreSQL and Redis; one table (docs/chaos.md).
## CHAOS_ARGS: --only, --scale
chaos: $(VENV)/.base nginx
	@command -v redis-server >/dev/null || apt-get install -y redis-server || { apt-get update && apt-get install -y redis-server; }
	$(PY) -m chaos $(CHAOS_ARGS)

# Load tests (README: Load tests). A local HOST gets its own gunicorn on DATABASE_URL/REDIS_URL; LOCUST_ARGS go to locust.
TIME_SCALE ?= 1.0
PEAK_USERS ?= 500
HOST ?= http://127.0.0.1:8501
# WORKERS=N: a locust master and N worker processes (master on MASTER_PORT); RESET_STOCK=1: reset the stock of a
# database not marked as a dedicated load-test one without asking (docs/loadtests.md).
WORKERS ?= 0
MASTER_PORT ?= 5557
WEB_PORT ?= 8089
LOADTEST := $(PY) -m loadtests.run --host $(HOST) --time-scale $(TIME_SCALE) --peak-users $(PEAK_USERS) \
	--workers $(WORKERS) --master-port $(MASTER_PORT) --web-port $(WEB_PORT) $(if $(filter 1,$(RESET_STOCK)),--reset-stock)

## loadtest: the Black-Friday shape, headless; prints the summary, exits 1 when a threshold fails, 3 when stopped early
loadtest: $(VENV)/.dev
	$(LOADTEST) -- $(LOCUST_ARGS)

## loadtest-ui: the same with locust's web UI on http://127.0.0.1:$(WEB_PORT) (Ctrl-C stops it and the server)
loadtest-ui: $(VENV)/.dev
	$(LOADTEST) --web-ui -- $(LOCUST_ARGS)

## synth: regenerate templates_cfn/ from opsinfra/cfn, then check them (commit the result with the code)
synth: $(VENV)/.dev
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py synth_stack
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py synth_stack --check

# checkov has a virtualenv of its own: its dependencies conflict with the project's.
CHECKOV_VENV := .venv-checkov
$(CHECKOV_VENV)/.installed: requirements/checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --require-hashes --no-deps -r requirements/checkov.txt
	touch $@

## checkov: the virtualenv tests/opsinfra/test_cfn_checkov.py runs checkov from (the test skips without it)
checkov: $(CHECKOV_VENV)/.installed

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .venv-checkov $(LOCK_VENV) staticfiles .pytest_cache .ruff_cache
