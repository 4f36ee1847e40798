"""Training methods, one registry: ``METHODS.get(name)``."""
from repro.methods import adn, alphanet, individual, kd, stochastic_depth  # noqa: F401  (they register themselves)
from repro.methods.base import METHODS, Method, StepContext, StepResult, check_options

__all__ = ["METHODS", "Method", "StepContext", "StepResult", "check_options"]
