"""A GAN for creative images: can we generate many varied candidate creatives of a kind?

The package: `module` (DCGAN generator and discriminator, the evaluation classifier),
`training` (losses, steps, the scanned epoch, the classifier, sampling), `evaluation`
(classifier FID / Inception score / coverage against the real-data reference, sample
grids, reading), `config` (its schemas: the model and its two optimizers).
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
)
