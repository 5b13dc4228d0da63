"""Customer-response evaluation: test metrics of the MLP and a logistic baseline, marketing charts,
the mailing list of top-scored customers, k-fold cross-validation, and the reading.

A run of one seed is evaluated by `evaluate` alone. A run of several seeds (`trainer.num_seeds`,
8 by default) is evaluated twice over: `evaluate` scores each seed's network on its own (its
child run gets its metrics and its model; the run itself their mean and spread, `test_*` and
`test_*_std`), and `evaluate_seeds` scores the seeds together as one ensemble, the mean of their
probabilities ranked as a single model (`test_ensemble_*`, `val_ensemble_roc_auc`), with the
ensemble's charts and mailing list, and cross-validates once for the whole run (`cv_*`,
`cv_ensemble_*`, `cv_baseline_*`).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mktlab.data.tabular import TabularData, TabularSplit, cross_validation_folds, one_hot_design
from mktlab.evaluation import plots
from mktlab.evaluation.classification import binary_report
from mktlab.evaluation.marketing import auc_standard_error, percent, ranked, response_report, top_size
from mktlab.evaluation.report import Report
from mktlab.models.contract import ModelImplementation
from mktlab.models.mlp.training import build_tasks, fit_quietly, fit_seeds_quietly, module_kwargs, predict
from mktlab.train.keys import seed_list, several_seeds
from mktlab.train.loop import FitResult, SeedResults

LIFT_FRACTIONS = (0.1, 0.2)
COIL_MAILING = 800  # the CoIL Challenge 2000 metric: buyers among the 800 top-scored of its 4000 evaluation customers
COIL_EVALUATION = 4000  # customers in the challenge's evaluation file
COIL_WINNER = "the challenge’s winner found 121 of 238"


# data set (by id, dropped when it is collected) -> candidate Cs -> the fitted baseline and its C
_BASELINES: dict[int, dict[tuple[float, ...], tuple[Any, float]]] = {}


def logistic_baseline(cfg: Any, data: TabularData) -> tuple[Any, float]:
    """scikit-learn logistic regression on all the inputs (standardized numbers, one-hot codes) and the same split.

    The inverse L2 strength is the candidate of `model.eval.baseline_c` with the best
    validation ROC AUC (the last candidate when the validation split cannot rank). The
    baseline reads every attribute whatever `model.features` and `model.levels` say.
    It is fitted once per data set and candidates (the fit is deterministic): the seeds of
    a run, evaluated one by one and as their ensemble, share it.

    Returns:
        The fitted model and its C.
    """
    fitted = _BASELINES.get(id(data))
    if fitted is None:
        fitted = _BASELINES[id(data)] = {}
        weakref.finalize(data, _BASELINES.pop, id(data), None)
    candidates = tuple(float(c) for c in cfg.model.eval.baseline_c)
    if candidates not in fitted:
        fitted[candidates] = _fit_baseline(candidates, data)
    return fitted[candidates]


def _fit_baseline(candidates: Sequence[float], data: TabularData) -> tuple[Any, float]:
    from sklearn.linear_model import LogisticRegression

    x_train, x_val = one_hot_design(data.train, data.cardinalities), one_hot_design(data.val, data.cardinalities)
    candidates = list(candidates) or [1.0]
    fitted = [LogisticRegression(C=c, max_iter=5000).fit(x_train, data.train.labels.astype(int)) for c in candidates]
    scores = [binary_report(data.val.labels, m.predict_proba(x_val)[:, 1])["roc_auc"] if len(data.val) else np.nan for m in fitted]
    best = int(np.nanargmax(scores)) if np.isfinite(scores).any() else len(candidates) - 1
    return fitted[best], float(candidates[best])


def baseline_scores(model: Any, data: TabularData) -> np.ndarray:
    return model.predict_proba(one_hot_design(data.test, data.cardinalities))[:, 1]


def scores_report(cfg: Any, y_true: np.ndarray, y_score: np.ndarray, *, prefix: str) -> dict[str, float]:
    return response_report(y_true, y_score, top_fraction=cfg.model.eval.top_fraction, lift_fractions=LIFT_FRACTIONS, prefix=prefix)


def coil_hits(y_true: np.ndarray, y_score: np.ndarray) -> int:
    """Buyers among the `COIL_MAILING` (800) top-scored customers (all of them when there are fewer)."""
    return int(ranked(y_true, y_score)[:COIL_MAILING].sum())


def report_on_test(cfg: Any, y_true: np.ndarray, y_score: np.ndarray, *, prefix: str) -> dict[str, float]:
    """`scores_report` of the test split, plus `<prefix>coil_top800_hits` on the original CoIL files."""
    metrics = scores_report(cfg, y_true, y_score, prefix=prefix)
    if cfg.data.source == "coil2000":
        metrics[f"{prefix}coil_top800_hits"] = float(coil_hits(y_true, y_score))
    return metrics


def member_scores(results: Sequence[FitResult], split: TabularSplit, *, batch_size: int = 65536) -> np.ndarray:
    """Each trained copy's probabilities on `split`, shape (copies, customers)."""
    return np.stack([predict(result.model, split, batch_size=batch_size) for result in results])


