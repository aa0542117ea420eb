# Two commands matter: `make run` (the broker with embedded defaults) and `make test`.
# Both create or update the environment they need with uv (installed into .tools/ if missing).
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PYTEST_WORKERS ?= 2

.PHONY: run test lint fmt sync check-redis check-chromium bench fuzz soak-failover demo docs docker-check docker-test clean

$(UV):
	python3 -m venv .tools && .tools/bin/pip install --quiet uv

sync: $(UV)
	$(UV) sync --all-packages --locked --quiet

check-redis:
	@command -v redis-server >/dev/null || { echo "redis-server is not installed: sudo apt-get install redis-server" >&2; exit 1; }

# tests/browser drive Debian's Chromium (Playwright never downloads a browser here).
check-chromium:
	@test -x "$${VOUCH_CHROMIUM:-/usr/bin/chromium}" || { echo "chromium is not installed (the browser tests need it): sudo apt-get install chromium" >&2; exit 1; }

lint: sync
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy

fmt: sync
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

test: lint check-redis check-chromium
	$(UV) run pytest -n $(PYTEST_WORKERS) --cov --cov-report=term:skip-covered

run: sync check-redis  # options pass through: make run ARGS="--port 8081 --state-dir .vouch-dev-2"
	$(UV) run vouch-broker dev $(ARGS)

docs: sync
	$(UV) run python -m vouch_devtools.config_reference > docs/configuration.md

docker-check: sync
	$(UV) tool run check-jsonschema --builtin-schema vendor.compose-spec docker/compose.yaml

# The container smoke test (tests/docker): needs a Docker engine; not part of `make test`.
# DOCKER_IMAGES=public pulls the base images instead of building them from Debian packages.
docker-test: sync
	$(UV) run python -m tests.docker --images $(or $(DOCKER_IMAGES),local)

fuzz: sync check-redis
	$(UV) run python -m tests.fuzz --examples 2000

# Redis failovers under load (tests/failover): ROUNDS pause and ROUNDS kill rounds for Sentinel
# and for Cluster (about 25 s a round); prints each round and the totals, exits 1 on any lost
# acknowledged revocation or stale read. Not part of `make test`, which runs one of each.
ROUNDS ?= 20
soak-failover: sync check-redis
	$(UV) run python -m tests.failover --rounds $(ROUNDS)

demo: sync check-redis
	$(UV) run vouch-broker demo

bench: sync check-redis  # options pass through: make bench ARGS="--only limits,hit,peer --baseline 5f6a906"
	$(UV) run python -m tests.bench $(ARGS)

clean:
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache .coverage
