"""The MLP's evaluation report (its metrics beside the logistic baseline's, charts, the mailing list),
its cross-validation (part of `evaluate` when `model.eval.cv_folds` > 1) and its reading."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from helpers import composed, replace_in, write_coil
from mktlab import session
from mktlab.data.tabular import load_tabular
from mktlab.evaluation.marketing import top_hits
from mktlab.evaluation.report import Report
from mktlab.models.mlp.evaluation import cross_validate, evaluate, logistic_baseline, reading
from mktlab.models.mlp.training import predict


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("coil")
    write_coil(folder, n_train=300, n_eval=100)
    cfg = composed("model=mlp", "trainer.progress=false", "model.hidden=[8]", "trainer.epochs=3", "trainer.batch_size=64",
                   "data=coil2000", f"data.path={folder}", "model.eval.cv_folds=3", "trainer.num_seeds=1")
    data = load_tabular(cfg.data, seed=0, cache_dir=str(folder))
    return cfg, data, session.fit(cfg, data)


def test_evaluate_reports_mlp_and_baseline_metrics_charts_and_the_mailing_list(fitted) -> None:
    cfg, data, result = fitted
    report = evaluate(cfg, result, data)
    m = report.metrics
    for name in ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "top20_hits", "top20_recall", "lift_at_10", "lift_at_20"):
        assert np.isfinite(m[f"test_{name}"]) and np.isfinite(m[f"baseline_test_{name}"]), name
    scores = predict(result.model, data.test)
    assert m["test_roc_auc"] == pytest.approx(skm.roc_auc_score(data.test.labels, scores))
    assert m["test_top20_hits"] == top_hits(data.test.labels, scores, 0.2) and m["test_top_size"] == 20
    assert m["best_epoch"] == result.best_epoch and m["baseline_c"] in cfg.model.eval.baseline_c
    assert set(report.figures) == {"learning_curve", "roc", "pr", "gains", "lift", "calibration"}
    top = report.tables["top_customers.csv"]
    assert len(top) == 20 and list(top["rank"]) == list(range(1, 21))
    assert np.all(np.diff(top["score"]) <= 0) and top["bought"].sum() == m["test_top20_hits"]
    assert set(top["customer"]) <= set(data.test.ids) and {"baseline_score", "MOSTYPE", "MOSHOOFD"} <= set(top.columns)
    model, c = logistic_baseline(cfg, data)
    assert c == m["baseline_c"] and model.coef_.shape == (1, data.num_inputs)
    # model.eval.cv_folds=3: the cross-validation is part of the evaluation
    assert m["cv_folds"] == 3 and "cv_folds.csv" in report.tables and np.isfinite(m["cv_roc_auc_mean"])
    text = reading(cfg, report, data)
    assert f"{int(m['test_top20_hits'])} of the {int(m['test_buyers'])} buyers" in text and f"{m['test_roc_auc']:.3f}" in text
    report.close_figures()


def test_cross_validation_reports_mean_and_spread(fitted) -> None:
    cfg, data, result = fitted
    cv = cross_validate(cfg, data)
    folds = cv.tables["cv_folds.csv"]
    assert len(folds) == 3 and folds["held_out"].sum() == len(data.train) + len(data.val)
    for name in ("roc_auc", "top20_hits", "lift_at_10", "baseline_roc_auc", "baseline_top20_hits"):
        assert cv.metrics[f"cv_{name}_mean"] == pytest.approx(folds[name].mean(), abs=1e-4)
        assert cv.metrics[f"cv_{name}_std"] == pytest.approx(np.std(folds[name], ddof=1), abs=1e-4)
    assert cv.metrics["cv_folds"] == 3
    off = replace_in(cfg, "model.eval", cv_folds=0)
    assert not cross_validate(off, data).metrics
    without = evaluate(off, result, data)
    assert not any(k.startswith("cv_") for k in without.metrics) and "cv_folds.csv" not in without.tables
    without.close_figures()
    assert "cross-validation folds" in reading(cfg, Report(metrics={**dummy_metrics(), **cv.metrics}), data)
    assert "cross-validation folds" not in reading(cfg, Report(metrics=dummy_metrics()), data)


def dummy_metrics() -> dict[str, float]:
    keys = ["roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "top20_hits", "top20_recall", "lift_at_10", "lift_at_20", "buyers"]
    out = {f"test_{k}": 1.0 for k in keys} | {f"baseline_test_{k}": 1.0 for k in keys}
    return out | {"test_customers": 10, "test_top_size": 2, "best_epoch": 1, "epochs_run": 2}
