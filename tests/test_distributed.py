"""Joining and leaving the process group (torchrun's environment, one process, gloo)."""
import os

import pytest
import torch.distributed as dist

from repro import distributed


@pytest.fixture
def torchrun_env(monkeypatch):
    port = 29000 + os.getpid() % 1000
    for name, value in dict(TORCHELASTIC_RUN_ID="test", WORLD_SIZE="1", RANK="0", LOCAL_RANK="0",
                            MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)).items():
        monkeypatch.setenv(name, value)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_a_plain_process_joins_no_group(monkeypatch):
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    processes = distributed.start("cpu")
    assert (processes.rank, processes.world_size, processes.joined_here) == (0, 1, False)
    assert not dist.is_initialized()


def test_one_torchrun_process_leaves_the_group_it_joined(torchrun_env):
    processes = distributed.start("cpu")
    assert processes.joined_here and dist.is_initialized() and not processes.distributed
    distributed.stop(processes)
    assert not dist.is_initialized()


def test_a_group_the_caller_created_stays_theirs(torchrun_env):
    dist.init_process_group("gloo")
    processes = distributed.start("cpu")
    assert not processes.joined_here
    distributed.stop(processes)
    assert dist.is_initialized()
