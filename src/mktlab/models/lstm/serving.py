"""The LSTM click predictor as an MLflow `pyfunc` model, servable with `mlflow models serve`.

A request row holds a user's recent item ids (oldest first), optionally whether each
was clicked, and the candidate items to score; the answer row holds each candidate's
click probability:

    {"dataframe_records": [{"recent_items": [296, 318, 593], "recent_clicks": [1, 1, 0],
                            "candidate_items": [2571, 4993]}]}
    -> {"predictions": [{"candidate_items": [2571, 4993], "click_probabilities": [0.71, 0.64]}]}

The model reads the last `data.max_len` recent items with its LSTM and, when it has the
affinity or long-attention branch, the last `data.long_len` with those (send the longer
list: it is cut to each length); item feature columns come from the training counts saved
with the model.

Serve a run's model from the project environment (mktlab must be importable where it is
served; an optional column such as `recent_clicks` goes in every record or in none):

    source .venv/bin/activate
    export MLFLOW_TRACKING_URI=sqlite:///$PWD/experiments/mlflow.db   # the run's store
    mlflow models serve -m runs:/<run id>/pyfunc_model --env-manager local -p 5001
    curl -X POST localhost:5001/invocations -H 'Content-Type: application/json' \
         -d '{"dataframe_records": [{"recent_items": [296, 318], "candidate_items": [2571, 4993]}]}'
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import Array

from mktlab.data.click_features import ItemFeatures
from mktlab.data.item_metadata import ItemMetadata
from mktlab.data.clicklog import encode_items, pad_history
from mktlab.models.lstm.training import item_features, item_metadata, module_kwargs, scorer, uses_long_history
from mktlab.tracking.pyfunc import log_pyfunc, pinned_requirements, without_progress_bars
from mktlab.train.checkpoint import load_module, save_module
from mktlab.train.loop import SeedResults
from mktlab.train.state import split_module

ARTIFACT_PATH = "pyfunc_model"
INPUT_COLUMNS = ("recent_items", "recent_clicks", "candidate_items")
SCORE_BATCH = 4096  # candidates scored per compiled call
REQUIREMENTS = ("jax", "flax", "optax", "numpy", "pandas", "scikit-learn", "hydra-core", "omegaconf", "tqdm", "mlflow")


class ClickLSTMModel(mlflow.pyfunc.PythonModel):
    """Scores candidate items for users given their recent items."""

    def load_context(self, context: Any) -> None:
        graphdef, params, rest = split_module(load_module(context.artifacts["module"]))
        score = scorer(graphdef, batch_size=SCORE_BATCH)  # compiled once per padded request size
        self.score = lambda arrays: score(params, rest, arrays)
        meta = json.loads(Path(context.artifacts["vocabulary"]).read_text())
        self.vocabulary = np.asarray(meta["vocabulary"], np.int64)
        self.max_len = int(meta["max_len"])
        self.long_len = int(meta.get("long_len", 0))
        self.features = ItemFeatures.from_json(meta["item_features"]) if meta.get("item_features") else None
        spec = meta.get("item_metadata")
        self.metadata = MetadataColumns(ItemMetadata.from_json(spec["items"]), **spec["columns"]) if spec else None

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return score_requests(self.score, self.vocabulary, self.max_len, model_input, features=self.features, long_len=self.long_len,
                              metadata=self.metadata)


@dataclass(frozen=True)
class MetadataColumns:
    """Which metadata columns a model reads (`model.item_metadata`, `model.metadata_profile`), from what."""

    items: ItemMetadata
    target: bool  # the candidate's genres and year
    profile: bool  # the user's genre profile crossed with the candidate's
    all_clicked: bool  # the model read no click flags: every history item counts as clicked in the profile

    def to_json(self) -> dict:
        return {"items": self.items.to_json(), "columns": {"target": self.target, "profile": self.profile, "all_clicked": self.all_clicked}}

    def __call__(self, arrays: dict[str, np.ndarray], candidates: np.ndarray, vocabulary: np.ndarray) -> list[np.ndarray]:
        out = [self.items.target(candidates)] if self.target else []
        if self.profile:
            prefix = "long_" if "long_history" in arrays else ""
            history = arrays[f"{prefix}history"]
            clicks = arrays["long_clicks" if prefix else "history_clicks"]
            table = self.items.index_table(vocabulary, len(vocabulary) + 2)
            out.append(self.items.profile(table, history, np.ones_like(clicks) if self.all_clicked else clicks,
                                          arrays[f"{prefix}lengths"], candidates))
        return out


def score_requests(score: Any, vocabulary: np.ndarray, max_len: int, requests: pd.DataFrame, *,
                   features: ItemFeatures | None = None, long_len: int = 0, metadata: MetadataColumns | None = None) -> pd.DataFrame:
    """Click probabilities of every candidate of every request row (see the module docstring).

    Args:
        score: `score(arrays) -> probabilities` over model inputs (`mktlab.models.lstm.training.scorer`).
        vocabulary: the original ids of the items with their own index.
        max_len: history length of the model's training data.
        requests: rows of `recent_items`, `candidate_items` and optionally `recent_clicks`.
        features: the model's item columns (None: it reads none).
        long_len: items of the longer history the model reads (0: none).
        metadata: the model's metadata columns (None: it reads none).
    """
    if isinstance(requests, dict):
        requests = pd.DataFrame(requests)
    missing = [c for c in ("recent_items", "candidate_items") if c not in requests.columns]
    if missing:
        raise ValueError(f"request lacks column(s) {', '.join(missing)}; expected {', '.join(INPUT_COLUMNS)} (recent_clicks optional)")
    histories, clicks, lengths, items, owners = [], [], [], [], []
    long_rows: list[tuple[np.ndarray, np.ndarray, int]] = []
    candidates_per_row = []
    for row, request in enumerate(requests.to_dict("records")):
        recent = _as_ids(request["recent_items"], "recent_items", row)
        flags = request.get("recent_clicks")
        flags = None if flags is None or (np.isscalar(flags) and pd.isna(flags)) else np.asarray(list(flags), np.float32)
        history, history_clicks, length = pad_history(encode_items(vocabulary, recent), flags, max_len=max_len)
        longer = pad_history(encode_items(vocabulary, recent), flags, max_len=long_len) if long_len else None
        candidates = _as_ids(request["candidate_items"], "candidate_items", row)
        candidates_per_row.append(candidates)
        for item in encode_items(vocabulary, candidates):
            histories.append(history)
            clicks.append(history_clicks)
            lengths.append(length)
            items.append(item)
            owners.append(row)
            if longer is not None:
                long_rows.append(longer)
    arrays = {
        "history": np.asarray(histories, np.int32).reshape(-1, max_len),
        "history_clicks": np.asarray(clicks, np.float32).reshape(-1, max_len),
        "lengths": np.asarray(lengths, np.int32),
        "items": np.asarray(items, np.int32),
    }
    if long_len:
        arrays["long_history"] = np.asarray([r[0] for r in long_rows], np.int32).reshape(-1, long_len)
        arrays["long_clicks"] = np.asarray([r[1] for r in long_rows], np.float32).reshape(-1, long_len)
        arrays["long_lengths"] = np.asarray([r[2] for r in long_rows], np.int32)
    all_candidates = np.concatenate(candidates_per_row) if candidates_per_row else np.zeros(0, np.int64)
    columns = [features(all_candidates)] if features is not None else []
    columns += metadata(arrays, all_candidates, vocabulary) if metadata is not None else []
    if columns:
        arrays["features"] = np.concatenate(columns, axis=1).astype(np.float32)
    probabilities = score(arrays) if len(items) else np.zeros(0)
    owners = np.asarray(owners, np.int64)
    return pd.DataFrame({
        "candidate_items": [c.tolist() for c in candidates_per_row],
        "click_probabilities": [probabilities[owners == row].astype(float).tolist() for row in range(len(candidates_per_row))],
    })


def _as_ids(value: Any, column: str, row: int) -> np.ndarray:
    try:
        ids = np.asarray(list(value) if value is not None else [], dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"request row {row}: {column} must be a list of integer item ids, got {value!r}") from error
    if np.any(ids % 1 != 0):
        raise ValueError(f"request row {row}: {column} must hold integer item ids, got {value!r}")
    return ids.astype(np.int64)


def signature() -> ModelSignature:
    inputs = Schema([
        ColSpec(Array(DataType.long), "recent_items"),
        ColSpec(Array(DataType.long), "recent_clicks", required=False),
        ColSpec(Array(DataType.long), "candidate_items"),
    ])
    outputs = Schema([ColSpec(Array(DataType.long), "candidate_items"), ColSpec(Array(DataType.double), "click_probabilities")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def example_request(data: Any) -> pd.DataFrame:
    """A request built from the first test impression's history and two known items."""
    part = data.test if len(data.test) else data.train
    length = int(part.lengths[0])
    recent = [int(data.vocabulary[i - 1]) for i in part.history[0, :length] if 1 <= i <= data.num_items]
    flags = [int(c) for i, c in zip(part.history[0, :length], part.history_clicks[0, :length]) if 1 <= i <= data.num_items]
    return pd.DataFrame({"recent_items": [recent], "recent_clicks": [flags], "candidate_items": [[int(v) for v in data.vocabulary[:2]]]})