def ensemble_scores(results: Sequence[FitResult], split: TabularSplit, *, batch_size: int = 65536) -> np.ndarray:
    """The ensemble's probabilities on `split`: the mean of its members' probabilities."""
    return member_scores(results, split, batch_size=batch_size).mean(axis=0)


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


def fit_metrics(result: FitResult) -> dict[str, float]:
    return {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "fit_seconds": result.seconds}


def metrics_on_test(cfg: Any, data: TabularData, scores: np.ndarray, baseline_p: np.ndarray, c: float, *, prefix: str) -> dict[str, float]:
    """`<prefix>...` for `scores` and `baseline_test_...` for the baseline on the test split, and their sizes."""
    y = data.test.labels
    return {**report_on_test(cfg, y, scores, prefix=prefix), **report_on_test(cfg, y, baseline_p, prefix="baseline_test_"),
            "baseline_c": c, "test_customers": len(y), "test_top_size": top_size(len(y), cfg.model.eval.top_fraction)}


def charted(cfg: Any, data: TabularData, scores: np.ndarray, baseline_p: np.ndarray, *, label: str, result: FitResult,
            learning: str) -> Report:
    """The charts and the mailing list of one scoring of the test split, beside the baseline's."""
    y = data.test.labels
    curves = {label: (y, scores), "logistic baseline": (y, baseline_p)}
    top = cfg.model.eval.top_fraction
    figures = {
        "learning_curve": plots.learning_curves(monitored_history(result), best_epoch=result.best_epoch, title=learning),
        "roc": plots.roc_curves(curves, title="ROC curve (test)"),
        "pr": plots.pr_curves(curves, title="Precision-recall (test)"),
        "gains": plots.gains_curves(curves, mark=top, title="Cumulative gains (test)"),
        "lift": plots.lift_curves(curves, mark=top, title="Lift (test)"),
        "calibration": plots.calibration_curves(curves, title="Calibration (test)"),
    }
    tables = {"top_customers.csv": top_customers(cfg, data, scores, baseline_p), "standardization.csv": data.standardization()}
    return Report(figures=figures, tables=tables)


