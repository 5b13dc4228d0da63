"""Matrix factorization on explicit ratings: what rating would this user give, what to recommend?

The package: `module` (the Flax module: a rating head and an optional ranking head),
`training` (loss, task builder, prediction), `ials` (the ranking head's implicit alternating
least squares), `baselines` (most-popular, biases only), `evaluation` (test metrics beside the
baselines', recommendations, reading), `config` (its schema).
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
