"""A GAN for creative images: can we generate many varied candidate creatives of a kind?

The package: `module` (DCGAN-shaped generator and discriminator with optional spectral
normalization, the evaluation classifier), `training` (hinge / non-saturating losses, the R1
penalty, steps with the generator's weight average, the scanned epoch, the classifier,
sampling), `evaluation` (classifier FID / Inception score / coverage / class shares against
the real-data reference, sample grids, reading), `config` (its schemas: the model and its
two optimizers).
"""

from pathlib import Path

from mktlab.models.contract import ModelSpec, Monitor
from mktlab.models.gan.config import GANConfig, GANOptimConfig

spec = ModelSpec(
    name="gan",
    schema=GANConfig,
    notebook=Path("notebooks/gan.ipynb"),
    implementation="mktlab.models.gan.evaluation:implementation",
    monitor=lambda cfg: Monitor("val_fid", "min"),
    optim_schema=GANOptimConfig,
    # the validation FID every epoch: the contract's few epochs then see it improve (the default scores every 5th)
    tiny=("debug=tiny", "model.sample_every=1"),
)
