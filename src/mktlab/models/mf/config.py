"""The `model` node of matrix factorization (defaults, commented: `conf/model/mf.yaml`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING

from mktlab.config.checks import Rule, above, at_least, between, each_above, nested, one_of, require

OBJECTIVES = ("ials", "ratings")


@dataclass(frozen=True)
class MFRankingConfig:
    """The ranking head (`objective: ials`): implicit ALS on the training ratings of at least `min_rating`."""

    dim: int = at_least(1)  # embedding dimension of the ranking head
    init_scale: float = above(0.0)  # std of the ranking factors' normal init, times 1/sqrt(dim)
    min_rating: float = MISSING  # training ratings at or above this are the positives
    rating_slope: float = at_least(0.0)  # a positive weighs 1 + rating_slope * (rating - min_rating)
    alpha0: float = at_least(0.0)  # weight of every unobserved (user, item) pair, scored towards 0
    l2: float = at_least(0.0)  # L2 penalty, times (a row's positives + alpha0 * other side's rows) ** l2_exponent
    l2_exponent: float = between(0.0, 1.0)  # 1 scales the penalty with the row's data (Rendle et al. 2022); 0: a constant
    sweeps: int = at_least(1)  # alternating sweeps, run when the state is initialized (every epoch holds the solved head)
    cg_steps: int = at_least(1)  # conjugate gradient steps per least-squares solve, warm-started

    def invalid(self) -> list[Rule]:
        # a user or item without positives is solved from alpha0 and l2 alone: one of them must be positive
        return require(self.alpha0 > 0 or self.l2 > 0, "l2", self.l2, "a number > 0 when alpha0 is 0")


@dataclass(frozen=True)
class MFEvalConfig:
    top_k: int = at_least(1)  # length of recommendation lists
    relevance_threshold: float = MISSING  # test ratings at or above this are relevant items
    recommend_users: int = at_least(0)  # users in the recommendations CSV
    biases_l2: list[float] = each_above(0.0, min_items=1)  # biases-only baseline: L2 strengths, the best on validation RMSE kept
    sampled_negatives: int = at_least(0)  # > 0: also the sampled leave-last-out protocol against this many unrated items


@dataclass(frozen=True)
class MFConfig:
    name: str = MISSING
    objective: str = one_of(*OBJECTIVES)  # ials: rating head + implicit-ALS ranking head | ratings: lists by predicted rating
    dim: int = at_least(1)  # embedding dimension of users and items (rating head)
    init_scale: float = above(0.0)  # std of the normal init of the embeddings
    l2: float = at_least(0.0)  # L2 penalty on the embeddings and biases touched by each rating
    l2_bias: Optional[float] = at_least(0.0, optional=True)  # L2 penalty on the biases; None: l2
    l2_exponent: float = between(0.0, 1.0)  # a row's total penalty grows as (its ratings) ** l2_exponent; 1: each rating adds l2
    use_bias: bool = MISSING  # global mean plus user and item biases
    ranking: MFRankingConfig = nested(MFRankingConfig)
    eval: MFEvalConfig = nested(MFEvalConfig)
