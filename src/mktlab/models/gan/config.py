"""The `model` and `optim` nodes of the GAN (defaults, commented: `conf/model/gan.yaml`, `conf/optim/gan.yaml`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING

from mktlab.config.checks import Check, at_least, checked, fraction, nested, one_of
from mktlab.config.schema import OptimConfig

LOSSES = ("hinge", "ns")  # hinge: margin loss (SN-GAN, BigGAN) | ns: non-saturating cross-entropy (DCGAN)


@dataclass(frozen=True)
class GANEvalConfig:
    samples: int = at_least(2)  # generated images scored for FID / IS / coverage (at most the training images)
    classifier_epochs: int = at_least(1)  # epochs of the evaluation classifier (trained once per data set, cached)
    coverage_min_share: float = fraction()  # a class counts as covered when it gets at least this share of the images


@dataclass(frozen=True)
class GANConfig:
    name: str = MISSING
    latent_dim: int = at_least(1)  # size of the generator's input noise vector
    g_features: int = at_least(1)  # channels of the generator's last hidden layer (the first has twice as many)
    d_features: int = at_least(1)  # channels of the discriminator's first layer (the second has twice as many)
    d_steps: int = at_least(1)  # discriminator updates per generator update
    label_smoothing: float = fraction()  # real labels become 1 - label_smoothing (loss=ns only)
    loss: str = one_of(*LOSSES)  # the players' losses
    d_spectral_norm: bool = MISSING  # divide each discriminator weight by its spectral norm
    r1_gamma: float = at_least(0.0)  # weight of the R1 penalty on D's input gradient at real images; 0 disables
    # the generator evaluated, rendered and saved is this exponential moving average of the trained one; None: itself
    g_ema_decay: Optional[float] = checked(Check("a decay in (0, 1)", lambda v: 0 < v < 1, optional=True))
    num_fixed_samples: int = at_least(1)  # the fixed latent batch rendered over training
    sample_every: int = at_least(1)  # render samples and score the validation FID every N epochs
    eval: GANEvalConfig = nested(GANEvalConfig)


@dataclass(frozen=True)
class GANOptimConfig:
    """The GAN's two optimizers, by player."""

    generator: OptimConfig = nested(OptimConfig)
    discriminator: OptimConfig = nested(OptimConfig)
