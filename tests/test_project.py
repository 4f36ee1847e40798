"""Project files in step: environment.yml's pip section lists exactly pyproject.toml's
dependencies and optional extras (the conda environment is the full development set), and
the packages depend on each other in one direction only (paper -> repro, analysis)."""
import ast
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.conftest import needs_fashion

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_lists_the_dependencies_and_every_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted |= set(extra)
    conda = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    pip = next(entry["pip"] for entry in conda if isinstance(entry, dict))
    assert set(pip) - {"-e ."} == wanted


def test_the_deploy_extra_is_part_of_the_test_extra():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras["deploy"]) <= set(extras["test"])


def imported_packages(package: str) -> dict[str, set[str]]:
    """Every top-level package each module of ``package`` imports, at any depth of the code."""
    found = {}
    for path in (ROOT / package).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("package, forbidden", [("repro", {"paper", "analysis"}), ("analysis", {"paper", "torch"})])
def test_dependencies_point_one_way(package, forbidden):
    offenders = {module: names & forbidden for module, names in imported_packages(package).items() if names & forbidden}
    assert not offenders


def main_job() -> list[str]:
    line = next(line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("MAIN_JOB :="))
    return line.split(":=", 1)[1].split()


def test_the_readme_opens_with_the_main_job():
    first_line = (ROOT / "README.md").read_text().splitlines()[0]
    assert "make reproduce" in first_line and " ".join(main_job()[1:]) in first_line


@needs_fashion
def test_the_main_job_has_nothing_to_train_or_measure_on_a_fresh_clone():
    import subprocess
    import sys

    assert "--no-train" in main_job()  # it draws from the committed runs, whatever is still training
    result = subprocess.run([sys.executable, *main_job(), "--dry-run"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert ", 0 measurements to take" in result.stdout and "to train " not in result.stdout, result.stdout
    # every row of table 1 has at least one finished seed to draw from
    finished = {line.split()[1].split("-fashion_mnist")[0] for line in result.stdout.splitlines()
                if line.strip().startswith("finished")}
    for arch, full, base in (("resnet_mini", "FFFF", "TTTT"), ("mobilenet_v2_mini", "FFFFF", "TTTTT"),
                             ("vit_mini", "FFFF", "TTTT")):
        assert {f"{arch}-adn", f"{arch}-individual-{full}", f"{arch}-individual-{base}"} <= finished, arch
