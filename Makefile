# The two commands of a fresh machine (see README.md). Both set up what is missing first.
PY := .venv/bin/python
# The main job: table 1 from the committed runs of results/mini, printed and written in
# seconds (nothing to train on a fresh clone: tests/test_project.py checks it).
MAIN_JOB := cli.py reproduce table1 --preset mini --seeds 3 --arch resnet_mini

.PHONY: setup reproduce test
setup:
	@bash scripts/setup.sh

reproduce: setup
	$(PY) $(MAIN_JOB)

test: setup
	$(PY) -m pytest -q
