"""The `mktlab` command: Hydra composes the config, Papermill executes the model's notebook,
MLflow records the run. This package never imports JAX (the kernel does)."""
