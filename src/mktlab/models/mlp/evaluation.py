"""Customer-response evaluation: test metrics of the MLP and a logistic baseline, marketing charts,
the mailing list of top-scored customers, and k-fold cross-validation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mktlab.data.tabular import TabularData, cross_validation_folds, one_hot_design
from mktlab.evaluation import plots
from mktlab.evaluation.classification import binary_report
from mktlab.evaluation.marketing import auc_standard_error, percent, response_report, top_size
from mktlab.evaluation.report import Report
from mktlab.models.contract import ModelImplementation
from mktlab.models.mlp.training import build_tasks, fit_quietly, module_kwargs, predict
from mktlab.train.loop import FitResult

LIFT_FRACTIONS = (0.1, 0.2)


def logistic_baseline(cfg: Any, data: TabularData) -> tuple[Any, float]:
    """scikit-learn logistic regression on the same inputs (standardized numbers, one-hot codes) and split.

    The inverse L2 strength is the candidate of `model.baseline_c` with the best
    validation ROC AUC (the last candidate when the validation split cannot rank).

    Returns:
        The fitted model and its C.
    """
    from sklearn.linear_model import LogisticRegression

    x_train, x_val = one_hot_design(data.train, data.cardinalities), one_hot_design(data.val, data.cardinalities)
    candidates = list(cfg.model.eval.baseline_c) or [1.0]
    fitted = [LogisticRegression(C=c, max_iter=5000).fit(x_train, data.train.labels.astype(int)) for c in candidates]
    scores = [binary_report(data.val.labels, m.predict_proba(x_val)[:, 1])["roc_auc"] if len(data.val) else np.nan for m in fitted]
    best = int(np.nanargmax(scores)) if np.isfinite(scores).any() else len(candidates) - 1
    return fitted[best], float(candidates[best])


def baseline_scores(model: Any, data: TabularData) -> np.ndarray:
    return model.predict_proba(one_hot_design(data.test, data.cardinalities))[:, 1]


def scores_report(cfg: Any, y_true: np.ndarray, y_score: np.ndarray, *, prefix: str) -> dict[str, float]:
    return response_report(y_true, y_score, top_fraction=cfg.model.eval.top_fraction, lift_fractions=LIFT_FRACTIONS, prefix=prefix)


def top_customers(cfg: Any, data: TabularData, scores: np.ndarray, baseline: np.ndarray) -> pd.DataFrame:
    """The test customers a campaign would mail: the top-scored ones with scores and the actual outcome."""
    count = cfg.model.eval.top_customers or top_size(len(data.test), cfg.model.eval.top_fraction)
    order = np.argsort(-scores, kind="stable")[:count]
    baseline_rank = np.empty(len(baseline), np.int64)
    baseline_rank[np.argsort(-baseline, kind="stable")] = np.arange(1, len(baseline) + 1)
    frame = pd.DataFrame({
        "rank": np.arange(1, len(order) + 1),
        "customer": data.test.ids[order],
        "score": np.round(scores[order], 5),
        "baseline_score": np.round(baseline[order], 5),
        "baseline_rank": baseline_rank[order],
        "bought": data.test.labels[order].astype(int),
    })
    for j, name in enumerate(data.categorical_names):
        frame[name] = data.test.categorical[order, j]
    return frame


def monitored_history(result: FitResult) -> list[dict[str, float]]:
    """Epoch, training metrics and validation ROC AUC only: on one axis, the slow rise of the AUC
    would be flattened by metrics of other scales."""
    return [{k: v for k, v in row.items() if k in ("epoch", "val_roc_auc") or k.startswith("train_")} for row in result.history]


def evaluate(cfg: Any, result: FitResult, data: TabularData) -> Report:
    """Test metrics of the best epoch's MLP and of the logistic baseline, charts, mailing list, model.

    With several seeds trained at once (`trainer.num_seeds`), each seed's report goes to its
    child run and the returned report holds the mean and spread over seeds.
    """
    model = result.model
    y = data.test.labels
    scores = predict(model, data.test, batch_size=cfg.trainer.eval_batch_size)
    baseline, c = logistic_baseline(cfg, data)
    baseline_p = baseline_scores(baseline, data)
    metrics = scores_report(cfg, y, scores, prefix="test_")
    metrics.update(scores_report(cfg, y, baseline_p, prefix="baseline_test_"))
    metrics.update({
        "baseline_c": c, "test_customers": len(y), "test_top_size": top_size(len(y), cfg.model.eval.top_fraction),
        "best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "fit_seconds": result.seconds,
    })
    curves = {"MLP": (y, scores), "logistic baseline": (y, baseline_p)}
    figures = {
        "learning_curve": plots.learning_curves(monitored_history(result), best_epoch=result.best_epoch,
                                                title="MLP: training loss and validation ROC AUC"),
        "roc": plots.roc_curves(curves, title="ROC curve (test)"),
        "pr": plots.pr_curves(curves, title="Precision-recall (test)"),
        "gains": plots.gains_curves(curves, mark=cfg.model.eval.top_fraction, title="Cumulative gains (test)"),
        "lift": plots.lift_curves(curves, mark=cfg.model.eval.top_fraction, title="Lift (test)"),
        "calibration": plots.calibration_curves(curves, title="Calibration (test)"),
    }
    tables = {
        "top_customers.csv": top_customers(cfg, data, scores, baseline_p),
        "standardization.csv": data.standardization(),
    }
    cv = cross_validate(cfg, data)
    return Report(metrics={**metrics, **cv.metrics}, figures=figures, tables={**tables, **cv.tables},
                  model=(model, module_kwargs(cfg, data)))


CV_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "top{p}_hits", "top{p}_recall", "lift_at_10", "lift_at_20")


def cross_validate(cfg: Any, data: TabularData) -> Report:
    """`model.eval.cv_folds`-fold stratified cross-validation of the MLP and the baseline on the development rows.

    Each fold trains a fresh MLP (early stopping on a validation share of the fold's
    training rows) and a fresh baseline, and scores the held-out fold. Returns `cv_<metric>_mean`
    and `cv_<metric>_std` (sample standard deviation over folds; `cv_baseline_...` for the
    baseline) and a per-fold table. No folds (an empty report) when `model.eval.cv_folds` < 2.
    """
    k = cfg.model.eval.cv_folds
    if k < 2:
        return Report()
    folds = cross_validation_folds(data, k, seed=cfg.seed, val_frac=cfg.data.val_frac)
    rows = []
    for i, fold in enumerate(folds, start=1):
        result = fit_quietly(cfg, fold, desc=f"mlp fold {i}/{k}")
        baseline, c = logistic_baseline(cfg, fold)
        row = {"fold": i, "train": len(fold.train), "val": len(fold.val), "held_out": len(fold.test),
               "buyers_held_out": fold.test.positives, "best_epoch": result.best_epoch, "baseline_c": c}
        row.update(scores_report(cfg, fold.test.labels, predict(result.model, fold.test), prefix=""))
        row.update(scores_report(cfg, fold.test.labels, baseline_scores(baseline, fold), prefix="baseline_"))
        rows.append(row)
    table = pd.DataFrame(rows)
    names = [m.format(p=percent(cfg.model.eval.top_fraction)) for m in CV_METRICS]
    metrics: dict[str, float] = {"cv_folds": k}
    for column in [*names, *(f"baseline_{m}" for m in names), "best_epoch"]:
        metrics[f"cv_{column}_mean"] = float(table[column].mean())
        metrics[f"cv_{column}_std"] = float(table[column].std(ddof=1))
    return Report(metrics=metrics, tables={"cv_folds.csv": table.round(5)})


def reading(cfg: Any, report: Report, data: TabularData) -> str:
    """A one-paragraph plain-language reading of the result (Markdown), built from the numbers."""
    m = report.metrics
    tag = next(key for key in m if key.startswith("test_top") and key.endswith("_hits"))[len("test_top") : -len("_hits")]
    n, k, buyers = int(m["test_customers"]), int(m["test_top_size"]), int(m["test_buyers"])
    hits, base_hits = int(m[f"test_top{tag}_hits"]), int(m[f"baseline_test_top{tag}_hits"])
    auc, base_auc = m["test_roc_auc"], m["baseline_test_roc_auc"]
    delta = auc - base_auc
    noise = auc_standard_error(base_auc, buyers, n - buyers)
    if abs(delta) < noise:
        verdict = (f"is level with the logistic baseline ({abs(delta):.3f} ROC AUC {'ahead' if delta >= 0 else 'behind'}, "
                   f"within the {noise:.3f} standard error of an AUC on {buyers} buyers)")
    else:
        verdict = f"{'beats' if delta > 0 else 'trails'} the logistic baseline by {abs(delta):.3f} ROC AUC (standard error {noise:.3f})"
    text = (
        f"On the {n} test customers ({buyers} buyers, {buyers / max(n, 1):.1%}), the MLP {verdict}: "
        f"ROC AUC **{auc:.3f}** against {base_auc:.3f}, PR AUC {m['test_pr_auc']:.3f} against {m['baseline_test_pr_auc']:.3f}. "
        f"Mailing the top {tag}% by score ({k} letters) reaches **{hits} of the {buyers} buyers** ({m[f'test_top{tag}_recall']:.0%}) "
        f"where the baseline reaches {base_hits} and a random mailing about {buyers * k / max(n, 1):.0f}; "
        f"lift at 10% is {m['test_lift_at_10']:.2f} (baseline {m['baseline_test_lift_at_10']:.2f}) and at 20% {m['test_lift_at_20']:.2f} "
        f"(baseline {m['baseline_test_lift_at_20']:.2f}). "
        f"As probabilities, the MLP scores a Brier of {m['test_brier']:.4f} and a log loss of {m['test_log_loss']:.3f} "
        f"(baseline {m['baseline_test_brier']:.4f} and {m['baseline_test_log_loss']:.3f}); "
        f"accuracy at 0.5 ({m['test_accuracy']:.3f}) says little when {1 - buyers / max(n, 1):.1%} of customers do not buy. "
        f"Validation ROC AUC peaked at epoch {int(m['best_epoch'])} of {int(m['epochs_run'])}; those parameters are the ones evaluated and saved."
    )
    if "cv_folds" in m:
        c = m
        text += (
            f" Across {int(c['cv_folds'])} cross-validation folds of the development customers, ROC AUC is "
            f"{c['cv_roc_auc_mean']:.3f} ± {c['cv_roc_auc_std']:.3f} for the MLP and "
            f"{c['cv_baseline_roc_auc_mean']:.3f} ± {c['cv_baseline_roc_auc_std']:.3f} for the baseline: "
            "differences smaller than that spread are not evidence either way."
        )
    return text


implementation = ModelImplementation(build_tasks=build_tasks, evaluate=evaluate, reading=reading)
