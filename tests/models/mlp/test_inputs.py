"""What the response MLP reads, and how: `model.features` selects the attributes, `model.levels` adds the
one-hot codes of numeric attributes; both matter on small problems built for them."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from sklearn.metrics import roc_auc_score

from helpers import composed, noisy_response_data
from mktlab import session
from mktlab.config import ConfigError
from mktlab.models.mlp.evaluation import ensemble_scores
from mktlab.models.mlp.module import ResponseMLP
from mktlab.models.mlp.training import input_columns, level_encoding, module_kwargs

# synthetic tables: the default attribute lists name Caravan attributes
TINY = ["model=mlp", "trainer.progress=false", "model.hidden=[8]", "trainer.batch_size=64", "model.features=null", "model.levels=null"]


def test_the_default_reads_25_caravan_attributes_and_three_levels() -> None:
    cfg = composed("model=mlp", "trainer.progress=false", "data.subsample=1500")
    data = session.load(cfg)
    numeric, categorical = input_columns(cfg, data)
    assert len(numeric) == 25 and categorical == []  # MOSTYPE and MOSHOOFD are left out
    assert {data.numeric_names[j] for j in numeric} == set(cfg.model.features)
    levels = level_encoding(cfg, data)
    assert [data.numeric_names[j] for j in levels["level_columns"]] == ["PWAPART", "PPERSAUT", "PBRAND"]  # in the data's order
    model = ResponseMLP(**module_kwargs(cfg, data), rngs=nnx.Rngs(0))
    x = model.inputs(jnp.asarray(data.test.numeric), jnp.asarray(data.test.categorical))
    assert x.shape == (len(data.test), 25 + sum(levels["level_count"]))
    assert cfg.trainer.num_seeds == 8 and cfg.trainer.epochs == 40


def test_attribute_lists_are_checked_when_typed() -> None:
    with pytest.raises(ConfigError, match=r"model.features=\[\]: expected a list of attribute names or patterns"):
        composed("model=mlp", "model.features=[]")
    with pytest.raises(ConfigError, match="model.levels"):
        composed("model=mlp", "model.levels=['!']")
    assert composed("model=mlp", "model.levels=[]").model.levels == []
    before = composed("model=mlp", "model.features=null", "model.levels=null", "trainer.num_seeds=1", "trainer.epochs=60")
    assert before.model.features is None and before.model.levels is None  # the network before issue 16


def test_features_select_the_attributes_the_network_reads(cfg_for) -> None:
    data = noisy_response_data(n=200)
    names = list(data.numeric_names)
    assert input_columns(cfg_for(TINY), data) == (None, None)
    assert input_columns(cfg_for([*TINY, "model.features=[x0,code]"]), data) == ([0], [0])
    assert input_columns(cfg_for([*TINY, "model.features=[x*,z1]"]), data) == ([0, 1, names.index("z1")], [])
    assert input_columns(cfg_for([*TINY, "model.features=['*','!z*','!code']"]), data) == ([0, 1], [])
    for bad, message in (("[nothing]", "'nothing' matches no attribute of noisy"), ("['x0','!x0']", "leaves no attribute")):
        with pytest.raises(ValueError, match=message):
            input_columns(cfg_for([*TINY, f"model.features={bad}"]), data)
    with pytest.raises(ValueError, match="model.features: 'PPERSAUT' matches no attribute"):  # the default names Caravan's
        module_kwargs(cfg_for(["model=mlp", "trainer.progress=false"]), data)
    cfg = cfg_for([*TINY, "model.features=[x0,code]"])
    model = ResponseMLP(**module_kwargs(cfg, data), rngs=nnx.Rngs(0))
    numeric, codes = jnp.asarray(data.test.numeric), jnp.asarray(data.test.categorical)
    changed = numeric.at[:, 1:].set(numeric[:, 1:] * -3.0 + 1.0)  # the columns it does not read
    np.testing.assert_array_equal(model(numeric, codes), model(changed, codes))
    assert model.inputs(numeric, codes).shape == (len(data.test), 1 + 3 + 1)  # x0, then code one-hot (levels 1..3 and 0)
    assert not np.allclose(model(numeric, codes), model(numeric.at[:, 0].set(numeric[:, 0] + 1.0), codes))


def test_without_column_arguments_the_module_is_the_network_before_them() -> None:
    """A module saved before `model.features` / `model.levels` (no such constructor arguments) loads as it was."""
    model = ResponseMLP(3, [4, 2], [5], rngs=nnx.Rngs(0))
    numeric, codes = jax.random.normal(jax.random.key(0), (6, 3)), jnp.array([[1, 0], [3, 1]] * 3)
    expected = jnp.concatenate([numeric, jax.nn.one_hot(codes[:, 0], 4), jax.nn.one_hot(codes[:, 1], 2)], axis=-1)
    np.testing.assert_array_equal(model.inputs(numeric, codes), expected)
    with pytest.raises(ValueError, match="numeric_columns"):
        ResponseMLP(3, [4], [5], numeric_columns=[3], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="one entry per level column"):
        ResponseMLP(3, [4], [5], level_columns=[0], rngs=nnx.Rngs(0))


def test_reading_only_the_informative_attributes_wins_on_a_small_noisy_problem(cfg_for) -> None:
    """With 40 columns of noise and 300 training customers, the network that reads x0, x1 and
    the code ranks the test customers better than the one that reads everything."""
    data = noisy_response_data(n=1200, seed=3, noise_columns=40)
    train = data.train
    data = dataclasses.replace(data, train=dataclasses.replace(train, numeric=train.numeric[:300], categorical=train.categorical[:300],
                                                               labels=train.labels[:300], ids=train.ids[:300]))
    common = [*TINY, "model.hidden=[16]", "trainer.epochs=30", "trainer.seeds=[0,1,2]", "model.dropout=0.0", "optim.lr=0.01"]
    aucs = {}
    for name, extra in (("all", []), ("informative", ["model.features=[x0,x1,code]"])):
        fitted = session.fit(cfg_for([*common, *extra]), data)
        aucs[name] = roc_auc_score(data.test.labels, ensemble_scores(fitted.results, data.test))
    assert aucs["informative"] > aucs["all"] + 0.02, aucs


def test_levels_enter_one_hot_encoded_by_their_codes(cfg_for) -> None:
    data = noisy_response_data(n=300)
    cfg = cfg_for([*TINY, "model.levels=[x1]", "model.features=[x0,x1]"])
    levels = level_encoding(cfg, data)
    assert levels["level_columns"] == [1] and levels["level_count"] == [10]
    assert levels["level_mean"][0] == pytest.approx(data.mean[1]) and levels["level_std"][0] == pytest.approx(data.std[1])
    model = ResponseMLP(**module_kwargs(cfg, data), rngs=nnx.Rngs(0))
    x = model.inputs(jnp.asarray(data.test.numeric), jnp.asarray(data.test.categorical))
    assert x.shape == (len(data.test), 2 + 10)
    codes = data.table.features["x1"].to_numpy()[data.test.ids - 1]
    np.testing.assert_array_equal(np.asarray(x[:, 2:]), np.eye(10)[codes])
    np.testing.assert_allclose(np.asarray(x[:, :2]), data.test.numeric[:, :2])
    # a code above the training split's largest counts as the largest
    above = jnp.asarray(data.test.numeric).at[:, 1].set((12 - data.mean[1]) / data.std[1])
    assert np.all(np.asarray(model.inputs(above, jnp.asarray(data.test.categorical)))[:, -1] == 1)
    assert level_encoding(cfg_for(TINY), data)["level_columns"] == []


def test_levels_let_a_small_network_learn_a_bump(cfg_for) -> None:
    """Buyers are likelier at x1 of 6 or 7 only: with x1's levels one-hot, a network of a single
    hidden unit finds that bump; on the standardized x1 alone it can only rank monotonically."""
    data = noisy_response_data(n=3000, seed=4, noise_columns=0)
    common = [*TINY, "model.hidden=[1]", "model.norm=none", "trainer.epochs=15", "trainer.seeds=[0,1]", "model.dropout=0.0",
              "optim.lr=0.01", "model.features=[x1]"]
    aucs = {}
    for name, extra in (("standardized", []), ("levels", ["model.levels=[x1]"])):
        fitted = session.fit(cfg_for([*common, *extra]), data)
        aucs[name] = roc_auc_score(data.test.labels, ensemble_scores(fitted.results, data.test))
    assert aucs["levels"] > aucs["standardized"] + 0.01, aucs
