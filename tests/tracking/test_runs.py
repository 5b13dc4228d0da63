"""Opening runs: names a person tells apart, experiments of the model-training kind."""

from __future__ import annotations

from datetime import datetime

from helpers import Store

from mktlab.config import to_container
from mktlab.models import registry
from mktlab.tracking import get_or_create_experiment, run_name
from mktlab.tracking.store import EXPERIMENT_KIND, MODEL_TRAINING

AT = datetime(2026, 1, 5, 14, 5, 31)


def config(*overrides: str) -> dict:
    return to_container(registry.compose(list(overrides)))


def test_run_names_tell_runs_apart() -> None:
    assert run_name(config(), [], now=AT) == "mf 14:05:31"  # the default job: no random MLflow name
    overrides = ["model=mf", "optim.lr=0.003", "trainer.epochs=20", "tracking.uri=sqlite:////x.db", "trainer.progress=false",
                 "hydra.run.dir=/tmp/run"]
    assert run_name(config("model=mf"), overrides, now=AT) == "mf optim.lr=0.003,trainer.epochs=20 14:05:31"
    assert run_name(config("model=mlp"), ["model=mlp"], now=AT) == "mlp 14:05:31"
    # the same overrides later: another name (three runs of a notebook opened by hand no longer share one)
    assert run_name(config(), ["debug=tiny"], now=AT) != run_name(config(), ["debug=tiny"], now=AT.replace(second=40))
    long = [f"+tags.k{i}=value{i}" for i in range(20)]
    assert len(run_name(config(), long, now=AT)) <= len("mf ") + 80 + len(" 14:05:31")


def test_a_notebook_of_ones_own_is_named_after_its_notebook(tmp_path) -> None:
    notebook = tmp_path / "analysis.ipynb"
    assert run_name({**config(), "notebook": str(notebook)}, [f"notebook={notebook}", "params.alpha=0.5"], now=AT) == "analysis params.alpha=0.5 14:05:31"


def test_experiments_are_of_the_model_training_kind(tmp_path) -> None:
    client = Store(tmp_path).client
    created = get_or_create_experiment(client, "mf", str(tmp_path / "artifacts"))
    assert client.get_experiment(created).tags[EXPERIMENT_KIND] == MODEL_TRAINING == "custom_model_development"
    older = client.create_experiment("from-an-older-mktlab")  # gets the kind on its next run
    assert get_or_create_experiment(client, "from-an-older-mktlab", None) == older
    assert client.get_experiment(older).tags[EXPERIMENT_KIND] == MODEL_TRAINING
    genai = client.create_experiment("agents", tags={EXPERIMENT_KIND: "genai_development"})  # a kind chosen on purpose stays
    get_or_create_experiment(client, "agents", None)
    assert client.get_experiment(genai).tags[EXPERIMENT_KIND] == "genai_development"
