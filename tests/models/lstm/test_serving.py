"""The MLflow pyfunc model of the click predictor: saved, loaded back (from a folder and from a run), scoring requests."""

from __future__ import annotations

from types import SimpleNamespace

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from flax import nnx

from helpers import composed
from mktlab.data.clicklog import make_click_data, pad_history
from mktlab.models.lstm.module import ClickLSTM
from mktlab.models.lstm.serving import log_serving_model, save_pyfunc, score_requests
from mktlab.models.lstm.training import module_kwargs, predict
from mktlab.tracking import Tracker
from mktlab.train.loop import SeedResults

LOG = pd.DataFrame(
    {
        "user_id": np.repeat([1, 2, 3], 8),
        "item_id": np.tile([10, 11, 12, 13, 14, 15, 16, 17], 3),
        "timestamp": np.tile(np.arange(8), 3),
        "clicked": np.tile([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0], 3),
    }
)
TINY = ("model=lstm", "model.embed_dim=4", "model.hidden=5", "model.dense=3", "data.use_labels=true", "data.max_len=3",
        "data.val_per_user=1", "data.test_per_user=1", "data.min_item_count=1", "model.item_features=false", "model.item_metadata=false", "model.metadata_profile=false", "model.affinity_dim=0",
        "model.long_attention=false", "model.pooling=last")


@pytest.fixture(scope="module")
def fitted():
    """An untrained click LSTM on the tiny log: (module, its constructor arguments, the data, the config)."""
    cfg = composed(*TINY)
    data = make_click_data(LOG, cfg.data)
    kwargs = module_kwargs(cfg, data)
    return ClickLSTM(**kwargs, rngs=nnx.Rngs(0)), kwargs, data, cfg


def request() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "recent_items": [[10, 11, 12, 13], [999]],  # 999 was never seen: out of vocabulary
            "recent_clicks": [[1, 0, 1, 1], [0]],
            "candidate_items": [[14, 15, 10], [11]],
        }
    )


def expected(model, data, recent, flags, candidates) -> np.ndarray:
    history, clicks, length = pad_history(data.encode_items(np.array(recent)), np.array(flags), max_len=data.max_len)
    n = len(candidates)
    arrays = {"history": np.tile(history, (n, 1)), "history_clicks": np.tile(clicks, (n, 1)),
              "lengths": np.full(n, length, np.int32), "items": data.encode_items(np.array(candidates))}
    return predict(model, arrays)


def test_pyfunc_saves_loads_and_scores_a_request(fitted, tmp_path) -> None:
    model, kwargs, data, cfg = fitted
    path = save_pyfunc(model, kwargs, data, tmp_path / "pyfunc")
    loaded = mlflow.pyfunc.load_model(str(path))
    answer = loaded.predict(request())
    assert answer.columns.tolist() == ["candidate_items", "click_probabilities"]
    assert answer["candidate_items"].iloc[0] == [14, 15, 10]
    first = np.asarray(answer["click_probabilities"].iloc[0])
    np.testing.assert_allclose(first, expected(model, data, [10, 11, 12, 13], [1, 0, 1, 1], [14, 15, 10]), rtol=1e-5)
    np.testing.assert_allclose(answer["click_probabilities"].iloc[1], expected(model, data, [999], [0], [11]), rtol=1e-5)
    assert np.all((first > 0) & (first < 1))
    # Without click flags the history counts as not clicked; the input example saved with the model scores too.
    no_flags = loaded.predict(request().drop(columns="recent_clicks"))
    np.testing.assert_allclose(no_flags["click_probabilities"].iloc[1], expected(model, data, [999], [0], [11]), rtol=1e-5)
    assert (path / "input_example.json").is_file() and (path / "MLmodel").is_file()


def test_serving_model_logged_into_a_run_loads_by_its_uri(fitted, store, monkeypatch) -> None:
    model, kwargs, data, cfg = fitted
    client = store.client
    experiment = client.create_experiment("lstm", artifact_location=str(store.artifacts))
    run = client.create_run(experiment)
    fit = SimpleNamespace(model=model)  # what the run's evaluation has: a fit whose `model` is the kept module
    assert log_serving_model(None, cfg, fit, data) is None  # no run, nothing to log
    uri = log_serving_model(Tracker(client, run.info.run_id), cfg, SeedResults([0, 1], [fit, None]), data)  # the first seed's
    assert uri == f"runs:/{run.info.run_id}/pyfunc_model"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    answer = mlflow.pyfunc.load_model(uri).predict(request())
    assert len(answer) == 2 and len(answer["click_probabilities"].iloc[0]) == 3


