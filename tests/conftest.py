import os

import pytest
import torch

from repro.data.idx import DEBIAN_FOLDER as FASHION

# Debian's dataset-fashion-mnist; the tests that read it carry ``needs_fashion``.
needs_fashion = pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
# Skip reasons that mean "a data set is missing" contain this.
MISSING_DATA = "fashion-mnist"


def pytest_configure(config):
    """Under pytest-xdist (``make test`` runs one worker per core) each worker takes its share of
    the cores, and so do the processes its tests start: two workers of two threads each on two
    cores would fight over them. An OMP_NUM_THREADS set by the user is left as it is."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and "OMP_NUM_THREADS" not in os.environ:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        share = max(1, cores // int(workers))
        torch.set_num_threads(share)
        os.environ["OMP_NUM_THREADS"] = str(share)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def small_input(spec, batch=2):
    """The smallest input each registered architecture is built for."""
    return torch.randn(batch, spec.in_channels, spec.resolution, spec.resolution)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With ADN_REQUIRE_DATA=1 (set by .ci/run, whose set-up installs the data), a test
    skipped for missing data fails instead: CI must not pass with those tests unrun."""
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and os.environ.get("ADN_REQUIRE_DATA") == "1"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if MISSING_DATA in reason.lower():
        report.outcome = "failed"
        report.longrepr = f"skipped for missing data ({reason.removeprefix('Skipped: ')}), but ADN_REQUIRE_DATA=1 requires it"
