"""`evaluate_run(run_dir)`: quality and balance metrics of a run, written to RUN/eval.json.

Quality compares N generated spectrograms with real ones from the run's data folder:

* Inception Score (the classifier score) of the classifier's probabilities;
* Frechet distance between Gaussians fitted to the classifier's 128-d embeddings;
* NDB/K: k-means bins of the real spectrograms, and how many bins the generated ones
  fill in significantly different proportions.

Real data is drawn as the GAN saw it: clips of the files (the training pipeline's
decoding and slicing, at seeded offsets). The files are split three ways, disjointly
(`classifier.three_way_split`): half of each class trains the classifier, and the rest
gives two real sets A and B of N clips each from different files, so nothing scored
trained the scorer and the real-vs-real reference is not a memorisation ceiling. Each
generated number is printed beside: IS(A); FD(A, B) against FD(G, B); NDB/K of B against
A's bins, as for G. Same sizes on both sides, so the finite-sample biases of FD and NDB
match and the reference is the score of a generator that samples the data itself.
Unlabelled data gets no classifier (NDB/K only), A and B still from disjoint halves.

Balance comes from the run's metrics.jsonl (`tfgan.eval.balance`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import warnings
from typing import Optional

import numpy as np

from tfgan.eval import balance, metrics
from tfgan.eval.classifier import ClassifierOptions, get_classifier, random_crops

DEFAULT_SAMPLES = 1000
DEFAULT_NDB_BINS = 20
DOMINANCE_THRESHOLD = 0.95
# The mirror image of D dominance: D takes (nearly) every fake for real. G wins outright,
# or D is broken (ResNet-9 starts out calling everything real, and a 10x lower lr or a
# strong R1 penalty can keep it there).
FOOLED_THRESHOLD = 0.05


@dataclasses.dataclass
class Reference:
    """Everything about the real data that does not depend on the run being scored.

    Built once (`build_reference`) and shared by every run on the same data and
    statistics, e.g. the arms of a benchmark.
    """

    data_root: str
    data_key: tuple
    stats_key: bytes
    samples: int
    seed: int
    real_a: np.ndarray  # [N, H, W, 1]
    real_b: np.ndarray
    classifier: object = None  # tfgan.eval.classifier.Classifier, or None
    classifier_reason: Optional[str] = None
    probs_a: Optional[np.ndarray] = None
    emb_a: Optional[np.ndarray] = None
    emb_b: Optional[np.ndarray] = None
    ndb_bins: int = DEFAULT_NDB_BINS
    real_scores: dict = dataclasses.field(default_factory=dict)
    files: dict = dataclasses.field(default_factory=dict)  # how many files went where
    labels_a: Optional[np.ndarray] = None  # [N] the real clips' classes (their folders)
    labels_b: Optional[np.ndarray] = None

    def matches(self, config, stats, samples: int, seed: int) -> bool:
        return (self.data_key == _data_key(config) and self.stats_key == _stats_key(stats)
                and self.samples == samples and self.seed == seed)


def _data_key(config) -> tuple:
    from tfgan.data import pipeline

    d = dataclasses.replace(config.data, data_dir=None)
    return (str(pipeline.builtin_or(config.data.data_dir)), json.dumps(dataclasses.asdict(d)))


def _stats_key(stats) -> bytes:
    return b"".join(np.asarray(v, np.float32).tobytes() for v in (stats.mean, stats.std))


def real_crops(scan, data_cfg, stats, n: int, seed: int) -> np.ndarray:
    """`n` random crops `[n, H, W, 1]` in [-1, 1] as the GAN saw them, fixed by `seed`."""
    return random_crops(scan, data_cfg, stats, n, seed)[0]


def generate(generator, n: int, latent_dim: int, seed: int, batch: int = 256) -> np.ndarray:
    """`n` samples `[n, H, W, 1]` of `generator` (inference mode) from seeded latents; a
    conditional generator is asked for every class in turn (equal shares)."""
    import tensorflow as tf

    from tfgan.models import balanced_labels, with_labels

    z = tf.random.stateless_normal([n, latent_dim], seed=[seed, 104729])
    labels = balanced_labels(n, getattr(generator, "num_classes", 0))
    parts = [with_labels(generator, z[i:i + batch], None if labels is None
                         else labels[i:i + batch], training=False).numpy()
             for i in range(0, n, batch)]
    return np.concatenate(parts).astype(np.float32)


def build_reference(config, stats, samples: int = DEFAULT_SAMPLES, seed: int = 0,
                    ndb_bins: int = DEFAULT_NDB_BINS,
                    classifier_options: Optional[ClassifierOptions] = None,
                    cache_dir=None, stream=sys.stdout) -> Reference:
    """Real sets A and B, the classifier and the real-data ceiling scores.

    Args:
      config: a run's config (its data folder and audio parameters are used).
      stats: the run's normalisation statistics.
      samples: N, the size of each real set (and of the generated set).
      seed: seeds the real crops (A: seed + 1, B: seed + 2).
      ndb_bins: k of NDB/K, capped at N / 10 so that bins are not nearly empty.
      classifier_options: classifier settings (see ClassifierOptions).
      cache_dir: classifier cache (default ~/.cache/tfgan/classifiers).
      stream: where progress lines go.

    Raises:
      tfgan.data.pipeline.DataError: the data folder is missing or unusable.
    """
    from tfgan.data import pipeline

    if samples < 10:
        raise ValueError(f"samples must be at least 10. Received: samples={samples}")
    from pathlib import Path

    from tfgan.data import shards
    from tfgan.eval.classifier import _subset, three_way_split

    root = pipeline.builtin_or(config.data.data_dir)
    if shards.is_prepared(root):
        # Scored against the files the shards were prepared from.
        root = Path(shards.Prepared.open(root).manifest["source"])
        if not root.is_dir():
            raise pipeline.DataError(f"The run trained on shards prepared from {root}, which "
                                     "is not reachable here; evaluation scores against "
                                     "those files.")
    scan = pipeline.scan_folder(root, config.data)
    split = three_way_split(scan, seed)
    if split is None:  # no classifier; A and B are still disjoint halves of the files
        order = np.random.default_rng(seed).permutation(len(scan.paths))
        half = max(1, len(order) // 2)
        train_idx, a_idx, b_idx = [], sorted(order[:half]), sorted(order[half:] if
                                                                 len(order) > 1 else order)
    else:
        train_idx, a_idx, b_idx = split
    real_a, labels_a = random_crops(_subset(scan, a_idx), config.data, stats, samples, seed + 1)
    real_b, labels_b = random_crops(_subset(scan, b_idx), config.data, stats, samples, seed + 2)
    ref = Reference(str(root), _data_key(config), _stats_key(stats), samples, seed,
                    real_a, real_b, ndb_bins=int(min(ndb_bins, max(2, samples // 10))),
                    files={"classifier": len(train_idx), "a": len(a_idx), "b": len(b_idx)},
                    labels_a=labels_a, labels_b=labels_b)
    if split is None:
        k = len(scan.class_names)
        ref.classifier_reason = "no classifier: " + (
            f"{scan.root} has {k} class sub-folder{'s' * (k != 1)}; a classifier needs at "
            "least 2 (sub-folder names are the labels)" if k < 2 else
            "too few files per class: the classifier and two disjoint real sets need at "
            "least two files of each class each")
    else:
        ref.classifier = get_classifier(_subset(scan, train_idx), config.data, stats,
                                        classifier_options or ClassifierOptions(),
                                        cache_dir=cache_dir, stream=stream)
    if ref.classifier is not None:
        ref.probs_a, ref.emb_a = ref.classifier.predict(ref.real_a)
        _, ref.emb_b = ref.classifier.predict(ref.real_b)
        ref.real_scores["inception_score"] = metrics.inception_score(ref.probs_a)[0]
        ref.real_scores["frechet_distance"] = _frechet(ref.emb_a, ref.emb_b)
    ndb = metrics.ndb_k(ref.real_a, ref.real_b, ref.ndb_bins, seed=seed)
    ref.real_scores["ndb"] = {"ndb": ndb["ndb"], "ndb_over_k": ndb["ndb_over_k"]}
    return ref


def _frechet(a, b) -> float:
    # Fewer samples than embedding dimensions leave the covariances singular; the metric
    # regularises that itself, and says so on every call, which is noise here.
    from scipy.linalg import LinAlgWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LinAlgWarning)
        return metrics.frechet_distance(a, b)


def quality(ref: Reference, generated: np.ndarray, labels=None) -> dict:
    """IS, FD and NDB/K of `generated` beside the real-data ceiling of `ref`; with the
    `labels` a conditional G was asked for, also its conditional accuracy."""
    out = {}
    if not np.all(np.isfinite(generated)):
        # A diverged generator: nothing to score, but the reader must see why.
        reason = "the generator's output is not finite"
        for name in ("inception_score", "frechet_distance"):
            out[name] = {"generated": None, "real": ref.real_scores.get(name), "reason": reason}
        out["class_histogram"] = None
        out["ndb"] = {"k": ref.ndb_bins, "alpha": 0.05, "generated": {"ndb": None,
                      "ndb_over_k": None}, "real": ref.real_scores["ndb"], "reason": reason}
        return out
    if ref.classifier is None:
        for name in ("inception_score", "frechet_distance"):
            out[name] = {"generated": None, "real": None, "reason": ref.classifier_reason}
        out["class_histogram"] = None
    else:
        probs, emb = ref.classifier.predict(generated)
        out["inception_score"] = {"generated": metrics.inception_score(probs)[0],
                                  "real": ref.real_scores["inception_score"], "reason": None}
        out["frechet_distance"] = {"generated": _frechet(emb, ref.emb_b),
                                   "real": ref.real_scores["frechet_distance"], "reason": None}
        # How G's samples spread over the classes: mode collapse shows here first.
        counts = np.bincount(np.argmax(probs, axis=1), minlength=probs.shape[1])
        out["class_histogram"] = dict(zip(ref.classifier.meta["class_names"],
                                          (counts / len(probs)).round(4).tolist()))
        if labels is not None:
            from tfgan.eval.live import class_fd

            names = ref.classifier.meta["class_names"]
            acc = metrics.conditional_accuracy(probs, labels)
            out["conditional_accuracy"] = {**acc, "per_class": dict(zip(names,
                                                                        acc["per_class"]))}
            # Each class's samples against that class's real clips, beside the same
            # between the two real sets (few clips per class: compare with that).
            k = len(names)
            out["frechet_distance"]["per_class"] = dict(zip(names, class_fd(
                emb, labels, ref.emb_b, ref.labels_b, k)))
            out["frechet_distance"]["per_class_real"] = dict(zip(names, class_fd(
                ref.emb_a, ref.labels_a, ref.emb_b, ref.labels_b, k)))
    ndb = metrics.ndb_k(ref.real_a, generated, ref.ndb_bins, seed=ref.seed)
    out["ndb"] = {"k": ref.ndb_bins, "alpha": 0.05,
                  "generated": {"ndb": ndb["ndb"], "ndb_over_k": ndb["ndb_over_k"]},
                  "real": ref.real_scores["ndb"]}
    return out


def balance_summary(records: list[dict]) -> dict:
    """The balance section of eval.json from a run's metrics records (see module doc)."""
    if not records:
        return {"reason": "the run logged no metrics"}
    summary = balance.summarize(records)
    last = records[-1]
    for key in ("gp", "ada_p"):
        if key in last:
            summary["final"][key] = last[key]
    fake_acc = [r["d_fake_acc"] for r in records
                if isinstance(r.get("d_fake_acc"), float) and math.isfinite(r["d_fake_acc"])]
    summary["d_fooled"] = (float(np.mean(np.less_equal(fake_acc, FOOLED_THRESHOLD)))
                           if fake_acc else None)
    summary["d_fooled_threshold"] = FOOLED_THRESHOLD
    # Share of the run in which one side won outright, whichever side it was.
    summary["one_sided"] = (None if summary["d_fooled"] is None
                            or not math.isfinite(summary["d_dominance"])
                            else summary["d_dominance"] + summary["d_fooled"])
    gaps = [r["d_real"] - r["d_fake"] for r in records if "d_real" in r and "d_fake" in r]
    summary["d_gap_median"] = float(np.median(gaps)) if gaps else None
    summary["d_dominance_threshold"] = DOMINANCE_THRESHOLD
    # The first interval includes tracing the step function; leave it out of the speed.
    rates = [r["steps_per_sec"] for r in (records[1:] or records) if r.get("steps_per_sec")]
    summary["steps_per_sec"] = float(np.median(rates)) if rates else None
    seconds, prev = 0.0, 0
    for r in records:
        if r.get("steps_per_sec"):
            seconds += (r["step"] - prev) / r["steps_per_sec"]
        prev = r["step"]
    summary["train_seconds"] = seconds
    summary["steps"] = int(last["step"])
    return summary


