import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def small_input(spec, batch=2):
    """The smallest input each registered architecture is built for."""
    return torch.randn(batch, spec.in_channels, spec.resolution, spec.resolution)
