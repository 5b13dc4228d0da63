"""LSTM click predictor evaluation: test metrics against two baselines, figures, tables, reading."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mktlab.data.clicklog import ClickLogData, ClickSplit, keep_last
from mktlab.evaluation import plots
from mktlab.evaluation.classification import calibration_table
from mktlab.evaluation.clicks import auc_by_bucket, click_report, logistic_baseline, popularity_scores
from mktlab.evaluation.report import Report
from mktlab.models.contract import ModelImplementation
from mktlab.models.lstm.training import build_tasks, module_kwargs, predict
from mktlab.train.loop import FitResult

MODEL = "LSTM"
POPULARITY = "item CTR"
LOGREG = "logistic regression"
BASELINE_KEYS = {POPULARITY: "popularity", LOGREG: "logreg"}
BASELINE_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "gauc", "mean_predicted")


# --------------------------------------------------------------------------- the sequences


def sequence_overview(data: ClickLogData) -> tuple[pd.DataFrame, Any]:
    """Per split: impressions, users, CTR, history lengths, unseen target items; and a figure of
    the users' sequence lengths and the training click rate by history length."""
    rows = []
    for name in ("train", "val", "test"):
        part: ClickSplit = getattr(data, name)
        n = max(len(part), 1)
        rows.append({
            "split": name,
            "impressions": len(part),
            "users": int(len(np.unique(part.users))),
            "ctr": round(part.ctr, 4),
            "mean_history": round(float(np.mean(part.lengths)), 2) if len(part) else float("nan"),
            "full_history_share": round(float(np.sum(part.lengths == data.max_len)) / n, 4),
            "oov_target_share": round(float(np.sum(part.items == data.oov_id)) / n, 4),
        })
    lengths, clicks = data.train.lengths, data.train.clicks
    by_length = pd.DataFrame({"length": lengths, "clicked": clicks}).groupby("length")["clicked"].agg(["mean", "size"])
    per_user = np.unique(np.concatenate([data.train.users, data.val.users, data.test.users]), return_counts=True)[1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    left.hist(per_user, bins=np.geomspace(max(per_user.min(), 1), per_user.max() + 1, 30), color="#4C72B0")
    left.set_xscale("log")
    left.axvline(data.max_len, color="black", ls="--", lw=1, label=f"max_len ({data.max_len}): histories are cut here")
    left.set_xlabel("impressions per user (the whole sequence)")
    left.set_ylabel("users")
    left.set_title(f"Sequence lengths ({np.mean(data.train.lengths == data.max_len):.0%} of training histories are full)")
    left.legend(fontsize=8)
    right.plot(by_length.index, by_length["mean"], marker="o", ms=4)
    right.axhline(data.train.ctr, color="grey", ls="--", lw=1, label=f"overall ({data.train.ctr:.3f})")
    right.set_xlabel("history length")
    right.set_ylabel("click rate")
    right.set_title("Click rate by history length (training)")
    right.legend(fontsize=8)
    fig.tight_layout()
    return pd.DataFrame(rows), fig


def example_history(data: ClickLogData, *, split: str = "test", row: int = 0) -> pd.DataFrame:
    """One impression as the model sees it: the history (oldest first) then the target item."""
    part: ClickSplit = getattr(data, split)
    length = int(part.lengths[row])
    indices = list(part.history[row, :length]) + [part.items[row]]
    known = np.r_[data.vocabulary, -1]
    records = []
    for position, index in enumerate(indices):
        item_id = int(known[index - 1]) if 1 <= index <= data.num_items else None
        is_target = position == length
        records.append({
            "position": "target" if is_target else position - length,
            "item_id": item_id if item_id is not None else "(out of vocabulary)",
            "title": data.titles.get(item_id, "") if item_id is not None else "",
            "clicked": int(part.clicks[row]) if is_target else int(part.history_clicks[row, position]),
        })
    return pd.DataFrame(records)


# --------------------------------------------------------------------------- test evaluation


def history_buckets(max_len: int) -> list[int]:
    """Lower bounds of the history-length buckets of the plots (every length up to 3, then coarser)."""
    return sorted({b for b in (0, 1, 2, 3, 5, 10, 15, 20, 30, 50, 100, 200) if b < max_len} | {max_len})


def evaluate(cfg: Any, result: FitResult, data: ClickLogData) -> Report:
    """Test metrics of the LSTM and both baselines, figures, tables and the model."""
    model = result.model
    test, train = data.test, data.train
    strength = cfg.model.eval.smoothing
    lstm_scores = predict(model, test.arrays(), batch_size=cfg.trainer.eval_batch_size)
    logreg, _ = logistic_baseline(train.users, train.item_ids, train.clicks, strength=strength, seed=cfg.seed)
    scores = {
        MODEL: lstm_scores,
        POPULARITY: popularity_scores(train.item_ids, train.clicks, test.item_ids, strength=strength),
        LOGREG: logreg(test.users, test.item_ids),
    }
    metrics = click_report(test.clicks, lstm_scores, test.users, prefix="test_")
    for mode, alternate in data.alternate_test.items():  # the same impressions with the other kind of history
        other = click_report(alternate.clicks, predict(model, alternate.arrays(), batch_size=cfg.trainer.eval_batch_size), alternate.users)
        metrics.update({f"test_{mode}_{k}": other[k] for k in ("roc_auc", "gauc", "log_loss") if k in other})
    for label, key in BASELINE_KEYS.items():  # the split's CTR and GAUC users are the LSTM's: not repeated
        baseline = click_report(test.clicks, scores[label], test.users)
        metrics.update({f"baseline_test_{key}_{k}": baseline[k] for k in BASELINE_METRICS})

    # Does more history help? The same test impressions scored with only the last k items, and AUC by actual length.
    seen_rows = []
    for k in history_buckets(data.max_len):
        truncated = predict(model, keep_last(test.arrays(), k), batch_size=cfg.trainer.eval_batch_size)
        cut = click_report(test.clicks, truncated, test.users)
        seen_rows.append({"items_seen": k, "roc_auc": cut["roc_auc"], "gauc": cut["gauc"], "log_loss": cut["log_loss"]})
    by_seen = pd.DataFrame(seen_rows)
    by_length = auc_by_bucket(test.clicks, scores, test.lengths, edges=history_buckets(data.max_len))
    metrics["test_roc_auc_no_history"] = float(by_seen["roc_auc"].iloc[0])
    metrics.update({"best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "fit_seconds": result.seconds})

    curves = {label: (test.clicks, s) for label, s in scores.items()}
    predicted, observed = calibration_table(test.clicks, lstm_scores)
    figures = {
        "learning_curve": plots.learning_curves(result.history, best_epoch=result.best_epoch, title="LSTM click predictor"),
        "roc_curve": plots.roc_curves(curves, title="Test ROC curve"),
        "calibration": plots.calibration_curves(curves, title="Test calibration"),
        "auc_by_history_length": history_figure(by_seen, by_length, metrics),
    }
    tables = {
        "auc_by_history_length.csv": by_length,
        "auc_by_items_seen.csv": by_seen,
        "calibration_lstm.csv": pd.DataFrame({"mean_predicted": predicted, "observed_ctr": observed}),
    }
    return Report(metrics=metrics, figures=figures, tables=tables, model=(model, module_kwargs(cfg, data)))


def history_figure(by_seen: pd.DataFrame, by_length: pd.DataFrame, metrics: dict[str, float]):
    """Left: test AUC when the LSTM sees only the last k items; right: AUC by the impression's actual history length."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.9))
    plots.metric_by_bucket(
        by_seen.rename(columns={"roc_auc": f"{MODEL} ROC AUC", "gauc": f"{MODEL} GAUC"}), x="items_seen",
        series=[f"{MODEL} ROC AUC", f"{MODEL} GAUC"], xlabel="history items the LSTM sees (the last k)", ylabel="test AUC",
        title="Does more history help?", ax=left,
        flat={f"{label} AUC (no history)": metrics[f"baseline_test_{key}_roc_auc"] for label, key in BASELINE_KEYS.items()},
    )
    plots.metric_by_bucket(
        by_length, x="bucket", series=[MODEL, POPULARITY, LOGREG], count="impressions", xlabel="history length of the impression",
        ylabel="test ROC AUC", title="AUC by history length", ax=right,
    )
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- reading


def reading(cfg: Any, report: Report, data: ClickLogData) -> str:
    """A short plain-language reading of the result (Markdown), built from the numbers."""
    m = report.metrics
    auc, gauc = m["test_roc_auc"], m["test_gauc"]
    best_label, best_key = max(BASELINE_KEYS.items(), key=lambda kv: m[f"baseline_test_{kv[1]}_roc_auc"])
    base_auc, base_gauc = m[f"baseline_test_{best_key}_roc_auc"], m[f"baseline_test_{best_key}_gauc"]
    other_label, other_key = next((label, key) for label, key in BASELINE_KEYS.items() if key != best_key)
    held_out = "each user's latest" if data.split == "per_user" else "after the time cut-off"
    text = (
        f"On {len(data.test):,} held-out impressions ({held_out}, {data.held_out_history} histories), the LSTM reaches a test "
        f"ROC AUC of **{auc:.3f}** and a GAUC of **{gauc:.3f}** over the {m['test_gauc_users']:.0f} users with both clicks "
        f"and non-clicks (log loss {m['test_log_loss']:.3f}). The stronger baseline, {best_label}, has AUC {base_auc:.3f} and "
        f"GAUC {base_gauc:.3f} ({other_label}: AUC {m[f'baseline_test_{other_key}_roc_auc']:.3f}, GAUC "
        f"{m[f'baseline_test_{other_key}_gauc']:.3f}): the LSTM is {_versus(auc - base_auc)} by AUC and {_versus(gauc - base_gauc)} by GAUC. "
    )
    if "test_frozen_gauc" in m:
        text += (
            f"Scored from frozen histories instead (every test impression of a user from the history before the test window, "
            f"the setting GAUC assumes), the LSTM has AUC {m['test_frozen_roc_auc']:.3f} and GAUC {m['test_frozen_gauc']:.3f}. "
        )
        if m["test_frozen_gauc"] > gauc + 0.005:
            text += (
                "Rolling histories carry the window's own earlier clicks, which says much about the user (AUC) but, with a fixed "
                "number of clicks in a short window, an early click leaves fewer for later, so it misleads the ranking within a user (GAUC). "
            )
    elif "test_rolling_gauc" in m:
        text += (
            f"With rolling histories (each test impression also sees the user's earlier test impressions and their clicks) it has "
            f"AUC {m['test_rolling_roc_auc']:.3f} and GAUC {m['test_rolling_gauc']:.3f}. "
        )
    seen = report.tables["auc_by_items_seen.csv"]
    none, full = seen.iloc[0], seen.iloc[-1]
    text += (
        f"Does history help? Scored with no history the same impressions give AUC {none['roc_auc']:.3f} (GAUC {none['gauc']:.3f}); "
        f"with the last {full['items_seen']:.0f} items, {full['roc_auc']:.3f} (GAUC {full['gauc']:.3f}). "
    )
    gap = m["test_mean_predicted"] - m["test_observed_ctr"]
    text += (
        f"Calibration in the large: a mean predicted click probability of {m['test_mean_predicted']:.3f} against an observed "
        f"test CTR of {m['test_observed_ctr']:.3f} (training CTR {data.train.ctr:.3f})"
        + (", well calibrated on average. " if abs(gap) < 0.01 else f", {'over' if gap > 0 else 'under'}-predicting by {abs(gap):.3f}. ")
        + f"Validation {cfg.model.monitor.removeprefix('val_')} was best at epoch {m['best_epoch']:.0f} of {m['epochs_run']:.0f}; "
        "those parameters are the ones saved."
    )
    return text


def _versus(difference: float) -> str:
    if abs(difference) < 0.005:
        return f"on par ({difference:+.3f})"
    return f"{'ahead' if difference > 0 else 'behind'} ({difference:+.3f})"


implementation = ModelImplementation(build_tasks=build_tasks, evaluate=evaluate, reading=reading)
