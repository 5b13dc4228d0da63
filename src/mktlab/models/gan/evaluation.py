"""GAN evaluation: classifier FID / Inception score / class coverage of generated images
beside the same numbers for real held-out images, training curves, sample grids, the GIF.
"""

from __future__ import annotations

import json
from typing import Any

import jax
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mktlab.data.images import ImageData
from mktlab.evaluation.images import (
    cell_scale,
    class_shares,
    fid,
    frames_figure,
    gif_bytes,
    grid_figure,
    image_grid,
    image_metrics,
    label_metrics,
    png_bytes,
)
from mktlab.evaluation.report import Report
from mktlab.models.contract import ModelImplementation
from mktlab.models.gan.training import EVAL_LATENT_STREAM, GANFitResult, build_tasks, evaluation_count, generate
from mktlab.train.keys import run_keys

METRICS = ("fid", "inception_score", "class_coverage", "class_share_min", "class_share_max")
REFERENCE_SEED = 0  # which training images form the real-vs-real reference sample (fixed, like the split)
# The reading says the generator reaches the real-data reference when its test FID is at most this multiple of the
# real-vs-real FID (two real samples of the same size differ by about the reference itself).
REACHED_RATIO = 1.5


def training_curves(history: list[dict[str, float]], *, best_epoch: int, reference_fid: float | None = None,
                    title: str = "GAN training"):
    """Three panels: D and G losses, D accuracy on real and generated images, validation FID."""
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for key, label in (("train_d_loss", "discriminator"), ("train_g_loss", "generator")):
        axes[0].plot(epochs, [row[key] for row in history], label=label)
    axes[0].set_title("losses")
    for key, label in (("train_d_real_accuracy", "real images"), ("train_d_fake_accuracy", "generated images")):
        axes[1].plot(epochs, [row[key] for row in history], label=label)
    axes[1].axhline(0.5, color="grey", ls=":", lw=1)
    axes[1].set_ylim(-0.02, 1.02)
    axes[1].set_title("discriminator accuracy")
    scored = [row for row in history if "val_fid" in row]
    axes[2].plot([row["epoch"] for row in scored], [row["val_fid"] for row in scored], marker="o", ms=4, label="generated vs validation")
    if reference_fid is not None:
        axes[2].axhline(reference_fid, color="green", ls="--", lw=1, label=f"real vs validation ({reference_fid:.1f})")
    axes[2].set_yscale("log")
    axes[2].set_title("classifier FID (log scale)")
    for ax in axes:
        if best_epoch:
            ax.axvline(best_epoch, color="grey", ls="--", lw=1)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{title} (dashed: kept epoch {best_epoch})")
    fig.set_layout_engine("tight")
    return fig


def class_share_figure(shares: pd.DataFrame, *, title: str = "Classes the classifier sees"):
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.arange(len(shares))
    ax.bar(x - 0.2, shares["generated"], width=0.4, label="generated")
    ax.bar(x + 0.2, shares["real"], width=0.4, label="real (held out)")
    ax.set_xticks(x, shares["class"], rotation=30 if max(map(len, shares["class"])) > 2 else 0, fontsize=8)
    ax.set_ylabel("share of images")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.set_layout_engine("tight")
    return fig


def evaluate(cfg: Any, result: GANFitResult, data: ImageData) -> Report:
    """Score `model.eval.samples` images of the kept generator against the held-out test images.

    Metrics: `test_fid` (generated vs test), `test_inception_score`, `test_class_coverage`,
    `test_class_share_min` / `_max` (the rarest and the commonest class's share of the
    generated images), and `reference_*`: the same for as many real training images (FID
    against the test images; Inception score, coverage and class shares of the test images
    themselves), the values a perfect generator would reach. The generator scored (and
    saved) is the kept epoch's weight average when `model.g_ema_decay` is set.

    With several seeds trained at once (`trainer.num_seeds`), each seed's report goes to
    its child run; the returned report holds the mean and spread over seeds, and the first
    seed's figures, files (samples, GIF) and generator, which the parent run saves.
    """
    generator = result.model
    scorer = result.scorer
    n = evaluation_count(cfg, data)
    min_share = cfg.model.eval.coverage_min_share
    key = jax.random.fold_in(run_keys(cfg.seed)["model_key"], EVAL_LATENT_STREAM + 1)
    generated = generate(generator, n, key=key, batch_size=cfg.trainer.eval_batch_size)
    gen_features, gen_probs = scorer(generated)
    test_features, test_probs = scorer(data.test.images)
    sample = np.sort(np.random.default_rng(REFERENCE_SEED).choice(len(data.train), size=n, replace=False))
    real_features, _ = scorer(data.train.images[sample])
    scores = image_metrics(gen_features, gen_probs, test_features, min_share=min_share)
    # real images: training sample vs test for the distance, the test images themselves otherwise
    reference = {"fid": fid(real_features, test_features), **label_metrics(test_probs, min_share=min_share)}
    metrics = {f"test_{k}": v for k, v in scores.items()}
    metrics.update({f"reference_{k}": v for k, v in reference.items()})
    metrics.update({f"reference_{k}": v for k, v in result.val_reference.items()})
    info = _classifier_info(result)
    metrics.update({
        "classifier_val_accuracy": float(info.get("val_accuracy", np.nan)),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "fit_seconds": result.seconds,
        "eval_samples": n,
    })

    names = list(data.class_names)
    shares = pd.DataFrame({"class": names, "generated": class_shares(gen_probs), "real": class_shares(test_probs)})
    comparison = pd.DataFrame({
        "metric": list(METRICS),
        "generated": [scores[m] for m in METRICS],
        "real_reference": [reference[m] for m in METRICS],
    })
    scale = cell_scale(data.image_size)
    final_grid = image_grid(np.asarray(generator_fixed_samples(result)), scale=scale)
    files = {f"samples/epoch_{epoch:03d}.png": png_bytes(image_grid(images, scale=scale)) for epoch, images in sorted(result.samples.items())}
    files["samples/final.png"] = png_bytes(final_grid)
    epochs = sorted(result.samples)
    files["samples/training.gif"] = gif_bytes([image_grid(result.samples[e], scale=scale) for e in epochs] + [final_grid],
                                              [f"epoch {e}" for e in epochs] + [f"kept: epoch {result.best_epoch}"])
    if result.classifier_dir is not None:
        for path in sorted(result.classifier_dir.iterdir()):
            files[f"classifier/{path.name}"] = path.read_bytes()

    figures = {
        "training_curves": training_curves(result.history, best_epoch=result.best_epoch,
                                           reference_fid=result.val_reference.get("val_fid")),
        "samples_over_time": frames_figure(result.samples),
        "final_samples": grid_figure(generator_fixed_samples(result), title=f"Fixed-latent samples, kept epoch {result.best_epoch}"),
        "class_shares": class_share_figure(shares),
    }
    return Report(metrics=metrics, figures=figures, tables={"metrics_vs_reference.csv": comparison, "class_shares.csv": shares},
                  model=(generator, result.generator_kwargs), files=files)