def test_bad_requests_say_what_is_wrong(fitted, tmp_path) -> None:
    model, kwargs, data, cfg = fitted
    score = lambda arrays: predict(model, arrays)  # noqa: E731
    with pytest.raises(ValueError, match="candidate_items"):
        score_requests(score, data.vocabulary, data.max_len, pd.DataFrame({"recent_items": [[1]]}))
    with pytest.raises(ValueError, match="integer item ids"):
        score_requests(score, data.vocabulary, data.max_len, pd.DataFrame({"recent_items": [[1.5]], "candidate_items": [[1]]}))
    with pytest.raises(ValueError, match="click flags"):
        score_requests(score, data.vocabulary, data.max_len,
                       pd.DataFrame({"recent_items": [[10, 11]], "recent_clicks": [[1]], "candidate_items": [[10]]}))


def test_pyfunc_with_item_columns_and_a_longer_history_computes_them_from_what_it_saved(tmp_path) -> None:
    from mktlab.models.lstm.training import item_features

    cfg = composed(*TINY, "model.item_features=true", "model.affinity_dim=3", "model.long_attention=true", "data.long_len=5")
    data = make_click_data(LOG, cfg.data)
    kwargs = module_kwargs(cfg, data)
    model = ClickLSTM(**kwargs, rngs=nnx.Rngs(1))
    features = item_features(cfg, data)
    loaded = mlflow.pyfunc.load_model(str(save_pyfunc(model, kwargs, data, tmp_path / "pyfunc", features=features, long_len=5)))
    answer = loaded.predict(request())
    recent, flags, candidates = np.array([10, 11, 12, 13]), np.array([1, 0, 1, 1]), np.array([14, 15, 10])
    history, clicks, length = pad_history(data.encode_items(recent), flags, max_len=data.max_len)
    long_history, long_clicks, long_length = pad_history(data.encode_items(recent), flags, max_len=5)
    arrays = {"history": np.tile(history, (3, 1)), "history_clicks": np.tile(clicks, (3, 1)), "lengths": np.full(3, length, np.int32),
              "items": data.encode_items(candidates), "features": features(candidates), "long_history": np.tile(long_history, (3, 1)),
              "long_clicks": np.tile(long_clicks, (3, 1)), "long_lengths": np.full(3, long_length, np.int32)}
    np.testing.assert_allclose(answer["click_probabilities"].iloc[0], predict(model, arrays), rtol=1e-5)
    assert long_length == 4 and length == 3  # the longer history holds the item the LSTM's window cut


def test_pyfunc_with_metadata_columns_reads_genres_and_the_profile_from_what_it_saved(tmp_path) -> None:
    from mktlab.data.movielens import item_metadata_frame
    from mktlab.models.lstm.serving import metadata_columns_of
    from mktlab.models.lstm.training import model_inputs

    cfg = composed(*TINY, "model.item_metadata=true", "model.metadata_profile=true", "model.affinity_dim=3", "data.long_len=5")
    metadata = item_metadata_frame(np.arange(10, 18), ["Action", "Comedy", "Action|Drama", "Drama", "Comedy", "Action", "Drama", ""],
                                   [1990, 1995, 2000, None, 1980, 1999, 2001, 2010])
    data = make_click_data(LOG, cfg.data, item_metadata=metadata)
    kwargs = module_kwargs(cfg, data)
    model = ClickLSTM(**kwargs, rngs=nnx.Rngs(1))
    loaded = mlflow.pyfunc.load_model(str(save_pyfunc(model, kwargs, data, tmp_path / "pyfunc", long_len=5,
                                                      metadata=metadata_columns_of(cfg, data))))
    test = data.test  # each user's last impression, scored as a request from the user's earlier items
    for row in range(len(test)):
        earlier = LOG[(LOG.user_id == test.users[row]) & (LOG.timestamp < test.timestamps[row])].sort_values("timestamp")
        known, flags = earlier["item_id"].astype(int).tolist(), earlier["clicked"].astype(int).tolist()
        answer = loaded.predict(pd.DataFrame({"recent_items": [known], "recent_clicks": [flags], "candidate_items": [[int(test.item_ids[row])]]}))
        inputs = {k: v[row:row + 1] for k, v in model_inputs(cfg, data, test).items()}
        np.testing.assert_allclose(answer["click_probabilities"].iloc[0], predict(model, inputs), rtol=1e-5)
