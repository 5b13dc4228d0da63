"""The traced (in-JAX) binary metrics the MLP validates with, against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm


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
