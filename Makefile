# Entry points for people and CI. Extra pytest arguments: make test ARGS="-k status"
SHELL := /bin/bash
ARGS ?=

.PHONY: bootstrap demo test unit integration lint fmt down

bootstrap:
	scripts/bootstrap.sh

demo: bootstrap
	uv run zhucun infra up
	uv run zhucun services up
	uv run zhucun infra status
	uv run zhucun services status
	uv run zhucun demo

# The whole suite. A run that collects nothing exits 5 and fails, like any other failure:
# a suite that silently stopped finding its tests is not green.
test: bootstrap
	uv run pytest $(ARGS)

# The fast tests only: pure, no servers (seconds).
unit: bootstrap
	uv run pytest -m unit $(ARGS)

# The tests against the real Kafka and PostgreSQL (and the image, where podman works).
integration: bootstrap
	uv run pytest -m "integration or e2e" $(ARGS)

lint:
	@# The lock must match every pyproject.toml: installs use --frozen, which would hide a
	@# dependency added to (or removed from) a member without locking it.
	uv lock --check
	uv run ruff check .
	uv run ruff format --check .
	@# mypy --strict (pyproject.toml): the product and the dev tooling, then the tests and benches.
	@# A file's module name is its path from the nearest base: a mypy_path entry (the src
	@# folders; tests, devtools/tests and shared/tests, whose helpers are imported by name),
	@# else the repository root (explicit_package_bases). So the many conftest.py and
	@# test_contract.py do not collide (services/dispatch/tests/test_contract.py is
	@# services.dispatch.tests.test_contract); two test modules of one name directly in tests/,
	@# shared/tests or devtools/tests would ("Duplicate module named"): rename one.
	uv run mypy shared/src contracts/*/src src services/*/src devtools/src
	uv run mypy shared/tests contracts services/*/tests tests devtools/tests bench conftest.py

# Rewrites the code in the project's format and applies ruff's safe fixes.
fmt:
	uv run ruff format .
	uv run ruff check --fix .

down:
	uv run zhucun services down
	uv run zhucun infra down
