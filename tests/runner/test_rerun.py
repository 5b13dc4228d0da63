"""Re-running a recorded run gives identical metrics (slow). (`mktlab-diff`: tests/runner/test_diff.py.)"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

TINY = {
    "mf": ["model=mf", "debug=tiny", "data.subsample=3000", "model.eval.recommend_users=3"],
    "mlp": ["model=mlp", "data.subsample=1500", "trainer.epochs=2", "model.hidden=[8]", "trainer.progress=false", "trainer.num_seeds=1"],
    "lstm": ["model=lstm", "trainer.epochs=1", "data.subsample=2000", "data.max_len=8", "model.embed_dim=8", "model.hidden=8",
             "model.dense=8", "trainer.batch_size=256", "trainer.progress=false"],
}


def only_run(store, experiment: str, **tag_filter):
    runs = [r for r in store.runs(experiment) if all(r.data.tags.get(k) == v for k, v in tag_filter.items())]
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


@pytest.mark.parametrize("model", sorted(TINY))
def test_rerun_reproduces_the_metrics(model: str, store, mktlab_cli, rerun_reproduces) -> None:
    """The GAN's rerun is checked on the run of tests/models/gan/test_notebook.py."""
    done = mktlab_cli([*TINY[model], *store.overrides])
    assert done.returncode == 0, done.stderr[-3000:]
    rerun_reproduces(only_run(store, model))
