"""Models as plug-ins: the contract (`ModelSpec`), the registry of installed models, and the
built-in models, one package each (`mf`, `mlp`, `lstm`, `gan`)."""

from mktlab.models.contract import ModelImplementation, ModelSpec, Monitor

__all__ = ["ModelImplementation", "ModelSpec", "Monitor"]
