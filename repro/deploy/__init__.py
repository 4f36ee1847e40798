"""Deployment: choose the sub-network for a device and a budget (``select``), switch per
request (``AdaptiveRunner``), export one (``export_subnetwork``)."""
from repro.deploy.export import FORMATS, export_subnetwork
from repro.deploy.runner import AdaptiveRunner, shared_subnetwork
from repro.deploy.select import Choice, checkpoint_accuracy, select

__all__ = ["FORMATS", "AdaptiveRunner", "Choice", "checkpoint_accuracy", "export_subnetwork", "select",
           "shared_subnetwork"]
