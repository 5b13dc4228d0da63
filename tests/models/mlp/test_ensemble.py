"""The response MLP's seeds scored as one ensemble (`evaluate_seeds`), cross-validated once per run, and
its CoIL 2000 metric on the original files."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from helpers import artifact_paths, noisy_response_data, write_coil
from mktlab import session
from mktlab.config import to_container
from mktlab.data.tabular import load_tabular
from mktlab.evaluation.marketing import top_hits
from mktlab.models import registry
from mktlab.models.mlp import evaluation
from mktlab.models.mlp.evaluation import coil_hits, ensemble_scores, evaluate, member_scores, reading
from mktlab.models.mlp.training import predict
from mktlab.train import SeedResults

# synthetic tables: the default attribute lists name Caravan attributes
TINY = ["model=mlp", "trainer.progress=false", "model.hidden=[8]", "trainer.batch_size=64", "model.features=null", "model.levels=null"]


def test_an_ensemble_varies_less_than_a_single_seed(cfg_for) -> None:
    """Two ensembles of four seeds each disagree far less than two single seeds do."""
    data = noisy_response_data()
    cfg = cfg_for([*TINY, "trainer.seeds=[0,1,2,3,4,5,6,7]", "trainer.epochs=6", "trainer.patience=null"])
    fitted = session.fit(cfg, data)
    members = member_scores(fitted.results, data.test)
    assert members.shape == (8, len(data.test))
    single = np.mean([np.mean((members[i] - members[j]) ** 2) for i, j in itertools.combinations(range(8), 2)])
    ensembles = np.mean((members[:4].mean(axis=0) - members[4:].mean(axis=0)) ** 2)
    assert ensembles < 0.5 * single  # independent members: a quarter
    aucs = [roc_auc_score(data.test.labels, scores) for scores in members]
    halves = [roc_auc_score(data.test.labels, members[:4].mean(axis=0)), roc_auc_score(data.test.labels, members[4:].mean(axis=0))]
    assert abs(halves[0] - halves[1]) < max(aucs) - min(aucs)


def test_the_ensemble_is_the_mean_of_the_members_probabilities_scored_once(cfg_for, monkeypatch) -> None:
    data = noisy_response_data(seed=1)
    cfg = cfg_for([*TINY, "trainer.num_seeds=3", "trainer.epochs=4", "model.eval.cv_folds=2"])
    fitted = session.fit(cfg, data)
    assert isinstance(fitted, SeedResults) and fitted.seeds == [0, 1, 2]
    calls = []
    cross_validate = evaluation.cross_validate
    monkeypatch.setattr(evaluation, "cross_validate", lambda *args: calls.append(args) or cross_validate(*args))
    report = session.evaluate(cfg, fitted, data)
    assert len(calls) == 1  # once for the run, not once per seed
    m, y = report.metrics, data.test.labels
    members = np.stack([predict(result.model, data.test) for result in fitted.results])
    ensemble = members.mean(axis=0)
    np.testing.assert_allclose(ensemble_scores(fitted.results, data.test), ensemble, rtol=1e-6)
    assert m["test_ensemble_roc_auc"] == pytest.approx(roc_auc_score(y, ensemble))
    assert m["test_ensemble_top20_hits"] == top_hits(y, ensemble, 0.2)
    val = np.mean([predict(result.model, data.val) for result in fitted.results], axis=0)
    assert m["val_ensemble_roc_auc"] == pytest.approx(roc_auc_score(data.val.labels, val))
    # beside it, the seeds scored one by one: mean and spread
    aucs = [roc_auc_score(y, scores) for scores in members]
    assert m["test_roc_auc"] == pytest.approx(np.mean(aucs)) and m["test_roc_auc_std"] == pytest.approx(np.std(aucs, ddof=1))
    assert m["test_top20_hits"] == pytest.approx(np.mean([top_hits(y, scores, 0.2) for scores in members]))
    assert m["num_seeds"] == 3 and m["baseline_test_roc_auc_std"] == 0.0  # one baseline for every seed
    # one seed's own report (its child run's): its metrics and network, no charts, no cross-validation
    alone = evaluate(cfg, fitted.results[1], data)
    assert alone.metrics["test_roc_auc"] == pytest.approx(aucs[1]) and alone.model is not None
    assert not alone.figures and not alone.tables and not any(k.startswith("cv_") for k in alone.metrics)
    # the charts and the mailing list are the ensemble's
    top = report.tables["top_customers.csv"]
    order = np.argsort(-ensemble, kind="stable")[: len(top)]
    assert list(top["customer"]) == list(data.test.ids[order]) and top["bought"].sum() == m["test_ensemble_top20_hits"]
    assert set(report.figures) == {"learning_curve", "roc", "pr", "gains", "lift", "calibration"}
    assert "ensemble of 3 seeds" in " ".join(line.get_label() for line in report.figures["roc"].axes[0].get_lines())
    report.close_figures()
    # cross-validation: each fold's seeds, one by one and as their ensemble
    folds = report.tables["cv_folds.csv"]
    assert len(folds) == 2 and m["cv_folds"] == 2
    for name in ("roc_auc", "top20_hits", "ensemble_roc_auc", "ensemble_top20_hits", "baseline_roc_auc"):
        assert m[f"cv_{name}_mean"] == pytest.approx(folds[name].mean(), abs=1e-4)
        assert m[f"cv_{name}_std"] == pytest.approx(np.std(folds[name], ddof=1), abs=1e-4)
    text = reading(cfg, report, data)
    assert "the MLP ensemble (the mean of 3 seeds' probabilities)" in text and f"{m['test_ensemble_roc_auc']:.3f}" in text
    assert ("beats its logistic baseline" in text) == (m["test_ensemble_roc_auc"] > m["baseline_test_roc_auc"]
                                                        and m["test_ensemble_top20_hits"] > m["baseline_test_top20_hits"])
    assert "cross-validation folds" in text and f"{m['cv_ensemble_roc_auc_mean']:.3f}" in text


def test_seed_children_get_their_metrics_and_model_the_run_the_ensemble(store) -> None:
    from mktlab.tracking.checkpoints import load_module_from_run

    config = to_container(registry.compose(["model=mlp", "trainer.progress=false", "model.hidden=[8]", "data.subsample=1500",
                                            "trainer.epochs=2", "trainer.num_seeds=2", *store.overrides]))
    cfg, parent = session.start(config=config)
    data = session.load(cfg, parent)
    report = session.evaluate(cfg, session.fit(cfg, data, parent), data, parent)
    report.close_figures()
    children = [r for r in store.runs("mlp") if r.data.tags.get("mlflow.parentRunId") == parent.run_id]
    assert sorted(r.data.params["seed"] for r in children) == ["0", "1"] and all(r.info.status == "FINISHED" for r in children)
    values = np.array([r.data.metrics["test_roc_auc"] for r in children])
    recorded = store.client.get_run(parent.run_id).data.metrics
    assert recorded["test_roc_auc"] == pytest.approx(values.mean()) and "test_ensemble_roc_auc" in recorded
    assert recorded["test_ensemble_roc_auc"] == pytest.approx(report.metrics["test_ensemble_roc_auc"])
    assert {"figures/roc.png", "top_customers.csv", "model/params.npz"} <= artifact_paths(store.client, parent.run_id)
    for child in children:
        assert not any(path.startswith("figures/") for path in artifact_paths(store.client, child.info.run_id))
        model = load_module_from_run(child.info.run_id, tracking_uri=store.uri)
        assert roc_auc_score(data.test.labels, predict(model, data.test)) == pytest.approx(child.data.metrics["test_roc_auc"], abs=1e-6)
    session.finish(parent)


# --------------------------------------------------------------------------- the CoIL metric


def test_coil_hits_count_buyers_among_the_800_top_scored() -> None:
    rng = np.random.default_rng(0)
    y, s = (rng.random(4000) < 0.06).astype(int), rng.random(4000)
    assert coil_hits(y, s) == y[np.argsort(-s)[:800]].sum()
    assert coil_hits(y[:500], s[:500]) == y[:500].sum()  # fewer than 800 customers: all are mailed


def test_the_original_files_report_the_coil_metric_for_model_and_baseline(tmp_path, cfg_for) -> None:
    write_coil(tmp_path, n_train=300, n_eval=1000)
    cfg = cfg_for(["model=mlp", "trainer.progress=false", "model.hidden=[8]", "trainer.batch_size=64", "trainer.epochs=2",
                   "data=coil2000", f"data.path={tmp_path}", "trainer.num_seeds=1"])
    data = load_tabular(cfg.data, seed=0, cache_dir=str(tmp_path))
    result = session.fit(cfg, data)
    report = evaluate(cfg, result, data)
    m, y = report.metrics, data.test.labels
    scores = predict(result.model, data.test)
    baseline = evaluation.baseline_scores(evaluation.logistic_baseline(cfg, data)[0], data)
    assert m["test_coil_top800_hits"] == y[np.argsort(-scores, kind="stable")[:800]].sum()
    assert m["baseline_test_coil_top800_hits"] == y[np.argsort(-baseline, kind="stable")[:800]].sum()
    assert f"**{m['test_coil_top800_hits']:.0f} buyers among the top 800**" in reading(cfg, report, data)
    report.close_figures()
    seeds = cfg_for(["model=mlp", "trainer.progress=false", "model.hidden=[8]", "trainer.batch_size=64", "trainer.epochs=2",
                     "data=coil2000", f"data.path={tmp_path}", "trainer.num_seeds=2"])
    report = session.evaluate(seeds, session.fit(seeds, data), data)
    assert {"test_coil_top800_hits", "test_ensemble_coil_top800_hits", "baseline_test_coil_top800_hits"} <= set(report.metrics)
    assert f"**{report.metrics['test_ensemble_coil_top800_hits']:.0f} buyers among the top 800**" in reading(seeds, report, data)
    report.close_figures()
