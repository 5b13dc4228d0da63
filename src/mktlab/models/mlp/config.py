"""The `model` node of the customer-response MLP (defaults, commented: `conf/model/mlp.yaml`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from omegaconf import MISSING

from mktlab.config.checks import Check, Rule, above, at_least, checked, each_above, each_at_least, fraction, nested, one_of, require, share


def attribute_patterns(*, min_items: int) -> Any:
    """An optional list of attribute names or shell-style patterns, `!` in front removing what it matches.

    Whether each entry names an attribute of the data is checked when the data is known
    (`training.matching`), so a typo fails before training with the entry named.
    """
    words = "a list of attribute names or patterns (e.g. [PPERSAUT, 'P*', '!MOSTYPE'])" + (
        f" with at least {min_items} item(s)" if min_items else "")
    return checked(Check(words, lambda v: len(v) >= min_items and all(isinstance(x, str) and x.lstrip("!") for x in v), optional=True))


@dataclass(frozen=True)
class MLPEvalConfig:
    top_fraction: float = share()  # the challenge metric: buyers among the top 20% by score
    baseline_c: list[float] = each_above(0.0, min_items=1)  # logistic baseline: inverse L2 strengths, best on validation AUC
    top_customers: Optional[int] = at_least(1, optional=True)  # rows of the top-customers CSV; None: the top `top_fraction`
    cv_folds: int = at_least(0)  # k-fold cross-validation of the MLP (its seeds and their ensemble) and the baseline when > 1

    def invalid(self) -> list[Rule]:
        return require(self.cv_folds != 1, "cv_folds", self.cv_folds, "0 (no cross-validation) or at least 2 folds")


@dataclass(frozen=True)
class MLPConfig:
    name: str = MISSING
    features: Optional[list[str]] = attribute_patterns(min_items=1)  # the attributes the network reads; None: all
    levels: Optional[list[str]] = attribute_patterns(min_items=0)  # numeric attributes whose codes also enter one-hot
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
