"""Hydra finds the configs a model plug-in ships: `model=<name>` works for an installed package.

Lives in Hydra's `hydra_plugins` namespace because Hydra discovers search-path plugins there.
"""