def evaluate(cfg: Any, result: FitResult, data: TabularData) -> Report:
    """Test metrics of one trained network (its best epoch) and of the logistic baseline, and the network.

    A run of one seed also gets the charts, the mailing list and, with `model.eval.cv_folds`
    > 1, the cross-validation. A run of several seeds calls this once per seed, for the seed's
    child run, and gets those from `evaluate_seeds` instead: the ensemble's charts and mailing
    list, and one cross-validation for the whole run (not one per seed). On the original CoIL
    files (`data.source=coil2000`) every scoring also reports `coil_top800_hits`.
    """
    baseline, c = logistic_baseline(cfg, data)
    baseline_p = baseline_scores(baseline, data)
    scores = predict(result.model, data.test, batch_size=cfg.trainer.eval_batch_size)
    metrics = {**metrics_on_test(cfg, data, scores, baseline_p, c, prefix="test_"), **fit_metrics(result)}
    model = (result.model, module_kwargs(cfg, data))
    if several_seeds(cfg):
        return Report(metrics=metrics, model=model)
    report = charted(cfg, data, scores, baseline_p, label="MLP", result=result, learning="MLP: training loss and validation ROC AUC")
    cv = cross_validate(cfg, data)
    return Report(metrics={**metrics, **cv.metrics}, figures=report.figures, tables={**report.tables, **cv.tables}, model=model)


def evaluate_seeds(cfg: Any, results: SeedResults, data: TabularData) -> Report:
    """The run's seeds scored together: the mean of their probabilities ranked as one model.

    Metrics `test_ensemble_*` on the test split (beside `baseline_test_*`) and
    `val_ensemble_roc_auc`; the ensemble's charts against the baseline and its mailing
    list; with `model.eval.cv_folds` > 1, the cross-validation (every fold trains the run's
    seeds: `cv_*` their mean, `cv_ensemble_*` their ensemble, `cv_baseline_*`).
    """
    baseline, c = logistic_baseline(cfg, data)
    baseline_p = baseline_scores(baseline, data)
    batch = cfg.trainer.eval_batch_size
    ensemble = ensemble_scores(results.results, data.test, batch_size=batch)
    metrics = metrics_on_test(cfg, data, ensemble, baseline_p, c, prefix="test_ensemble_")
    if len(np.unique(data.val.labels)) == 2:  # validation AUC needs buyers and non-buyers
        val = ensemble_scores(results.results, data.val, batch_size=batch)
        metrics["val_ensemble_roc_auc"] = binary_report(data.val.labels, val)["roc_auc"]
    report = charted(cfg, data, ensemble, baseline_p, label=f"MLP, ensemble of {len(results)} seeds", result=results.results[0],
                     learning=f"MLP (seed {results.seeds[0]} of {len(results)}): training loss and validation ROC AUC")
    cv = cross_validate(cfg, data)
    return Report(metrics={**metrics, **cv.metrics}, figures=report.figures, tables={**report.tables, **cv.tables})


CV_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "top{p}_hits", "top{p}_recall", "lift_at_10", "lift_at_20")