def _clean(value):
    """JSON-safe: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def evaluate_run(run_dir, samples: int = DEFAULT_SAMPLES, *, seed: int = 0,
                 ndb_bins: int = DEFAULT_NDB_BINS,
                 classifier_options: Optional[ClassifierOptions] = None, cache_dir=None,
                 reference: Optional[Reference] = None, write: bool = True,
                 stream=sys.stdout) -> dict:
    """Scores a run directory and writes RUN/eval.json.

    Args:
      run_dir: a run directory (see DESIGN.md's contract).
      samples: N, generated samples scored (and the size of each real set).
      seed: seeds the latents and the real crops.
      ndb_bins: k of NDB/K (capped at N / 10).
      classifier_options: classifier settings; the classifier is cached per data.
      cache_dir: classifier cache directory.
      reference: a `build_reference` result to reuse; rebuilt when it does not match
        this run's data, statistics, N or seed.
      write: write RUN/eval.json.
      stream: where progress lines go.

    Returns:
      The eval.json dict: run, step, generator ("ema" or "generator"), samples, seed,
      classifier (accuracy, classes, counts; or null with `classifier_reason`),
      inception_score / frechet_distance (`generated`, `real`, `reason`), ndb, class
      histogram, and balance (losses final/median, D dominance, D fooled, one-sided
      share, G loss trend, gradient norms, steps per second, training seconds).

    Raises:
      tfgan.rundir.RunError: the run directory is missing, or has no config or checkpoint.
      tfgan.data.pipeline.DataError: the run's data folder is missing or unusable.
    """
    from tfgan.models import balanced_labels
    from tfgan.rundir import RunDir, RunError, load_generator

    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise RunError(f"Run directory does not exist: {run.path}")
    generator, config, stats, step = load_generator(run)
    if reference is None or not reference.matches(config, stats, samples, seed):
        reference = build_reference(config, stats, samples, seed, ndb_bins, classifier_options,
                                    cache_dir, stream)
    generated = generate(generator, samples, config.model.latent_dim, seed)
    labels = balanced_labels(samples, config.model.num_classes)  # what `generate` asked for
    result = {
        "run_dir": str(run.path),
        "step": step,
        "disc": config.model.disc,
        "generator": "ema" if config.train.ema_decay > 0 else "generator",
        "samples": samples,
        "seed": seed,
        "data_root": reference.data_root,
        "files": reference.files,
        "classifier": (None if reference.classifier is None else
                       {k: v for k, v in reference.classifier.meta.items()
                        if k not in ("options", "version")}),
        "classifier_reason": reference.classifier_reason,
        **quality(reference, generated, None if labels is None else labels.numpy()),
        "balance": balance_summary(run.read_metrics()),
    }
    result = _clean(result)
    if write:
        tmp = run.path / ".eval.json.tmp"
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(run.path / "eval.json")
    return result


def format_summary(result: dict) -> str:
    """A few human-readable lines of an eval.json dict."""
    def num(v, fmt="{:.3f}"):
        return "n/a" if v is None else fmt.format(v)

    lines = [f"{result['run_dir']} at step {result['step']} ({result['generator']}), "
             f"N = {result['samples']} samples"]
    clf = result["classifier"]
    if clf:
        lines.append(f"  classifier held-out accuracy {num(clf['accuracy'])} "
                     f"({clf['n_classes']} classes, chance {num(clf['chance'])})")
    else:
        lines.append(f"  {result['classifier_reason']}")
    for name, label in (("inception_score", "IS"), ("frechet_distance", "FD")):
        m = result[name]
        lines.append(f"  {label:<6} generated {num(m['generated'])}   real {num(m['real'])}")
    if result.get("conditional_accuracy"):
        c = result["conditional_accuracy"]
        lines.append(f"  conditional accuracy {num(c['overall'])} (worst class "
                     f"{num(c['min'])})")
        fd = result["frechet_distance"]
        if fd.get("per_class"):
            lines.append("  FD per class (real): " + ", ".join(
                f"{k} {num(v, '{:.1f}')} ({num(fd['per_class_real'].get(k), '{:.1f}')})"
                for k, v in fd["per_class"].items()))
    ndb = result["ndb"]
    lines.append(f"  NDB/K  generated {num(ndb['generated']['ndb_over_k'])}   real "
                 f"{num(ndb['real']['ndb_over_k'])}   (k = {ndb['k']})")
    b = result["balance"]
    if "final" in b:
        lines.append(f"  final d_loss {num(b['final'].get('d_loss'))}  g_loss "
                     f"{num(b['final'].get('g_loss'))}  D dominance {num(b['d_dominance'])}  "
                     f"D fooled {num(b['d_fooled'])}  "
                     f"G loss trend {num(b['g_loss_trend'])}/1k steps")
    return "\n".join(lines)
