"""The fast engine (issue 12): device-side epoch sums, CPU bf16, the compiled step, and
concurrent runs that leave the same records as runs one after the other."""
import math

import pandas as pd
import pytest
import torch

from repro import capture, precision
from repro.accounting import EpochSums, TrainingDiverged, check_finite
from repro.measure.train_cost import Workload
from repro.presets import make_spec
from repro.run_pool import FINISHED, train_concurrently
from repro.train import Runtime, train
from tests.conftest import needs_fashion


@pytest.mark.parametrize("amp, native, warned", [("bf16", False, True), ("bf16", True, False),
                                                 ("bf16", None, False), (None, False, False)])
def test_only_bf16_on_a_device_without_bf16_units_gets_a_note(monkeypatch, amp, native, warned):
    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    warning = precision.missing_bf16_units_note(amp, "cpu")
    assert (warning is not None) == warned
    assert warning is None or "AVX512-BF16 or AMX" in warning


def test_this_machine_says_whether_it_has_bf16_units():
    assert precision.native_bf16("cpu") in (True, False, None)
    assert precision.native_bf16("meta") is None


def test_epoch_sums_equal_host_accounting():
    torch.manual_seed(0)
    sums, losses, correct, images = EpochSums(), 0.0, 0, 0
    for n in (16, 16, 7):
        logits, targets, loss = torch.randn(n, 10), torch.randint(0, 10, (n,)), torch.rand(())
        sums.add({"ce": loss}, {"teacher": logits}, targets)
        losses += float(loss) * n  # what the trainer computed on the host each step before
        correct += int((logits.argmax(1) == targets).sum())
        images += n
    read = sums.read()
    assert read["images"] == images and read["correct"]["teacher"] == correct
    assert read["losses"]["ce"] == pytest.approx(losses, rel=1e-6)


def test_epoch_sums_resume_from_a_checkpoint_partial_and_keep_adding():
    sums = EpochSums({"images": 10, "data_s": 1.0, "train_s": 2.0, "losses": {"ce": 5.0}, "correct": {"t": 3.0}})
    sums.add({"ce": torch.tensor(1.0)}, {"t": torch.tensor([[0.0, 1.0]])}, torch.tensor([1]))
    read = sums.read()
    assert read["images"] == 11 and read["losses"]["ce"] == 6.0 and read["correct"]["t"] == 4.0


def test_soft_targets_count_their_most_likely_class():
    sums = EpochSums()
    sums.add({"ce": torch.tensor(0.0)}, {"t": torch.tensor([[2.0, 1.0], [0.0, 3.0]])},
             torch.tensor([[0.9, 0.1], [0.8, 0.2]]))
    assert sums.read()["correct"]["t"] == 1.0


def test_nan_guard_names_the_step_range():
    read = EpochSums({"losses": {"ce": float("nan")}}).read()
    with pytest.raises(TrainingDiverged, match="nan at epoch 3, steps 51-100; stopped without saving: kept"):
        check_finite(read, "at epoch 3, steps 51-100", "kept")
    check_finite(EpochSums({"losses": {"ce": 1.0}}).read(), "anywhere", "kept")


def fixed_batch_losses(steps, **engine):
    torch.manual_seed(0)
    images, targets = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    w = Workload("resnet_mini", "adn", None, images, targets, num_classes=10, channels_last=True, **engine)
    return [{k: float(v) for k, v in w.step().items()} for _ in range(steps)]


def test_cpu_bf16_step_stays_close_to_fp32():
    fp32, bf16 = fixed_batch_losses(10), fixed_batch_losses(10, amp="bf16")
    # the first step starts from the same weights: only bf16 rounding sets them apart
    assert bf16[0]["ce"] == pytest.approx(fp32[0]["ce"], rel=0.02)
    # later steps follow noisy trajectories (random labels, lr 0.1) that the summation order
    # alone moves by some percent, so compare where they settle: the last five steps' mean
    settled = [sum(run["ce"] for run in losses[-5:]) / 5 for losses in (fp32, bf16)]
    assert settled[1] == pytest.approx(settled[0], rel=0.05)
    assert settled[1] < bf16[0]["ce"] - 0.2  # it learns the batch


