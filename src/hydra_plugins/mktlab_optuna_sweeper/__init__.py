"""mktlab's Hydra sweeper on current Optuna: `mktlab -m hydra/sweeper=optuna ...`.

Lives in Hydra's `hydra_plugins` namespace because Hydra only instantiates sweepers from
there; its config is `conf/hydra/sweeper/optuna.yaml`.
"""
