"""Matrix factorization on explicit ratings: what rating would this user give, what to recommend?

The package: `module` (the Flax module), `training` (loss, task builder, prediction),
`evaluation` (test metrics, recommendations, reading), `config` (its schema).
"""

from pathlib import Path

from mktlab.models.contract import ModelSpec, Monitor
from mktlab.models.mf.config import MFConfig

spec = ModelSpec(
    name="mf",
    schema=MFConfig,
    notebook=Path("notebooks/mf.ipynb"),
    implementation="mktlab.models.mf.evaluation:implementation",
    monitor=lambda cfg: Monitor("val_rmse", "min"),
)