def test_compiled_step_gives_the_eager_losses_over_50_steps(monkeypatch):
    # the capture (dynamo + AOTAutograd, forward, backward and optimiser step) without
    # inductor's C++ code generation, which takes minutes on 2 cores; tests/test_gpu.py
    # checks the real CUDA-graph mode
    monkeypatch.setattr(capture, "BACKEND", "aot_eager")
    eager, captured = fixed_batch_losses(50), fixed_batch_losses(50, compile=True)
    for step, (a, b) in enumerate(zip(eager, captured)):
        for part in a:
            assert b[part] == pytest.approx(a[part], rel=1e-3, abs=1e-4), (step, part)


@needs_fashion
def test_cpu_bf16_run_trains_and_records_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)  # a CPU without AVX512-BF16 or AMX
    spec = make_spec("resnet_mini", "adn", "fashion_mnist", "smoke", recipe={"amp": "bf16", "train_subset": 512})
    result = train(spec, Runtime(results_dir=str(tmp_path), device="cpu", progress=False))
    assert result.record.spec().recipe.amp == "bf16"
    assert capsys.readouterr().err.count("this CPU has no bf16 units") == 1  # it runs, and says how
    assert "fp32 kernels" in result.record.env()["segments"][-1]["bf16_kernels"]  # and records it
    table = result.record.evaluation()
    assert {"acc1_pct_recalibrated", "acc5_pct_recalibrated", "loss_recalibrated"} <= set(table.columns)


@pytest.mark.parametrize("notes", [True, False])
def test_a_run_says_its_device_has_no_bf16_units_unless_its_caller_said_it(tmp_path, monkeypatch, capsys, notes):
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    spec = make_spec("resnet_mini", "individual", "fake", "quick", options={"depth": "TTTT"},
                     recipe={"amp": "bf16", "train_subset": 32, "batch_size": 16, "val_size": 16, "test_subset": 16,
                             "recalibrate_bn_images": 16, "epochs": 1})
    train(spec, Runtime(results_dir=str(tmp_path), device="cpu", progress=False, machine_notes=notes))
    assert capsys.readouterr().err.count("this CPU has no bf16 units") == int(notes)


@needs_fashion
@pytest.mark.slow
def test_two_runs_at_once_leave_the_records_of_one_after_the_other(tmp_path):
    specs = [make_spec("resnet_mini", "individual", "fashion_mnist", "smoke", seed=s,
                       options={"depth": "TTTT"}, recipe={"train_subset": 512}) for s in (0, 1)]
    runtime = Runtime(results_dir=str(tmp_path / "together"), device="cpu", progress=False)
    outcome = train_concurrently(specs, runtime, jobs=2)
    assert {status for status, _ in outcome.values()} == {FINISHED}
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // 2))  # as each worker ran
    try:
        for spec in specs:
            train(spec, Runtime(results_dir=str(tmp_path / "apart"), device="cpu", progress=False))
    finally:
        torch.set_num_threads(threads)
    for spec in specs:
        together, apart = (pd.read_csv(tmp_path / kind / "smoke" / "runs" / spec.run_id / "eval.csv")
                           for kind in ("together", "apart"))
        pd.testing.assert_frame_equal(together, apart, check_exact=False, rtol=1e-4)


def test_a_failed_run_does_not_stop_the_other(tmp_path):
    good = make_spec("resnet_mini", "individual", "fake", "quick", options={"depth": "TTTT"},
                     recipe={"train_subset": 64, "batch_size": 16, "val_size": 32, "test_subset": 32,
                             "recalibrate_bn_images": 32})
    bad = good.replace(seed=1, recipe=good.recipe.__class__(**{**good.recipe.__dict__, "lr": math.inf}))
    outcome = train_concurrently([good, bad], Runtime(results_dir=str(tmp_path), device="cpu", progress=False),
                                 jobs=2)
    assert outcome[good.run_id][0] == FINISHED
    assert outcome[bad.run_id][0] == "failed" and outcome[bad.run_id][1]


