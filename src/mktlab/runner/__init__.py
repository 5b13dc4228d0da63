"""The `mktlab` command: Hydra composes the config, Papermill executes the model's notebook,
MLflow records the run. This package never imports JAX (the kernel does)."""

import warnings

# conf/hydra/launcher/*.yaml set the launcher plugins' options (joblib workers, Ray resources,
# SLURM defaults) under the plugins' own names, so `hydra/launcher=joblib` picks them up; Hydra
# still validates them against the plugins' schemas but warns about the shared name.
warnings.filterwarnings("ignore", message=r"(?s).*is validated against ConfigStore schema with the same name", category=UserWarning)
