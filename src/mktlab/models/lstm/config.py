"""The `model` node of the LSTM click predictor (defaults, commented: `conf/model/lstm.yaml`)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from mktlab.config.checks import at_least, fraction, nested, one_of

MONITORS = {"val_roc_auc": "max", "val_gauc": "max", "val_log_loss": "min"}


@dataclass(frozen=True)
class LSTMEvalConfig:
    smoothing: float = at_least(0.0)  # baselines: prior impressions (at the global CTR) behind each smoothed CTR


@dataclass(frozen=True)
class LSTMConfig:
    name: str = MISSING
    embed_dim: int = at_least(1)  # item embedding size (history items and the target item share it)
    hidden: int = at_least(1)  # LSTM state size (per direction)
    layers: int = at_least(1)  # stacked LSTM layers
    bidirectional: bool = MISSING  # also read the history backwards; the final states are concatenated
    dropout: float = fraction()  # between LSTM layers and after the dense layer
    dense: int = at_least(1)  # units of the ReLU layer on [final state, target embedding]
    unroll: int = at_least(1)  # time steps per iteration of the compiled scan (speed only)
    monitor: str = one_of(*MONITORS)  # early stopping and the kept epoch
    eval: LSTMEvalConfig = nested(LSTMEvalConfig)
