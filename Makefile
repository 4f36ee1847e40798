# The two commands of a fresh machine (see README.md). Both set up what is missing first.
PY := .venv/bin/python

.PHONY: setup reproduce test
setup:
	@bash scripts/setup.sh

reproduce: setup
	$(PY) cli.py reproduce table1

test: setup
	$(PY) -m pytest -q
