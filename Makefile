# The two commands of a fresh machine (see README.md). Both set up what is missing first.
PY := .venv/bin/python
# The main job: table 1 (every CPU-sized architecture) from the committed runs of results/mini,
# printed and written in seconds; --no-train: seeds still training elsewhere are named in the
# table, never trained here (tests/test_project.py checks that it has nothing to do but draw).
MAIN_JOB := cli.py reproduce table1 --preset mini --seeds 3 --no-train

.PHONY: setup reproduce test
setup:
	@bash scripts/setup.sh

reproduce: setup
	$(PY) $(MAIN_JOB)

test: setup
	$(PY) -m pytest -q -n auto --dist loadscope
