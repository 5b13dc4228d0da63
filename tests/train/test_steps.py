"""The epoch's data order: a true permutation, reproducible per key, uniform over positions."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy.stats import chisquare

from mktlab.train.steps import shuffled_order


@pytest.mark.parametrize("n", [1, 2, 3, 10, 37, 1000, 4096, 4097, 80004])
def test_every_row_appears_exactly_once(n: int) -> None:
    order = np.asarray(shuffled_order(jax.random.key(n), n))
    assert order.dtype == np.int32
    np.testing.assert_array_equal(np.sort(order), np.arange(n))


def test_same_key_same_order_other_key_other_order() -> None:
    first = np.asarray(shuffled_order(jax.random.key(0), 500))
    np.testing.assert_array_equal(first, np.asarray(shuffled_order(jax.random.key(0), 500)))
    assert not np.array_equal(first, np.asarray(shuffled_order(jax.random.key(1), 500)))
    assert not np.array_equal(first, np.arange(500))


def test_two_rows_come_in_both_orders() -> None:
    firsts = np.asarray(jax.vmap(lambda key: shuffled_order(key, 2))(jax.random.split(jax.random.key(0), 400)))[:, 0]
    assert 150 < np.sum(firsts == 0) < 250


@pytest.mark.parametrize("n", [10, 37])
def test_positions_and_pairs_are_uniform_over_keys(n: int) -> None:
    """Over many keys every row lands in every position, and every ordered pair leads the
    order, as often as a uniform shuffle would make them (chi-square tests)."""
    draws = 8000
    orders = np.asarray(jax.jit(jax.vmap(lambda key: shuffled_order(key, n)))(jax.random.split(jax.random.key(7), draws)))
    positions = np.zeros((n, n))
    np.add.at(positions, (np.tile(np.arange(n), draws), orders.ravel()), 1)
    assert chisquare(positions.ravel()).pvalue > 1e-3
    leading = np.zeros((n, n))
    np.add.at(leading, (orders[:, 0], orders[:, 1]), 1)
    assert chisquare(leading[~np.eye(n, dtype=bool)]).pvalue > 1e-3
    neighbours = np.abs(np.diff(orders, axis=1)) == 1  # rows next to each other stay together no more than by chance
    assert neighbours.mean() == pytest.approx(2 / n, rel=0.1)