def generator_fixed_samples(result: GANFitResult) -> np.ndarray:
    """The fixed latent batch rendered by the kept generator (the run's final grid)."""
    best = result.samples.get(result.best_epoch)
    if best is not None:
        return best
    return result.samples[max(result.samples)]


def _classifier_info(result: GANFitResult) -> dict[str, Any]:
    if result.classifier_dir is None or not (result.classifier_dir / "info.json").is_file():
        return {}
    return json.loads((result.classifier_dir / "info.json").read_text())


def reading(cfg: Any, report: Report, data: ImageData) -> str:
    """A short plain-language reading of the result (Markdown), built from the numbers."""
    m, min_share = report.metrics, cfg.model.eval.coverage_min_share
    fid, ref_fid = m["test_fid"], m["reference_fid"]
    ratio = fid / ref_fid if ref_fid > 0 else float("inf")
    coverage, ref_coverage = int(m["test_class_coverage"]), int(m["reference_class_coverage"])
    if ratio <= REACHED_RATIO:
        verdict = (f"**The generator reaches the real-data reference**: its classifier FID, **{fid:.1f}**, is within "
                   f"{REACHED_RATIO:g}× the **{ref_fid:.1f}** of as many real training images against the same held-out images")
    else:
        verdict = (f"**The generator does not reach the real-data reference**: its classifier FID, **{fid:.1f}**, is "
                   f"{ratio:.1f}× the **{ref_fid:.1f}** of as many real training images against the same held-out images")
    if ratio < 2:
        quality = "as a set, the classifier can hardly tell them from real images"
    elif ratio < 10:
        quality = "the images are recognisably of the right kind, but as a set still distinguishable from real images"
    else:
        quality = "far from the real images as a set: train longer, or a larger generator, before using them"
    if coverage >= ref_coverage:
        spread = f"they spread over all {coverage} classes the real held-out images cover: no sign of mode collapse"
    elif coverage <= max(1, ref_coverage // 3):
        spread = f"they fall into only {coverage} of the {ref_coverage} classes the real images cover: the generator has collapsed onto a few modes"
    else:
        spread = f"they cover {coverage} of the {ref_coverage} classes the real images cover: some kinds of image are missing"
    spread += (f"; the rarest class gets {m['test_class_share_min']:.1%} of the generated images and the commonest "
               f"{m['test_class_share_max']:.1%} (real held-out images: {m['reference_class_share_min']:.1%} and "
               f"{m['reference_class_share_max']:.1%})")
    averaged = " (the moving average of the trained generator's weights)" if cfg.model.g_ema_decay is not None else ""
    seeds = int(m.get("num_seeds", 1))
    if seeds > 1:
        kept = (f"Each of the {seeds} seeds keeps the epoch with its lowest validation FID (on average epoch "
                f"{m['best_epoch']:.1f} of {m['epochs_run']:.1f}){averaged}; the figures are means over the seeds (test FID "
                f"± {m['test_fid_std']:.1f}), the pictures and the saved generator (`model/`) are the first seed's, and ")
    else:
        kept = (f"The generator kept{averaged} is that of epoch {int(m['best_epoch'])} of {int(m['epochs_run'])}, "
                "the epoch with the lowest validation FID; its parameters are saved with the run (`model/`), and ")
    return (
        f"{verdict}; {quality}. "
        f"The scores come from a classifier trained on the real {data.source} images (validation accuracy "
        f"{m['classifier_val_accuracy']:.1%}), over {int(m['eval_samples'])} generated images. "
        f"Their classifier Inception score is {m['test_inception_score']:.2f} against {m['reference_inception_score']:.2f} "
        f"for real held-out images (the ceiling is {data.num_classes}), and, counting a class when at least "
        f"{min_share:.0%} of the images are classified as it, {spread}. "
        f"{kept}`mktlab.models.gan.training.generate_from_run` draws new images from them."
    )


implementation = ModelImplementation(build_tasks=build_tasks, evaluate=evaluate, reading=reading)
