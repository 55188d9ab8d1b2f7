# coinsite: `make run` serves the site on the embedded default, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY := true
# `mlflow models serve` starts uvicorn by name, and honcho's processes call the venv's tools.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# glibc's allocator makes conv-net timings swing up to 3.7x; these two keep them stable.
export MALLOC_MMAP_THRESHOLD_ := 100000000000
export MALLOC_TRIM_THRESHOLD_ := 100000000000
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/coinsite
# The distributed deployment on this machine: production settings (DEBUG off, a generated secret key) over plain
# http on 127.0.0.1, hence DJANGO_HTTPS=0 (behind a TLS proxy, leave it on).
DIST_SECRET := var/distributed/secret-key
DIST_S3_SECRET := var/distributed/s3-secret
DIST_ENV := DATABASE_URL=postgres://postgres@127.0.0.1:5432/coinsite CELERY_BROKER_URL=redis://127.0.0.1:6379/0 \
	MLFLOW_TRACKING_URI=http://127.0.0.1:5000 COINSITE_VAR_DIR=$(CURDIR)/var/distributed CACHE_URL=redis://127.0.0.1:6379/1 \
	DJANGO_DEBUG=0 DJANGO_HTTPS=0 DJANGO_SECRET_KEY="$$(cat $(DIST_SECRET))" \
	AWS_STORAGE_BUCKET_NAME=coinsite AWS_S3_ENDPOINT_URL=http://127.0.0.1:9000 AWS_ACCESS_KEY_ID=coinsite \
	AWS_SECRET_ACCESS_KEY="$$(cat $(DIST_S3_SECRET))"
# Procfile.dev's processes: the production Procfile's web, workers and beat, plus a local MLflow server, and a web
# that creates the demo users (printing their passwords) and the first model before it serves. The Procfile's
# `release` step (migrate + collectstatic) runs before them, once.
DIST_PROCESSES := s3 mlflow web inference training housekeeping beat

.PHONY: help venv venv-runtime lock run run-distributed test test-fast test-postgres browser-deps bench bench-train bench-folds bench-processes lint demo clean \
	pretrain measure-reader collectstatic fuzz

# manage.py runs local settings unless DJANGO_DEBUG says otherwise (DEBUG on, a dev key); gunicorn, Celery and the
# Procfile's release step default to production. The embedded default's tools say so explicitly, and `collectstatic`
# builds whitenoise's manifest as a deployment does (DEBUG off) unless DJANGO_DEBUG is set.
run demo bench bench-train pretrain measure-reader: export DJANGO_DEBUG := 1
collectstatic: export DJANGO_DEBUG ?= 0

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# requirements/*.in name what is wanted; `make lock` compiles them into the lock files, every package pinned with
# its hashes (pip-tools, in a virtualenv of its own). Installs read only the locks, in pip's hash-checking mode.
RUNTIME_LOCK := requirements/runtime.txt
DEV_LOCK := requirements/dev.txt
LOCK_TOOLS := .venv-lock
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_TOOLS)/bin/pip-compile --quiet --generate-hashes --allow-unsafe \
	--strip-extras --no-emit-index-url --no-emit-find-links $(LOCK_ARGS)

# pip's progress through scripts/pip_progress.py: one line per package ("collecting 12/207: torch ..."), a word
# whenever pip is silent for 20 s, no "Location ... is ignored" noise; pip's whole output in $(VENV)/pip-install.log.
PIP_PROGRESS := $(PYTHON) scripts/pip_progress.py --log $(VENV)/pip-install.log --

$(STAMP): $(DEV_LOCK) $(RUNTIME_LOCK)
	@test -x $(PY) || (echo "Creating the virtualenv in $(VENV) ..." && $(PYTHON) -m venv $(VENV))
	@echo "Installing $(DEV_LOCK) into $(VENV) (a fresh clone: about 10 minutes; pip's hash-checking mode)"
	@$(PIP_PROGRESS) $(PY) -m pip install --upgrade pip
	@$(PIP_PROGRESS) $(PY) -m pip install --require-hashes -r $(DEV_LOCK)
	@touch $(STAMP)

venv: $(STAMP) ## create or reuse the virtualenv and install requirements/dev.txt (runtime + tests, lint, demo tools)

venv-runtime: ## a deployment's virtualenv: requirements/runtime.txt only, no test, lint or demo tool
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP_PROGRESS) $(PY) -m pip install --upgrade pip
	@$(PIP_PROGRESS) $(PY) -m pip install --require-hashes -r $(RUNTIME_LOCK)

lock: ## re-compile requirements/*.in into the hashed locks, keeping pins (LOCK_ARGS=--upgrade-package=NAME to move one)
	@test -x $(LOCK_TOOLS)/bin/pip-compile || ($(PYTHON) -m venv $(LOCK_TOOLS) \
		&& $(LOCK_TOOLS)/bin/pip install --quiet pip==23.2.1 pip-tools==7.6.2)
	$(PIP_COMPILE) --output-file $(RUNTIME_LOCK) requirements/runtime.in
	$(PIP_COMPILE) --output-file $(DEV_LOCK) requirements/dev.in

demo: venv ## migrate, create demo users, demo coins and the first trained model (if none is registered)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bootstrap_demo

