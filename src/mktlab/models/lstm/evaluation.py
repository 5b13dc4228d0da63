"""LSTM click predictor evaluation: test metrics against two baselines, figures, tables, reading."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mktlab.data.clicklog import ClickLogData, ClickSplit
from mktlab.evaluation import plots
from mktlab.evaluation.classification import calibration_table
from mktlab.evaluation.clicks import auc_by_bucket, click_report, gauc, logistic_baseline, popularity_scores
from mktlab.evaluation.report import Report
from mktlab.models.contract import ModelImplementation
from mktlab.models.lstm.training import build_tasks, item_features, keep_last_items, model_inputs, module_kwargs, predict
from mktlab.train.loop import FitResult, SeedResults

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
    fig.set_layout_engine("tight")
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
    features = item_features(cfg, data)
    batch = cfg.trainer.eval_batch_size
    test_inputs = model_inputs(cfg, data, test, features)
    lstm_scores = predict(model, test_inputs, batch_size=batch)
    logreg, _ = logistic_baseline(train.users, train.item_ids, train.clicks, strength=strength, seed=cfg.seed)
    scores = {
        MODEL: lstm_scores,
        POPULARITY: popularity_scores(train.item_ids, train.clicks, test.item_ids, strength=strength),
        LOGREG: logreg(test.users, test.item_ids),
    }
    metrics = click_report(test.clicks, lstm_scores, test.users, prefix="test_")
    for mode, alternate in data.alternate_test.items():  # the same impressions with the other kind of history
        other = click_report(alternate.clicks, predict(model, model_inputs(cfg, data, alternate, features), batch_size=batch), alternate.users)
        metrics.update({f"test_{mode}_{k}": other[k] for k in ("roc_auc", "gauc", "gauc_users", "log_loss") if k in other})
    ranking_gauc(metrics, data, "test_")
    for label, key in BASELINE_KEYS.items():  # the split's CTR and GAUC users are the LSTM's: not repeated
        baseline = click_report(test.clicks, scores[label], test.users)
        metrics.update({f"baseline_test_{key}_{k}": baseline[k] for k in BASELINE_METRICS})

    # Does more history help? The same test impressions scored with only the last k items, and AUC by actual length.
    # (GAUC: on the ranking histories, `data.gauc_history`; the longer history, if the model reads one, is cut alike.)
    ranking = data.ranking_split("test")
    ranking_inputs = test_inputs if ranking is test else model_inputs(cfg, data, ranking, features)
    seen_rows = []
    for k in history_buckets(data.max_len):
        truncated = predict(model, keep_last_items(cfg, data, test_inputs, test.item_ids, k), batch_size=batch)
        cut = click_report(test.clicks, truncated, test.users)
        ranked = gauc(ranking.clicks, predict(model, keep_last_items(cfg, data, ranking_inputs, ranking.item_ids, k), batch_size=batch),
                      ranking.users)[0]
        seen_rows.append({"items_seen": k, "roc_auc": cut["roc_auc"], "gauc": ranked, "log_loss": cut["log_loss"]})
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


def ranking_gauc(metrics: dict[str, float], data: ClickLogData, prefix: str) -> None:
    """`<prefix>gauc` (and its users) become the GAUC on `data.gauc_history`; the scored histories' GAUC stays as
    `<prefix><held_out_history>_gauc` (in place; nothing changes when the two are the same)."""
    if data.gauc_history == data.held_out_history or f"{prefix}{data.gauc_history}_gauc" not in metrics:
        return
    metrics[f"{prefix}{data.held_out_history}_gauc"] = metrics[f"{prefix}gauc"]
    metrics[f"{prefix}{data.held_out_history}_gauc_users"] = metrics[f"{prefix}gauc_users"]
    metrics[f"{prefix}gauc"] = metrics[f"{prefix}{data.gauc_history}_gauc"]
    metrics[f"{prefix}gauc_users"] = metrics[f"{prefix}{data.gauc_history}_gauc_users"]


def member_scores(cfg: Any, results: SeedResults, data: ClickLogData, split) -> np.ndarray:
    """(seeds, n) click probabilities of every seed's model on a split."""
    features = item_features(cfg, data)
    inputs = model_inputs(cfg, data, split, features)
    return np.stack([predict(r.model, inputs, batch_size=cfg.trainer.eval_batch_size) for r in results.results])


def evaluate_seeds(cfg: Any, results: SeedResults, data: ClickLogData) -> Report:
    """The run's seeds as one model: the mean of their click probabilities.

    Metrics `test_ensemble_*` (ROC AUC, PR AUC, log loss, GAUC on `data.gauc_history` and, when it differs,
    on the scored histories) and `val_ensemble_roc_auc` / `val_ensemble_gauc`; a table of every seed's and the
    ensemble's test metrics.
    """
    metrics: dict[str, float] = {"ensemble_seeds": len(results)}
    rows = []
    for name in ("val", "test"):
        split = getattr(data, name)
        if len(split) == 0:
            continue
        members = member_scores(cfg, results, data, split)
        ranking = data.ranking_split(name)
        ranked = members if ranking is split else member_scores(cfg, results, data, ranking)
        for label, scores, ranked_scores in [*((f"seed {s}", m, r) for s, m, r in zip(results.seeds, members, ranked)),
                                             ("ensemble", members.mean(axis=0), ranked.mean(axis=0))]:
            report = click_report(split.clicks, scores, split.users)
            row = {"split": name, "model": label, "roc_auc": report["roc_auc"], "log_loss": report["log_loss"],
                   "gauc": click_report(ranking.clicks, ranked_scores, ranking.users)["gauc"]}
            if ranking is not split:
                row[f"{data.held_out_history}_gauc"] = report["gauc"]
            rows.append(row)
        ensemble = rows[-1]
        keys = ("roc_auc", "gauc", f"{data.held_out_history}_gauc") if name == "val" else tuple(k for k in ensemble if k not in ("split", "model"))
        metrics.update({f"{name}_ensemble_{k}": ensemble[k] for k in keys if k in ensemble})
    return Report(metrics=metrics, tables={"ensemble_by_seed.csv": pd.DataFrame(rows)})


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
    fig.set_layout_engine("tight")
    return fig


