"""The `model` node of the LSTM click predictor (defaults, commented: `conf/model/lstm.yaml`)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from mktlab.config.checks import at_least, fraction, nested, one_of

POOLINGS = ("last", "mean", "attention", "last_attention")
MONITORS = {"val_roc_auc": "max", "val_gauc": "max", "val_log_loss": "min"}


@dataclass(frozen=True)
class LSTMEvalConfig:
    smoothing: float = at_least(0.0)  # baselines and item features: prior impressions (at the global CTR) behind each smoothed CTR


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
    pooling: str = one_of(*POOLINGS)  # how the LSTM's outputs become one vector (attention: the target's, DIN-style)
    attention_units: int = at_least(1)  # attention: units of the ReLU layer that scores each position
    item_features: bool = MISSING  # the target's smoothed training CTR and impressions join the dense layer
    item_metadata: bool = MISSING  # the target's genres (multi-hot) and release year join the dense layer
    metadata_profile: bool = MISSING  # the user's clicked/skipped genre shares over the longer history, crossed with the target's
    affinity_dim: int = at_least(0)  # user-item affinity term over data.long_len items (0: none)
    long_attention: bool = MISSING  # the target's attention over the data.long_len items joins the dense layer
    negatives: int = at_least(0)  # sampled negatives per training impression: its history with an item drawn from the log, not clicked
    pair_weight: float = at_least(0.0)  # weight of the within-user pairwise ranking term added to the log loss (0: none)
    pair_window: int = at_least(1)  # pairs: the partner is one of the user's next pair_window training impressions with the other label
    eval: LSTMEvalConfig = nested(LSTMEvalConfig)
