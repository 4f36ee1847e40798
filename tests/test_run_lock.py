"""One process trains a run at a time (repro/run_lock.py): a second one is refused, or
waits and then reuses or finishes the run; reproduce and the pool train the other runs
first."""
import os
import shutil
import threading
import time

import pytest

import paper.reproduce as reproduce_module
from paper.plan import PlannedRun
from repro.presets import make_spec
from repro import run_lock
from repro.run_lock import RunBusy, holding, lock_file
from repro.run_pool import FINISHED, train_concurrently
from repro.runs import RunRecord, run_directory
from repro.train import Runtime, train

pytestmark = pytest.mark.skipif(run_lock.fcntl is None, reason="runs are not locked without flock (Windows)")
TINY = {"train_subset": 64, "batch_size": 16, "val_size": 32, "test_subset": 32, "recalibrate_bn_images": 32}


def tiny(seed: int = 0):
    return make_spec("resnet_mini", "individual", "fake", "quick", seed=seed, options={"depth": "TTTT"},
                     recipe=TINY)


def runtime(results_dir, **choices) -> Runtime:
    return Runtime(results_dir=str(results_dir), device="cpu", progress=False, **choices)


def hold_in_background(path, until: threading.Event, before_release=lambda: None) -> threading.Event:
    """Holds ``path``'s lock in a thread until ``until`` is set; returns the event set once held."""
    held = threading.Event()

    def holder():
        with holding(path):
            held.set()
            until.wait(120)
            before_release()

    threading.Thread(target=holder, daemon=True).start()
    assert held.wait(30)
    return held


def test_a_second_holder_is_refused_with_the_first_ones_pid_and_the_empty_directory_goes(tmp_path):
    run = tmp_path / "run"
    with holding(run):
        with pytest.raises(RunBusy, match=f"pid {os.getpid()}"):
            with holding(run):
                pass
    assert not run.exists()


def test_the_lock_file_goes_and_the_record_stays(tmp_path):
    run = tmp_path / "run"
    with holding(run):
        assert lock_file(run).is_file()
        (run / "spec.json").write_text("{}")
    assert [entry.name for entry in run.iterdir()] == ["spec.json"]


def test_a_run_trained_elsewhere_is_refused_and_left_untouched(tmp_path):
    spec = tiny()
    path = run_directory(tmp_path, spec)
    with holding(path):
        with pytest.raises(RunBusy, match="being trained by another process"):
            train(spec, runtime(tmp_path, resume=True))
        assert [entry.name for entry in path.iterdir()] == [".lock"]


def test_a_waiting_train_starts_once_the_holder_lets_go(tmp_path):
    spec = tiny()
    path = run_directory(tmp_path, spec)
    release = threading.Event()
    hold_in_background(path, release)
    waiter = threading.Thread(target=train, args=(spec, runtime(tmp_path, wait_if_busy=True)))
    waiter.start()
    time.sleep(0.5)
    assert waiter.is_alive() and not RunRecord(path).exists()  # waiting, not failed, not training
    release.set()
    waiter.join(120)
    assert RunRecord(path).is_finished()


def test_a_waiting_train_reuses_the_run_its_holder_finished(tmp_path):
    spec = tiny()
    finished_elsewhere = train(spec, runtime(tmp_path / "elsewhere")).record.path
    path = run_directory(tmp_path, spec)
    release = threading.Event()
    hold_in_background(path, release, before_release=lambda: shutil.copytree(finished_elsewhere, path,
                                                                               dirs_exist_ok=True))
    threading.Timer(0.3, release.set).start()
    result = train(spec, runtime(tmp_path, wait_if_busy=True))
    assert result.reused and result.record.is_finished()


def test_reproduce_trains_the_other_runs_first_then_waits_for_the_busy_one(tmp_path, monkeypatch):
    calls = []

    def fake_train(spec, rt):
        calls.append((spec.seed, rt.wait_if_busy))
        if spec.seed == 0 and not rt.wait_if_busy:
            raise RunBusy(f"run {spec.run_id} is being trained by another process (pid 1)", "1")

    monkeypatch.setattr(reproduce_module, "train", fake_train)
    todo = [PlannedRun(spec, RunRecord(run_directory(tmp_path, spec))) for spec in (tiny(0), tiny(1))]
    said = []
    reproduce_module.train_missing(todo, runtime(tmp_path), said.append)
    assert calls == [(0, False), (1, False), (0, True)]
    assert any("another process (pid 1) is training it: training the others first" in line for line in said)


def test_the_pool_trains_the_free_run_while_another_process_holds_the_first(tmp_path, capsys):
    busy, free = tiny(0), tiny(1)
    free_record = RunRecord(run_directory(tmp_path, free))
    release = threading.Event()
    hold_in_background(run_directory(tmp_path, busy), release)

    def release_once_the_free_run_finished():
        deadline = time.time() + 240
        while not free_record.is_finished() and time.time() < deadline:
            time.sleep(0.1)
        release.set()

    threading.Thread(target=release_once_the_free_run_finished, daemon=True).start()
    outcome = train_concurrently([busy, free], runtime(tmp_path), jobs=1)
    assert outcome == {busy.run_id: (FINISHED, ""), free.run_id: (FINISHED, "")}
    assert f"busy {busy.run_id}: another process (pid {os.getpid()}) trains it" in capsys.readouterr().out
    busy_started = RunRecord(run_directory(tmp_path, busy)).env()["segments"][0]["started_at"]
    assert busy_started >= free_record.env()["segments"][-1]["ended_at"]