def save_pyfunc(model: Any, kwargs: dict[str, Any], data: Any, path: str | Path, *, features: ItemFeatures | None = None,
                long_len: int = 0, metadata: MetadataColumns | None = None) -> Path:
    """Write the pyfunc model (module, vocabulary, item columns, signature, example) to the folder `path`.

    `features`: the item columns the model reads (None: none); `long_len`: the longer history it reads (0: none);
    `metadata`: the metadata columns it reads (None: none)."""
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp, without_progress_bars():
        module_dir = save_module(model, Path(tmp) / "module", kwargs=kwargs)
        vocabulary = Path(tmp) / "vocabulary.json"
        vocabulary.write_text(json.dumps({"vocabulary": [int(v) for v in data.vocabulary], "max_len": int(data.max_len), "long_len": int(long_len),
                                          "item_features": features.to_json() if features is not None else None,
                                          "item_metadata": metadata.to_json() if metadata is not None else None}))
        mlflow.pyfunc.save_model(
            path=str(path),
            python_model=str(Path(__file__).with_name("serving_model.py")),  # models from code: nothing pickled
            artifacts={"module": str(module_dir), "vocabulary": str(vocabulary)},
            signature=signature(),
            input_example=example_request(data),
            pip_requirements=pinned_requirements(REQUIREMENTS),
        )
    return path


def log_serving_model(tracker: Any, cfg: Any, result: Any, data: Any) -> str | None:
    """Log the pyfunc model (the first seed's when several trained); returns its `runs:/` URI."""
    if tracker is None:
        return None
    fitted = result.results[0] if isinstance(result, SeedResults) else result
    features, long_len = item_features(cfg, data), cfg.data.long_len if uses_long_history(cfg) else 0
    return log_pyfunc(tracker, lambda folder: save_pyfunc(fitted.model, module_kwargs(cfg, data), data, folder, features=features,
                                                          long_len=long_len, metadata=metadata_columns_of(cfg, data)), ARTIFACT_PATH)


def metadata_columns_of(cfg: Any, data: Any) -> MetadataColumns | None:
    """The metadata columns the config's model reads (None: none)."""
    items = item_metadata(cfg, data)
    if items is None:
        return None
    return MetadataColumns(items, target=cfg.model.item_metadata, profile=cfg.model.metadata_profile, all_clicked=not cfg.data.use_labels)