def test_a_run_waits_for_the_run_it_needs_and_fails_when_that_one_fails(tmp_path):
    from repro.runs import RunRecord, run_directory

    first = make_spec("resnet_mini", "individual", "fake", "quick", options={"depth": "TTTT"},
                      recipe={"train_subset": 64, "batch_size": 16, "val_size": 32, "test_subset": 32,
                              "recalibrate_bn_images": 32})
    bad = first.replace(seed=1, recipe=first.recipe.__class__(**{**first.recipe.__dict__, "lr": math.inf}))
    after_first, after_bad = first.replace(seed=2), first.replace(seed=3)
    needs = {after_first.run_id: first, after_bad.run_id: bad}

    def ready(spec):
        need = needs.get(spec.run_id)
        return need is None or RunRecord(run_directory(tmp_path, need)).is_finished()

    # queued first, the dependents wait while both workers are free
    outcome = train_concurrently([after_first, after_bad, first, bad],
                                 Runtime(results_dir=str(tmp_path), device="cpu", progress=False), jobs=2,
                                 ready=ready)
    assert outcome[first.run_id][0] == outcome[after_first.run_id][0] == FINISHED
    assert outcome[bad.run_id][0] == "failed"
    assert outcome[after_bad.run_id] == ("failed", "not started: a run it needs did not finish")
    assert not run_directory(tmp_path, after_bad).exists()
    segments = [RunRecord(run_directory(tmp_path, spec)).env()["segments"] for spec in (first, after_first)]
    assert segments[1][0]["started_at"] >= segments[0][-1]["ended_at"]


POOL_SCRIPT = """
import sys
from repro.presets import make_spec
from repro.run_pool import train_concurrently
from repro.train import Runtime
base = make_spec("resnet_mini", "individual", "fake", "quick", options={"depth": "TTTT"},
                 recipe={"batch_size": 16, "epochs": 200, "val_size": 32,
                         "test_subset": 32, "recalibrate_bn_images": 32})
specs = [base.replace(seed=s) for s in range(3)]
print(" ".join(s.run_id for s in specs), flush=True)
try:
    train_concurrently(specs, Runtime(results_dir=sys.argv[1], device="cpu", progress=False), jobs=1)
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.slow
@pytest.mark.parametrize("started_in_background", [False, True])
def test_ctrl_c_saves_the_running_run_and_starts_no_queued_one(tmp_path, started_in_background):
    import os
    import signal
    import subprocess
    import sys
    import time

    # a shell starts background jobs (nohup ... &) with SIGINT ignored: Ctrl-C must still stop the pool
    ignore_sigint = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if started_in_background else None
    child = subprocess.Popen([sys.executable, "-c", POOL_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE,
                             text=True, start_new_session=True, preexec_fn=ignore_sigint)
    first, *queued = child.stdout.readline().split()
    runs = tmp_path / "quick" / "runs"
    deadline = time.monotonic() + 300
    while not (runs / first / "metrics.jsonl").exists() and not (runs / first / "spec.json").exists():
        assert time.monotonic() < deadline and child.poll() is None, "the first run never started"
        time.sleep(0.2)
    time.sleep(2)  # inside its first epoch
    os.killpg(child.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    assert child.wait(timeout=120) == 130
    assert (runs / first / "checkpoint.pt").exists()
    assert not any((runs / run_id).exists() for run_id in queued)


def test_owned_gradients_accumulate_over_two_backward_passes_as_before():
    # ADN's two backward passes add into one .grad; with the copies a parameter that no pass
    # used keeps no gradient, so the optimiser (weight decay, momentum) still skips it
    def grads(own: bool):
        torch.manual_seed(0)
        model = torch.nn.ModuleDict({"a": torch.nn.Linear(4, 3), "b": torch.nn.Linear(3, 2),
                                     "unused": torch.nn.Linear(2, 2)})
        if own:
            assert len(capture.own_gradients(model)) == 6
        x = torch.randn(5, 4)
        model["b"](model["a"](x)).square().sum().backward()
        first = model["a"].weight.grad
        model["a"](x).sum().backward()
        return model, first

    plain, _ = grads(own=False)
    owned, first = grads(own=True)
    for name, parameter in plain.named_parameters():
        other = owned.get_parameter(name)
        assert (other.grad is None) == (parameter.grad is None), name
        if parameter.grad is not None:
            assert torch.equal(other.grad, parameter.grad), name
    assert owned["a"].weight.grad is not first  # each pass leaves a copy of its own


def test_a_model_captured_for_cuda_copies_its_gradients_out_and_for_the_cpu_does_not():
    cuda_model, cpu_model = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    capture.compiled(cuda_model, torch.device("cuda"))  # compiling is lazy: no GPU needed here
    capture.compiled(cpu_model, torch.device("cpu"))
    assert all(p._post_accumulate_grad_hooks for p in cuda_model.parameters())
    assert not any(p._post_accumulate_grad_hooks for p in cpu_model.parameters())
