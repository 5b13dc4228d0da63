"""Everything MLflow: the store, run creation, and the `Tracker` a run logs through."""

from mktlab.tracking.runs import open_run, run_name
from mktlab.tracking.store import get_client, get_or_create_experiment
from mktlab.tracking.tracker import Tracker

__all__ = ["Tracker", "get_client", "get_or_create_experiment", "open_run", "run_name"]
