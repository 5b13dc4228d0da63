"""The customer-response MLP: which customers will buy? (Caravan insurance, CoIL 2000.)

The package: `module` (the Flax module), `training` (the attributes it reads, loss, balanced
epochs, task builder, prediction), `evaluation` (test metrics beside a logistic baseline, the
seeds' ensemble, marketing charts, cross-validation, reading), `config` (its schema).
"""

from pathlib import Path

from mktlab.models.contract import ModelSpec, Monitor
from mktlab.models.mlp.config import MLPConfig

spec = ModelSpec(
    name="mlp",
    schema=MLPConfig,
    notebook=Path("notebooks/mlp.ipynb"),
    implementation="mktlab.models.mlp.evaluation:implementation",
    monitor=lambda cfg: Monitor("val_roc_auc", "max"),
    # One network: the contract's tests check one copy's training, and their run is one MLflow run
    # (the default's eight seeds and their ensemble: tests/models/mlp/test_ensemble.py).
    tiny=("debug=tiny", "trainer.num_seeds=1"),
)
