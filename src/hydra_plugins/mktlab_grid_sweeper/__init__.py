"""mktlab's grid sweeper (`hydra/sweeper=grid`, the default): Hydra's basic sweeper, validated first.

Lives in Hydra's `hydra_plugins` namespace because Hydra only instantiates sweepers from there.
"""
