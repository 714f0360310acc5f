# linkmeter: `make run` runs the product, `make test` runs every check. Both set up .venv on first use;
# `make test` (and `make pytest`) also prepare the machine: the services and the browser the tests need.
PYTHON ?= $(shell scripts/find-python)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test prepare lint typecheck contracts pytest bench lock clean

# `make run ARGS=--demo` runs it offline against the built-in emulator; any `linkmeter serve` option works.
run: $(STAMP)
	$(BIN)/linkmeter serve $(ARGS)

test: prepare lint typecheck contracts pytest

# Starts PostgreSQL, Redis and RabbitMQ when their port is closed and installs Debian's chromium when
# /usr/bin/chromium is missing (milliseconds when all is there); names what it cannot provide, and stops.
prepare:
	@scripts/services-up

lint: $(STAMP)
	$(BIN)/ruff check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

pytest: prepare $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/linkmeter bench --urls 5000 --concurrency 200 --latency-ms 100

# Re-pin every dependency (direct and transitive) after changing pyproject.toml: resolved in a throw-away
# virtual environment so that tools installed by hand in .venv never leak into the lock.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q --disable-pip-version-check '.[dev]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^linkmeter' > requirements.lock
	rm -rf .lock-venv

$(STAMP): pyproject.toml requirements.lock
	@test -n "$(PYTHON)" || { echo "no Python >= 3.12 found" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