def cross_validate(cfg: Any, data: TabularData) -> Report:
    """`model.eval.cv_folds`-fold stratified cross-validation of the MLP and the baseline on the development rows.

    Each fold trains fresh MLPs (early stopping on a validation share of the fold's
    training rows; one per seed of the run, trained together as the run trains them) and a
    fresh baseline, and scores the held-out fold. Returns `cv_<metric>_mean` and
    `cv_<metric>_std` (sample standard deviation over folds; `cv_<metric>` is the mean over
    the seeds of a fold, `cv_ensemble_<metric>` their ensemble when the run has several,
    `cv_baseline_<metric>` the baseline) and a per-fold table. No folds (an empty report)
    when `model.eval.cv_folds` < 2.
    """
    k = cfg.model.eval.cv_folds
    if k < 2:
        return Report()
    folds = cross_validation_folds(data, k, seed=cfg.seed, val_frac=cfg.data.val_frac)
    several = several_seeds(cfg)
    names = [m.format(p=percent(cfg.model.eval.top_fraction)) for m in CV_METRICS]
    rows = []
    for i, fold in enumerate(folds, start=1):
        if several:
            results = fit_seeds_quietly(cfg, fold, seed_list(cfg), desc=f"mlp fold {i}/{k}")
        else:
            results = [fit_quietly(cfg, fold, desc=f"mlp fold {i}/{k}")]
        baseline, c = logistic_baseline(cfg, fold)
        members = member_scores(results, fold.test, batch_size=cfg.trainer.eval_batch_size)
        row = {"fold": i, "train": len(fold.train), "val": len(fold.val), "held_out": len(fold.test),
               "buyers_held_out": fold.test.positives, "best_epoch": float(np.mean([r.best_epoch for r in results])), "baseline_c": c}
        each = pd.DataFrame([scores_report(cfg, fold.test.labels, scores, prefix="") for scores in members])
        row.update({name: float(each[name].mean()) for name in names})
        if several:
            row.update(scores_report(cfg, fold.test.labels, members.mean(axis=0), prefix="ensemble_"))
        row.update(scores_report(cfg, fold.test.labels, baseline_scores(baseline, fold), prefix="baseline_"))
        rows.append(row)
    table = pd.DataFrame(rows)
    metrics: dict[str, float] = {"cv_folds": k}
    groups = ["", "baseline_", *(["ensemble_"] if several else [])]
    for column in [*(f"{group}{m}" for group in groups for m in names), "best_epoch"]:
        metrics[f"cv_{column}_mean"] = float(table[column].mean())
        metrics[f"cv_{column}_std"] = float(table[column].std(ddof=1))
    return Report(metrics=metrics, tables={"cv_folds.csv": table.round(5)})


def _versus(ahead_auc: bool, ahead_hits: bool, tag: str) -> str:
    hits = f"buyers in the top {tag}%"
    if ahead_auc and ahead_hits:
        return f"ahead in both ROC AUC and {hits}"
    if not ahead_auc and not ahead_hits:
        return f"ahead in neither ROC AUC nor {hits}"
    return f"ahead in {'ROC AUC' if ahead_auc else hits} but not in {hits if ahead_auc else 'ROC AUC'}"


