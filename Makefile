# Entry points for people and CI. Extra pytest arguments: make test ARGS="-m unit"
SHELL := /bin/bash
ARGS ?=
# CI sets NO_TESTS_OK=1: pytest's exit 5 (nothing collected) is then reported, not fatal.
NO_TESTS_OK ?= 0

.PHONY: bootstrap demo test lint down

bootstrap:
	scripts/bootstrap.sh

demo: bootstrap
	uv run zhucun infra up
	uv run zhucun services up
	uv run zhucun infra status
	uv run zhucun services status
	uv run zhucun demo

test: bootstrap
	@status=0; uv run pytest $(ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then \
		echo "make test: pytest collected no tests (exit 5)"; \
		if [ "$(NO_TESTS_OK)" = 1 ]; then \
			echo "make test: accepted because NO_TESTS_OK=1"; status=0; \
		fi; \
	fi; \
	exit $$status

lint:
	@# The lock must match every pyproject.toml: installs use --frozen, which would hide a
	@# dependency added to (or removed from) a member without locking it.
	uv lock --check
	uv run ruff check .
	uv run ruff format --check .
	uv run mypy shared/src src services/*/src devtools/src

down:
	uv run zhucun services down
	uv run zhucun infra down
