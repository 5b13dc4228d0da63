"""The `model` node of matrix factorization (defaults, commented: `conf/model/mf.yaml`)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from mktlab.config.checks import above, at_least, nested


@dataclass(frozen=True)
class MFEvalConfig:
    top_k: int = at_least(1)  # length of recommendation lists
    relevance_threshold: float = MISSING  # test ratings at or above this are relevant items
    recommend_users: int = at_least(0)  # users in the recommendations CSV


@dataclass(frozen=True)
class MFConfig:
    name: str = MISSING
    dim: int = at_least(1)  # embedding dimension of users and items
    init_scale: float = above(0.0)  # std of the normal init of the embeddings
    l2: float = at_least(0.0)  # L2 penalty on the embeddings and biases touched by each rating
    use_bias: bool = MISSING  # global mean plus user and item biases
    eval: MFEvalConfig = nested(MFEvalConfig)
