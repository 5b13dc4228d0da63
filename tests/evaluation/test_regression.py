"""Rating errors against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error

from mktlab.evaluation.regression import mae, rmse


def test_rmse_mae_equal_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y, p = rng.uniform(1, 5, 100), rng.uniform(1, 5, 100)
    assert rmse(y, p) == pytest.approx(np.sqrt(mean_squared_error(y, p)))
    assert mae(y, p) == pytest.approx(mean_absolute_error(y, p))