# The first model trains in a child process of bootstrap_demo while the site is served (lines "[first model] ..."
# in this terminal, and a banner on every page); Ctrl-C stops both, and the next `make run` trains again.
run: venv ## set everything up and serve http://127.0.0.1:8000 on the embedded default (the first model trains meanwhile)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bootstrap_demo --train-in-background
	@echo "Serving coinsite on http://127.0.0.1:8000 (Ctrl-C stops)"
	COINSITE_HOUSEKEEPING_SECONDS=300 COINSITE_WARM_UP_MODEL=1 $(PY) manage.py runserver 127.0.0.1:8000 --noreload

run-distributed: venv ## PostgreSQL + Redis + Celery workers + beat + MLflow server + gunicorn, one Ctrl-C stops all
	@psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='coinsite'" | grep -q 1 \
		|| psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE coinsite"
	mkdir -p var/distributed/s3/coinsite
	@test -s $(DIST_SECRET) || (umask 077 && $(PY) -c "import secrets; print(secrets.token_urlsafe(50))" > $(DIST_SECRET))
	@test -s $(DIST_S3_SECRET) || (umask 077 && $(PY) -c "import secrets; print(secrets.token_urlsafe(30))" > $(DIST_S3_SECRET))
	@chmod 600 $(DIST_SECRET) $(DIST_S3_SECRET)
	$(DIST_ENV) $(PY) manage.py migrate --noinput
	$(DIST_ENV) $(PY) manage.py collectstatic --noinput
	$(DIST_ENV) $(VENV)/bin/honcho -f Procfile.dev start $(DIST_PROCESSES)

collectstatic: venv ## gather static files into STATIC_ROOT with whitenoise's manifest: every deployment runs it
	$(PY) manage.py collectstatic --noinput

browser-deps: venv ## Debian's chromium for the browser tests (Playwright's Python package comes with requirements)
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)

test: venv browser-deps ## the whole suite, six pytest streams at once: four on SQLite/eager, two on PostgreSQL + Redis + Celery
	$(PY) scripts/test_streams.py

test-postgres: venv ## database tests and integration tests on PostgreSQL, Redis and real Celery workers
	$(PY) scripts/test_streams.py --only postgres --only postgres-integration

test-fast: venv ## unit tests only (no browser, no slow, no integration)
	COINSITE_VAR_DIR=$(CURDIR)/var/test $(PY) -m pytest -m "not (integration or browser or slow)"

lint: venv ## ruff, the layer contracts (pyproject.toml), no import cycle, no unexplained import inside a function, no private name used across modules, no function over 80 lines
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PY) scripts/import_cycles.py
	$(PY) scripts/private_names.py
	$(PY) scripts/function_length.py
	DJANGO_DEBUG=1 COINSITE_VAR_DIR=$(CURDIR)/var/test $(PY) manage.py makemigrations --check --dry-run

bench: demo ## /api/predict (gunicorn; SQLite and PostgreSQL) vs in-process vs mlflow models serve (BENCH_ARGS="--repeat 3")
	$(PY) scripts/bench_serving.py $(BENCH_ARGS)

bench-train: venv ## real training pipeline vs a bare PyTorch loop: seconds/epoch, pairs/s, peak RSS
	$(PY) scripts/bench_train.py

bench-processes: venv ## peak RSS of migrate, collectstatic, beat and a page-only request (target <= 200 MB each; no torch)
	$(PY) scripts/process_rss.py

bench-folds: venv ## one K-fold run on 1 then 2 training workers (PostgreSQL + Redis + Celery): wall time ratio
	$(PY) scripts/bench_folds.py

.PHONY: bench-sweep
bench-sweep: venv ## one hyperparameter sweep on 1 then 2 training workers (PostgreSQL + Redis + Celery): wall time ratio
	$(PY) scripts/bench_sweep.py $(BENCH_ARGS)

.PHONY: bench-monitoring
bench-monitoring: venv ## the monitoring page's server time with 10,000 verified coins (target < 300 ms), and its refresh
	$(PY) scripts/bench_monitoring.py $(BENCH_ARGS)

.PHONY: bench-scale
bench-scale: venv ## seed 1M coins into a PostgreSQL database of its own, time the desk, lists, monitoring, sweep (BENCH_ARGS="--coins 100000")
	nice -n 5 $(PY) scripts/bench_scale.py $(BENCH_ARGS)

pretrain: venv ## retrain the base date reader on generated coins (configs/pretrain.yaml; ~35 min on 2 CPU cores)
	$(PY) manage.py pretrain

# Beside the generator's own coins: 300 coins of the tests-only renderer and 300 phone photos of fresh demo coins
# (tests/generalisation; ~1 s a coin to make on 2 cores); MEASURE_ARGS="--renderer 0 --phone 0" leaves them out.
MEASURE_ARGS ?= --northern 200 --renderer 300 --phone 300
measure-reader: venv ## the Production model on 1,000 fresh coins, 300 of the tests-only renderer, 300 phone photos
	$(PY) manage.py measure_reader $(MEASURE_ARGS)

fuzz: venv ## >= 10,000 schemathesis requests against /api/schema/ (COINSITE_FUZZ_REQUESTS, _SEED); fails on any mismatch
	COINSITE_VAR_DIR=$(CURDIR)/var/test $(PY) -m pytest tests/predictions/fuzz_api.py -p no:cacheprovider -q -s

clean: ## remove local state (database, media, MLflow store); keeps the virtualenv
	rm -rf var