def reading(cfg: Any, report: Report, data: TabularData) -> str:
    """A one-paragraph plain-language reading of the result (Markdown), built from the numbers.

    The model read is the seeds' ensemble when the run trained several (`test_ensemble_*`),
    else the one MLP. It beats its baseline when it is ahead in both ROC AUC and buyers in
    the top share of customers; the reading says so plainly, on the test split and, when
    the run cross-validated, on the fold means.
    """
    m = report.metrics
    ensemble = "test_ensemble_roc_auc" in m
    p = "test_ensemble_" if ensemble else "test_"
    tag = percent(cfg.model.eval.top_fraction)
    n, k, buyers = int(m["test_customers"]), int(m["test_top_size"]), int(m[f"{p}buyers"])
    hits, base_hits = m[f"{p}top{tag}_hits"], m[f"baseline_test_top{tag}_hits"]
    auc, base_auc = m[f"{p}roc_auc"], m["baseline_test_roc_auc"]
    model = f"the MLP ensemble (the mean of {int(m['num_seeds'])} seeds' probabilities)" if ensemble else "the MLP"
    short = "the ensemble" if ensemble else "the MLP"
    beats = auc > base_auc and hits > base_hits
    delta, noise = auc - base_auc, auc_standard_error(base_auc, buyers, n - buyers)
    size = "within" if abs(delta) < noise else "beyond"
    text = (
        f"**On the test split, {model} {'beats' if beats else 'does not beat'} its logistic baseline**: it is "
        f"{_versus(auc > base_auc, hits > base_hits, tag)}. "
        f"On the {n} test customers ({buyers} buyers, {buyers / max(n, 1):.1%}) its ROC AUC is **{auc:.3f}** against {base_auc:.3f} "
        f"({abs(delta):.3f} {'ahead' if delta >= 0 else 'behind'}, {size} the {noise:.3f} standard error of an AUC on {buyers} buyers), "
        f"PR AUC {m[f'{p}pr_auc']:.3f} against {m['baseline_test_pr_auc']:.3f}. "
        f"Mailing the top {tag}% by score ({k} letters) reaches **{hits:.0f} of the {buyers} buyers** ({m[f'{p}top{tag}_recall']:.0%}) "
        f"where the baseline reaches {base_hits:.0f} and a random mailing about {buyers * k / max(n, 1):.0f}; "
        f"lift at 10% is {m[f'{p}lift_at_10']:.2f} (baseline {m['baseline_test_lift_at_10']:.2f}) and at 20% {m[f'{p}lift_at_20']:.2f} "
        f"(baseline {m['baseline_test_lift_at_20']:.2f}). "
    )
    if ensemble:
        text += (
            f"Scored one by one, the {int(m['num_seeds'])} seeds reach ROC AUC {m['test_roc_auc']:.3f} ± {m['test_roc_auc_std']:.3f} "
            f"and {m[f'test_top{tag}_hits']:.1f} ± {m[f'test_top{tag}_hits_std']:.1f} buyers in the top {tag}% (mean ± standard "
            "deviation over seeds): one network's score depends on its seed, the ensemble averages that variance out. "
        )
    if f"{p}coil_top800_hits" in m:
        text += (
            f"On the CoIL Challenge 2000's own measure, {short} finds **{m[f'{p}coil_top800_hits']:.0f} buyers among the top "
            f"{COIL_MAILING}** of the {n} evaluation customers, the baseline {m['baseline_test_coil_top800_hits']:.0f}"
            f"{f' ({COIL_WINNER})' if n == COIL_EVALUATION else ''}. "
        )
    text += (
        f"As probabilities, {short} scores a Brier of {m[f'{p}brier']:.4f} and a log loss of {m[f'{p}log_loss']:.3f} "
        f"(baseline {m['baseline_test_brier']:.4f} and {m['baseline_test_log_loss']:.3f}); "
        f"accuracy at 0.5 ({m[f'{p}accuracy']:.3f}) says little when {1 - buyers / max(n, 1):.1%} of customers do not buy. "
    )
    if ensemble:
        text += f"Validation ROC AUC peaked on average at epoch {m['best_epoch']:.0f} of {m['epochs_run']:.0f}; each seed's best epoch is the one kept."
    else:
        text += f"Validation ROC AUC peaked at epoch {int(m['best_epoch'])} of {int(m['epochs_run'])}; those parameters are the ones evaluated and saved."
    if "cv_folds" in m:
        g = "ensemble_" if "cv_ensemble_roc_auc_mean" in m else ""
        cv_auc, cv_base_auc = m[f"cv_{g}roc_auc_mean"], m["cv_baseline_roc_auc_mean"]
        cv_hits, cv_base_hits = m[f"cv_{g}top{tag}_hits_mean"], m[f"cv_baseline_top{tag}_hits_mean"]
        text += (
            f" Across {int(m['cv_folds'])} cross-validation folds of the development customers, {short} "
            f"{'beats' if cv_auc > cv_base_auc and cv_hits > cv_base_hits else 'does not beat'} the baseline on the fold means "
            f"({_versus(cv_auc > cv_base_auc, cv_hits > cv_base_hits, tag)}): ROC AUC "
            f"{cv_auc:.3f} ± {m[f'cv_{g}roc_auc_std']:.3f} against {cv_base_auc:.3f} ± {m['cv_baseline_roc_auc_std']:.3f}, "
            f"buyers in the top {tag}% of a held-out fold {cv_hits:.1f} ± {m[f'cv_{g}top{tag}_hits_std']:.1f} against "
            f"{cv_base_hits:.1f} ± {m[f'cv_baseline_top{tag}_hits_std']:.1f} (mean ± standard deviation over folds): "
            "a difference smaller than that spread is weak evidence on its own."
        )
    return text


implementation = ModelImplementation(build_tasks=build_tasks, evaluate=evaluate, reading=reading, evaluate_seeds=evaluate_seeds)
