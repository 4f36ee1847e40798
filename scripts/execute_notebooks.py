"""Execute the notebooks in place (outputs written into them) with nbclient, in the kernel of
this Python (run it with .venv/bin/python), from notebooks/ as Jupyter does.

    .venv/bin/python scripts/execute_notebooks.py                      # results/mini, all notebooks
    ADN_RESULTS=/tmp/r ADN_PRESET=smoke .venv/bin/python scripts/execute_notebooks.py notebooks/02-residual-norms.ipynb

ADN_RESULTS (a results directory; default results/) and ADN_PRESET (default mini) reach the
notebooks' first cell through the environment; a relative ADN_RESULTS is taken from the
directory this script is run in.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbclient
import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def main(paths: list[str]) -> int:
    if "ADN_RESULTS" in os.environ:
        os.environ["ADN_RESULTS"] = os.path.abspath(os.environ["ADN_RESULTS"])
    for path in [Path(p) for p in paths] or sorted(NOTEBOOKS.glob("*.ipynb")):
        started = time.perf_counter()
        notebook = nbformat.read(path, as_version=4)
        client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                         resources={"metadata": {"path": str(path.resolve().parent)}})
        try:
            client.execute()
        except nbclient.exceptions.CellExecutionError as error:
            print(f"{path}: a cell failed (not written):\n{error}", file=sys.stderr)
            return 1
        nbformat.write(notebook, path)
        print(f"{path}: executed in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
