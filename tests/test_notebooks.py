"""notebooks/: executed with nbclient in this Python's kernel, so they cannot rot.

They read the seed-0 resnet_mini runs (ADN and individual FFFF) of results/mini when those
have finished with their model.pt; otherwise the two runs are trained here with the smoke
preset into a temporary folder, and the notebooks point there through ADN_RESULTS and
ADN_PRESET. The committed notebooks must carry the outputs of an execution
(scripts/execute_notebooks.py writes them).
"""
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

from repro.presets import make_spec
from repro.runs import RunRecord, run_directory
from repro.train import Runtime, train
from tests.conftest import needs_fashion

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _specs(preset: str):
    return [make_spec("resnet_mini", "adn", "fashion_mnist", preset, seed=0),
            make_spec("resnet_mini", "individual", "fashion_mnist", preset, seed=0, options={"depth": "FFFF"})]


def _execute(notebook, timeout=600):
    """Runs every cell in the python3 kernel, from notebooks/ as Jupyter does; raises
    CellExecutionError on the first cell that raises."""
    client = nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT / "notebooks")}})
    return client.execute()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """(results directory, preset) holding finished seed-0 ADN and individual FFFF runs."""
    committed = [RunRecord(run_directory(ROOT / "results", spec)) for spec in _specs("mini")]
    if all(r.is_finished() and r.model_file.is_file() for r in committed):
        return ROOT / "results", "mini"
    folder = tmp_path_factory.mktemp("results")
    for spec in _specs("smoke"):
        train(spec, Runtime(results_dir=str(folder), device="cpu", progress=False))
    return folder, "smoke"


def test_there_are_three_notebooks():
    assert [p.name for p in NOTEBOOKS] == ["01-quickstart.ipynb", "02-residual-norms.ipynb", "03-pareto.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebooks_carry_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert cells
    for cell in cells:
        assert cell.execution_count is not None and cell.outputs, f"{path.name}: cell without outputs:\n{cell.source}"
        assert not [o for o in cell.outputs if o.output_type == "error"], f"{path.name}: an error is committed"
        assert "def " not in cell.source, f"{path.name}: notebooks are views; functions live in repro/ or analysis/"


def test_the_kernel_is_this_python():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; print(sys.executable)")])
    _execute(notebook, timeout=120)
    assert notebook.cells[0].outputs[0].text.strip() == sys.executable


@pytest.mark.slow
@needs_fashion
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, results, monkeypatch):
    folder, preset = results
    monkeypatch.setenv("ADN_RESULTS", str(folder))  # the kernel inherits this process's environment
    monkeypatch.setenv("ADN_PRESET", preset)
    notebook = _execute(nbformat.read(path, as_version=4))
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs, f"{path.name}: no output from\n{cell.source}"
