"""The exponential moving average of parameters (`mktlab.train.ema`)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from mktlab.train.ema import ema_decay, ema_init, ema_update


def test_the_decay_ramps_up_to_its_value() -> None:
    assert float(ema_decay(0.999, 0)) == pytest.approx(0.1)
    assert float(ema_decay(0.7, 3)) == pytest.approx(4 / 13)
    assert float(ema_decay(0.999, 1520)) == pytest.approx(1521 / 1530)  # the default GAN run's last step
    assert float(ema_decay(0.7, 10_000)) == pytest.approx(0.7)


def test_update_mixes_floating_leaves_and_takes_the_others() -> None:
    average = {"w": jnp.ones(3), "count": jnp.array(1, jnp.int32)}
    new = {"w": jnp.zeros(3), "count": jnp.array(7, jnp.int32)}
    mixed = ema_update(average, new, 0.75)
    np.testing.assert_allclose(mixed["w"], 0.75)
    assert int(mixed["count"]) == 7 and mixed["w"].dtype == jnp.float32


def test_init_copies() -> None:
    tree = {"w": jnp.arange(3.0)}
    copy = ema_init(tree)
    np.testing.assert_array_equal(copy["w"], tree["w"])
    assert copy["w"] is not tree["w"]
