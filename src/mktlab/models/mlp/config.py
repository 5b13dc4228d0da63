"""The `model` node of the customer-response MLP (defaults, commented: `conf/model/mlp.yaml`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING

from mktlab.config.checks import Rule, above, at_least, each_above, each_at_least, fraction, nested, one_of, require, share


@dataclass(frozen=True)
class MLPEvalConfig:
    top_fraction: float = share()  # the challenge metric: buyers among the top 20% by score
    baseline_c: list[float] = each_above(0.0, min_items=1)  # logistic baseline: inverse L2 strengths, best on validation AUC
    top_customers: Optional[int] = at_least(1, optional=True)  # rows of the top-customers CSV; None: the top `top_fraction`
    cv_folds: int = at_least(0)  # k-fold cross-validation of the MLP and the baseline when > 1

    def invalid(self) -> list[Rule]:
        return require(self.cv_folds != 1, "cv_folds", self.cv_folds, "0 (no cross-validation) or at least 2 folds")


@dataclass(frozen=True)
class MLPConfig:
    name: str = MISSING
    hidden: list[int] = each_at_least(1)  # hidden layer widths
    activation: str = one_of("relu", "gelu", "tanh", "silu")
    dropout: float = fraction()  # after each hidden layer
    norm: str = one_of("none", "batch", "layer")
    categorical: str = one_of("onehot", "embed")  # how MOSTYPE and MOSHOOFD enter the network
    embed_dim: int = at_least(1)  # categorical == embed only
    imbalance: str = one_of("weight", "sample", "none")
    pos_weight: Optional[float] = above(0.0, optional=True)  # weight of buyers in the loss; None uses negatives/positives
    correct_prior: bool = MISSING  # undo the shift class weighting / balanced sampling puts into probabilities
    eval: MLPEvalConfig = nested(MLPEvalConfig)
