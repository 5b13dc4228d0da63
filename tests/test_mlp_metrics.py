"""Response metrics against scikit-learn and hand computations; the evaluation report and cross-validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn import metrics as skm

from mktlab.evaluation.marketing import gains_curve, lift_at, lift_curve, response_report, top_hits, top_size

# Ten customers, three buyers; by score the order is c0 c1 c2 ... c9.
Y = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0])
S = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])


def test_classification_metrics_equal_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.1).astype(int)
    p = np.clip(0.1 + 0.3 * y * rng.random(500) + 0.2 * rng.random(500), 0.01, 0.99)
    report = response_report(y, p, prefix="test_")
    assert report["test_roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert report["test_pr_auc"] == pytest.approx(skm.average_precision_score(y, p))
    assert report["test_log_loss"] == pytest.approx(skm.log_loss(y, p))
    assert report["test_brier"] == pytest.approx(skm.brier_score_loss(y, p))
    assert report["test_accuracy"] == pytest.approx(skm.accuracy_score(y, p >= 0.5))
    assert report["test_log_loss"] == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    assert report["test_brier"] == pytest.approx(np.mean((p - y) ** 2))


def test_top_hits_and_lift_on_hand_made_arrays() -> None:
    assert top_size(10, 0.2) == 2 and top_size(4000, 0.2) == 800 and top_size(3, 0.1) == 1
    assert top_hits(Y, S, 0.2) == 1  # c0 (buyer), c1
    assert top_hits(Y, S, 0.3) == 2  # c0, c1, c2
    assert top_hits(Y, S, 0.6) == 3
    # lift: buyer rate in the top share / overall rate 0.3
    assert lift_at(Y, S, 0.1) == pytest.approx(1.0 / 0.3)
    assert lift_at(Y, S, 0.2) == pytest.approx(0.5 / 0.3)
    assert lift_at(Y, S, 1.0) == pytest.approx(1.0)
    report = response_report(Y, S, top_fraction=0.2, lift_fractions=(0.1, 0.2))
    assert report["top20_hits"] == 1 and report["top20_recall"] == pytest.approx(1 / 3) and report["buyers"] == 3
    assert report["lift_at_10"] == pytest.approx(10 / 3) and report["lift_at_20"] == pytest.approx(5 / 3)
    # the challenge's own numbers: 4000 customers, hits among the top 800
    rng = np.random.default_rng(1)
    y, s = (rng.random(4000) < 0.06).astype(int), rng.random(4000)
    assert top_hits(y, s, 0.2) == y[np.argsort(-s)[:800]].sum()


def test_ties_keep_the_customers_order_and_scores_need_not_be_probabilities() -> None:
    y, s = np.array([0, 1, 1, 0]), np.array([2.0, 2.0, 1.0, 1.0])
    assert top_hits(y, s, 0.25) == 0 and top_hits(y[::-1], s[::-1], 0.25) == 1
    with pytest.raises(ValueError):
        top_size(10, 0.0)


def test_gains_and_lift_curves() -> None:
    contacted, reached = gains_curve(Y, S)
    np.testing.assert_allclose(contacted, np.arange(11) / 10)
    np.testing.assert_allclose(reached, np.array([0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]) / 3)
    share, lift = lift_curve(Y, S)
    assert lift[0] == pytest.approx(1 / 0.3) and lift[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(lift, reached[1:] / share)


# --------------------------------------------------------------------------- the evaluation report


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from test_mlp_data import write_coil

    from mktlab.config import compose, to_dataclasses
    from mktlab.data.tabular import load_tabular
    from mktlab.train.mlp import fit

    folder = tmp_path_factory.mktemp("coil")
    write_coil(folder, n_train=300, n_eval=100)
    cfg = to_dataclasses(compose(["model=mlp", "trainer.progress=false", "model.hidden=[8]", "trainer.epochs=3", "trainer.batch_size=64",
                                  "data=coil2000", f"data.path={folder}", "trainer.cv_folds=3"]))
    data = load_tabular(cfg.data, seed=0, cache_dir=str(folder))
    return cfg, data, fit(cfg, data)


def test_evaluate_reports_mlp_and_baseline_metrics_charts_and_the_mailing_list(fitted) -> None:
    from mktlab.evaluation.mlp import evaluate, logistic_baseline, reading
    from mktlab.train.mlp import predict

    cfg, data, result = fitted
    report = evaluate(cfg, result, data)
    m = report.metrics
    for name in ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "top20_hits", "top20_recall", "lift_at_10", "lift_at_20"):
        assert np.isfinite(m[f"test_{name}"]) and np.isfinite(m[f"baseline_test_{name}"]), name
    scores = predict(result.model, data.test)
    assert m["test_roc_auc"] == pytest.approx(skm.roc_auc_score(data.test.labels, scores))
    assert m["test_top20_hits"] == top_hits(data.test.labels, scores, 0.2) and m["test_top_size"] == 20
    assert m["best_epoch"] == result.best_epoch and m["baseline_c"] in cfg.model.baseline_c
    assert set(report.figures) == {"learning_curve", "roc", "pr", "gains", "lift", "calibration"}
    top = report.tables["top_customers.csv"]
    assert len(top) == 20 and list(top["rank"]) == list(range(1, 21))
    assert np.all(np.diff(top["score"]) <= 0) and top["bought"].sum() == m["test_top20_hits"]
    assert set(top["customer"]) <= set(data.test.ids) and {"baseline_score", "MOSTYPE", "MOSHOOFD"} <= set(top.columns)
    model, c = logistic_baseline(cfg, data)
    assert c == m["baseline_c"] and model.coef_.shape == (1, data.num_inputs)
    text = reading(report)
    assert f"{int(m['test_top20_hits'])} of the {int(m['test_buyers'])} buyers" in text and f"{m['test_roc_auc']:.3f}" in text
    report.close_figures()


def test_cross_validation_reports_mean_and_spread(fitted) -> None:
    from mktlab.evaluation.mlp import cross_validate, reading

    cfg, data, _ = fitted
    cv = cross_validate(cfg, data)
    folds = cv.tables["cv_folds.csv"]
    assert len(folds) == 3 and folds["held_out"].sum() == len(data.train) + len(data.val)
    for name in ("roc_auc", "top20_hits", "lift_at_10", "baseline_roc_auc", "baseline_top20_hits"):
        assert cv.metrics[f"cv_{name}_mean"] == pytest.approx(folds[name].mean(), abs=1e-4)
        assert cv.metrics[f"cv_{name}_std"] == pytest.approx(np.std(folds[name], ddof=1), abs=1e-4)
    assert cv.metrics["cv_folds"] == 3
    off = dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, cv_folds=0))
    assert not cross_validate(off, data).metrics
    from mktlab.evaluation.report import Report

    assert "cross-validation folds" in reading(Report(metrics={**dummy_metrics()}), cv)


def dummy_metrics() -> dict[str, float]:
    keys = ["roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "top20_hits", "top20_recall", "lift_at_10", "lift_at_20", "buyers"]
    out = {f"test_{k}": 1.0 for k in keys} | {f"baseline_test_{k}": 1.0 for k in keys}
    return out | {"test_customers": 10, "test_top_size": 2, "best_epoch": 1, "epochs_run": 2}


def test_auc_standard_error_matches_hanley_mcneil() -> None:
    from mktlab.evaluation.marketing import auc_standard_error

    # by hand: q1 = 0.9/1.1, q2 = 1.62/1.9, var = (0.09 + 49 (q1 - 0.81) + 49 (q2 - 0.81)) / 2500
    q1, q2 = 0.9 / 1.1, 1.62 / 1.9
    assert auc_standard_error(0.9, 50, 50) == pytest.approx(np.sqrt((0.09 + 49 * (q1 - 0.81) + 49 * (q2 - 0.81)) / 2500))
    assert auc_standard_error(0.9, 50, 50) == pytest.approx(0.0321, abs=1e-4)
    assert auc_standard_error(0.75, 70, 1095) > auc_standard_error(0.75, 700, 10950)
    assert np.isnan(auc_standard_error(0.7, 0, 10))


@pytest.mark.parametrize("decimals", [None, 1, 2], ids=["distinct scores", "scores tied to 1 decimal", "tied to 2 decimals"])
def test_traced_metrics_equal_scikit_learn(decimals: int | None) -> None:
    """The per-epoch validation metrics, computed in JAX, are binary_report's (scikit-learn's) to float32 precision."""
    import jax

    from mktlab.evaluation.classification import binary_metrics_traced, binary_report

    metrics = jax.jit(binary_metrics_traced)
    rng = np.random.default_rng(decimals or 0)
    for n in (2, 17, 400, 2500):
        y = (rng.random(n) < 0.15).astype(int)
        y[:2] = [0, 1]
        s = np.clip(0.3 * y + rng.random(n), 0, 1).astype(np.float32)  # informative, with scores of exactly 0 and 1
        if decimals is not None:
            s = np.round(s, decimals).astype(np.float32)
        expected = binary_report(y, s)
        got = metrics(y, s)
        for name in ("roc_auc", "pr_auc", "log_loss", "brier"):
            assert float(got[name]) == pytest.approx(expected[name], abs=1e-6), (n, name)


def test_traced_metrics_without_both_classes_and_under_vmap() -> None:
    import jax

    from mktlab.evaluation.classification import binary_metrics_traced

    one_class = jax.jit(binary_metrics_traced)(np.zeros(5, int), np.linspace(0.1, 0.9, 5))
    assert np.isnan(one_class["roc_auc"]) and np.isnan(one_class["pr_auc"])
    assert float(one_class["log_loss"]) == pytest.approx(-np.mean(np.log(1 - np.linspace(0.1, 0.9, 5))), rel=1e-6)
    y = np.array([[0, 1, 1, 0], [1, 0, 0, 1]])
    s = np.array([[0.1, 0.8, 0.4, 0.4], [0.9, 0.2, 0.3, 0.1]], np.float32)
    batched = jax.vmap(binary_metrics_traced)(y, s)
    for row in range(2):
        assert float(batched["roc_auc"][row]) == pytest.approx(skm.roc_auc_score(y[row], s[row]))
        assert float(batched["pr_auc"][row]) == pytest.approx(skm.average_precision_score(y[row], s[row]))
