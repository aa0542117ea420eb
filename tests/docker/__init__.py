"""The container smoke test (`make docker-test`, `python -m tests.docker`); not run by pytest."""
