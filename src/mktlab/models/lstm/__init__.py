"""The LSTM click predictor: given what a user just did, will they click this item?

The package: `module` (the Flax module), `training` (loss, scoring, task builder),
`evaluation` (test metrics beside two baselines, history analysis, reading), `serving`
(the MLflow pyfunc model), `config` (its schema).
"""

from pathlib import Path

from mktlab.models.contract import ModelSpec, Monitor
from mktlab.models.lstm.config import MONITORS, LSTMConfig

spec = ModelSpec(
    name="lstm",
    schema=LSTMConfig,
    notebook=Path("notebooks/lstm.ipynb"),
    implementation="mktlab.models.lstm.evaluation:implementation",
    monitor=lambda cfg: Monitor(cfg.model.monitor, MONITORS[cfg.model.monitor]),
    tiny=("debug=tiny", "trainer.num_seeds=1"),
)