# --------------------------------------------------------------------------- reading


def model_numbers(m: dict[str, float]) -> tuple[str, float, float]:
    """(what the model is, its test ROC AUC, its test GAUC): the seeds' ensemble when the run trained several."""
    if "test_ensemble_roc_auc" in m:
        return f"the ensemble of {m['ensemble_seeds']:.0f} seeds (their mean click probability)", m["test_ensemble_roc_auc"], m["test_ensemble_gauc"]
    return "the LSTM", m["test_roc_auc"], m["test_gauc"]


def verdict(m: dict[str, float], *, margin: float = 0.005, clear: float = 0.02) -> str:
    """Plain words: does the model beat both baselines on ROC AUC and on GAUC (by more than `margin`), and is its
    GAUC lead a clear one (`clear`: about twice the standard error of a GAUC over a few hundred users)?"""
    _, auc, group_auc = model_numbers(m)
    shortfalls = []
    for label, key in BASELINE_KEYS.items():
        for metric, mine in (("ROC AUC", auc), ("GAUC", group_auc)):
            difference = mine - m[f"baseline_test_{key}_{'roc_auc' if metric == 'ROC AUC' else 'gauc'}"]
            if difference <= margin:
                shortfalls.append(f"{metric} against {label} ({_versus(difference)})")
    if not shortfalls:
        lead = group_auc - max(m[f"baseline_test_{key}_gauc"] for key in BASELINE_KEYS.values())
        if lead < clear:
            return (f"**The LSTM beats both baselines on ROC AUC and on GAUC**, but its GAUC lead ({lead:+.3f}) is small: under "
                    f"{clear:.2f}, within the noise of a few hundred users' rankings.")
        return "**The LSTM beats both baselines on ROC AUC and on GAUC.**"
    return f"**The LSTM does not beat its baselines on every count:** {'; '.join(shortfalls)}."


def reading(cfg: Any, report: Report, data: ClickLogData) -> str:
    """A short plain-language reading of the result (Markdown), built from the numbers."""
    m = report.metrics
    what, auc, gauc = model_numbers(m)
    best_label, best_key = max(BASELINE_KEYS.items(), key=lambda kv: m[f"baseline_test_{kv[1]}_roc_auc"])
    base_auc, base_gauc = m[f"baseline_test_{best_key}_roc_auc"], m[f"baseline_test_{best_key}_gauc"]
    other_label, other_key = next((label, key) for label, key in BASELINE_KEYS.items() if key != best_key)
    held_out = "each user's latest" if data.split == "per_user" else "after the time cut-off"
    ranked = ("scored from the history before the test window (frozen), as when ranking a user's candidates at one moment"
              if data.gauc_history == "frozen" else "as scored, with rolling histories")
    text = (
        f"On {len(data.test):,} held-out impressions ({held_out}, {data.held_out_history} histories), {what} reaches a test "
        f"ROC AUC of **{auc:.3f}** and a GAUC of **{gauc:.3f}** over the {m['test_gauc_users']:.0f} users with both clicks "
        f"and non-clicks (GAUC ranks each user's test impressions {ranked}). "
    )
    if "test_ensemble_roc_auc" in m and "test_roc_auc_std" in m:
        text += (f"Its seeds one by one: AUC {m['test_roc_auc']:.3f} ± {m['test_roc_auc_std']:.3f}, GAUC {m['test_gauc']:.3f} ± "
                 f"{m['test_gauc_std']:.3f} (mean ± sd). ")
    text += (
        f"The stronger baseline, {best_label}, has AUC {base_auc:.3f} and GAUC {base_gauc:.3f} ({other_label}: AUC "
        f"{m[f'baseline_test_{other_key}_roc_auc']:.3f}, GAUC {m[f'baseline_test_{other_key}_gauc']:.3f}): the LSTM is "
        f"{_versus(auc - base_auc)} by AUC and {_versus(gauc - base_gauc)} by GAUC. {verdict(m)} "
    )
    rolling = "test_ensemble_rolling_gauc" if "test_ensemble_rolling_gauc" in m else "test_rolling_gauc"
    if data.gauc_history == "frozen" and rolling in m:
        text += (
            f"With rolling histories its GAUC is {m[rolling]:.3f}: within a user's short test window, the later impression of any "
            "pair with opposite labels holds the earlier one's label in its history, always the opposite of its own, so reading "
            "recent clicks (which lifts AUC across users) pushes the within-user ranking the wrong way, by construction. "
        )
    elif "test_frozen_gauc" in m:
        text += f"Scored from frozen histories instead, its GAUC is {m['test_frozen_gauc']:.3f}. "
    seen = report.tables["auc_by_items_seen.csv"]
    none, full = seen.iloc[0], seen.iloc[-1]
    text += (
        f"Does history help? Scored with no history the same impressions give AUC {none['roc_auc']:.3f}; "
        f"with the last {full['items_seen']:.0f} items, {full['roc_auc']:.3f}. "
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


implementation = ModelImplementation(build_tasks=build_tasks, evaluate=evaluate, reading=reading, evaluate_seeds=evaluate_seeds)
