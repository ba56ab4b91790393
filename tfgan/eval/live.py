"""Quality and balance measured while a run trains.

`HeldOut` is the real data a run is scored against, split so that nothing is scored by a
classifier that learned it: the labelled files are split in half per class (seeded); the
classifier (`tfgan.eval.classifier`) learns from the first half only, and the second half
is split again into two disjoint real sets A and B. Every evaluation then reports

* FD: Frechet distance in the classifier's embedding between G's samples and B, beside
  FD(A, B), the distance between two real sets of the same size (the real-vs-real
  reference: finite-sample bias included, so a generator that sampled the data would
  score about that);
* IS: Inception Score of G's samples beside that of A;
* classes covered: classes that get at least COVERED_SHARE of A's share of G's samples,
  by the classifier's argmax;
* silent share: share of samples whose Griffin-Lim waveform is silent (`silent_share`),
  beside the same of A's spectrograms (inverted the same way, so like is compared with
  like).

`CleanBalance` measures balance on what D would see without augmentation, instance noise
or label smoothing: D's logits on a fresh real batch and a fresh G batch, every log line.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from typing import Optional

import numpy as np

from tfgan.eval.evaluate import _frechet, generate

SILENT_RMS = 1e-4  # about -80 dBFS, the pipeline's own silence threshold
COVERED_SHARE = 0.25
CLIPS_PER_LONG_FILE = 4  # real clips per held-out file that is not a one-shot
GRIFFIN_LIM_ITERS = 16


@dataclasses.dataclass
class HeldOut:
    """Real sets A and B from files the classifier never saw, and their scores."""

    classifier: object
    real_a: np.ndarray  # [n, H, W, 1]
    real_b: np.ndarray
    emb_b: np.ndarray
    class_share_a: np.ndarray  # [K] share of A's clips per class (classifier argmax)
    real: dict  # fd, is, silent_share of real data; fd_class: per-class FD(A_c, B_c)
    files: dict  # how many files went where
    labels_b: np.ndarray = None  # [n] B's classes (its folders)

    @property
    def n(self) -> int:
        return len(self.real_a)


def silent_share(specs: np.ndarray, stats) -> float:
    """Share of spectrograms `[n, H, W, 1]` whose Griffin-Lim waveform is silent.

    Silent: RMS below SILENT_RMS, or below twice that of the all-floor spectrogram (every
    cell at -1, the normalised range's bottom). The floor is mean - 3 std per bin, which
    for quiet data inverts to a faint hiss above SILENT_RMS; a generator that outputs the
    floor is making silence all the same.
    """
    from tfgan import audio

    floor = audio.to_waveform(-np.ones_like(specs[:1]), stats, GRIFFIN_LIM_ITERS).numpy()
    threshold = max(SILENT_RMS, 2.0 * float(audio.rms(floor)[0]))
    waves = audio.to_waveform(specs, stats, GRIFFIN_LIM_ITERS).numpy()
    return float(np.mean(audio.rms(waves) < threshold))


def clips_per_file(scan, cfg) -> int:
    """1 when every file is a one-shot under the slicing policy (one clip each), else
    CLIPS_PER_LONG_FILE."""
    from tfgan.data import slicing

    limit = slicing.one_shot_limit(cfg)
    lengths = [i.frames * cfg.sample_rate / i.rate for i in scan.infos]
    one_shots = cfg.slice == "start" or (cfg.slice == "auto" and max(lengths) <= limit)
    return 1 if one_shots else CLIPS_PER_LONG_FILE


def build_held_out(scan, cfg, stats, seed: int = 0, cache_dir=None,
                   stream=sys.stdout) -> Optional[HeldOut]:
    """The held-out reference of a dataset, or None when it has fewer than two classes
    (or too few files per class to split three ways)."""
    from tfgan.eval import classifier as clf
    from tfgan.eval import metrics

    split = clf.three_way_split(scan, seed)
    if split is None:
        return None
    train_idx, a_idx, b_idx = split
    classifier = clf.get_classifier(clf._subset(scan, train_idx), cfg, stats,
                                    cache_dir=cache_dir, stream=stream)
    per_file = clips_per_file(scan, cfg)
    n = per_file * min(len(a_idx), len(b_idx))
    real_a, labels_a = clf.random_crops(clf._subset(scan, a_idx), cfg, stats, n, seed + 2)
    real_b, labels_b = clf.random_crops(clf._subset(scan, b_idx), cfg, stats, n, seed + 3)
    probs_a, emb_a = classifier.predict(real_a)
    _, emb_b = classifier.predict(real_b)
    share = np.bincount(np.argmax(probs_a, 1), minlength=probs_a.shape[1]) / len(probs_a)
    real = {"fd": _frechet(emb_a, emb_b), "is": float(metrics.inception_score(probs_a)[0]),
            "silent_share": silent_share(real_a, stats),
            "fd_class": class_fd(emb_a, labels_a, emb_b, labels_b, len(scan.class_names))}
    files = {"classifier": len(train_idx), "a": len(a_idx), "b": len(b_idx),
             "clips_per_file": per_file}
    return HeldOut(classifier, real_a, real_b, emb_b, share, real, files, labels_b)


def class_fd(emb, labels, emb_b, labels_b, k: int) -> list:
    """FD between the class-c rows of `emb` and of `emb_b`, for each class c (None where
    either side has fewer than two). With tens of clips per class in 128 dimensions the
    covariances are singular and regularised: compare a class's figure with the same
    measure between two real sets (HeldOut.real["fd_class"]), not with the overall FD."""
    out = []
    for c in range(k):
        a, b = emb[np.asarray(labels) == c], emb_b[np.asarray(labels_b) == c]
        out.append(_frechet(a, b) if min(len(a), len(b)) >= 2 else None)
    return out


def score(held: HeldOut, generated: np.ndarray, stats, labels=None) -> dict:
    """FD, IS, classes covered and silent share of `generated` `[n, H, W, 1]`; with the
    `labels` a conditional G was asked for, its conditional accuracy (overall and worst
    class)."""
    from tfgan.eval import metrics

    if not np.all(np.isfinite(generated)):
        return {"fd": None, "is": None, "classes_covered": 0, "silent_share": None}
    probs, emb = held.classifier.predict(generated)
    share = np.bincount(np.argmax(probs, 1), minlength=probs.shape[1]) / len(probs)
    covered = int(np.sum(share >= COVERED_SHARE * held.class_share_a))
    return {"fd": _frechet(emb, held.emb_b), "is": float(metrics.inception_score(probs)[0]),
            "classes_covered": covered, "n_classes": int(probs.shape[1]),
            "silent_share": silent_share(generated, stats),
            "class_share": [round(float(v), 4) for v in share],
            **({} if labels is None else {
                **_conditional(probs, labels),
                "fd_class": class_fd(emb, labels, held.emb_b, held.labels_b, probs.shape[1])})}


def _conditional(probs, labels) -> dict:
    from tfgan.eval import metrics

    acc = metrics.conditional_accuracy(probs, labels)
    return {"cond_acc": acc["overall"], "cond_acc_min": acc["min"]}


class CleanBalance:
    """D's verdict on clean inputs: a fresh real batch and a fresh batch of G(z).

    Called by the metrics logger at every log line. The models run as they do in a train
    step (training-mode BatchNorm, real and fake batches apart or joint as D is trained;
    see `GAN.joint_batch`) but without augmentation,
    instance noise or label smoothing, and the BatchNorm moving statistics the calls
    update are put back, so training is unchanged.

    Returns (per call): clean_real_acc (logit > 0), clean_fake_acc (logit < 0),
    clean_rank (real logit above its paired fake's), clean_gap (mean real logit minus
    mean fake logit), and clean_d_loss, D's loss on these logits without smoothing or
    penalties, beside clean_d_loss_eq, its value when D cannot tell (every logit 0).
    """

    def __init__(self, gan, real_batches, latent_dim: int, seed: int):
        self.gan, self.real = gan, iter(real_batches)
        self.latent_dim, self.seed = latent_dim, seed

    def __call__(self, step: int) -> dict:
        import tensorflow as tf

        from tfgan.models import with_labels

        g, d = self.gan.generator, self.gan.discriminator
        state = [(v, v.numpy()) for v in g.non_trainable_variables + d.non_trainable_variables]
        real, labels = next(self.real)
        real = tf.convert_to_tensor(real, tf.float32)
        # A conditional pair: each fake drawn for its real pair's class.
        labels = tf.cast(labels, tf.int32) if getattr(g, "num_classes", 0) else None
        z = tf.random.stateless_normal([int(real.shape[0]), self.latent_dim],
                                       seed=[self.seed, 1_000_003 + step])
        try:
            fake = with_labels(g, z, labels, training=True)
            real_logits, fake_logits = (tf.reshape(tf.cast(x, tf.float32), [-1])
                                        for x in self.gan.d_pair(real, fake, labels))
        finally:
            for v, value in state:
                v.assign(value)
        loss = self.gan.d_loss_fn
        zeros = tf.zeros_like(real_logits)
        return {"clean_real_acc": float(tf.reduce_mean(tf.cast(real_logits > 0, tf.float32))),
                "clean_fake_acc": float(tf.reduce_mean(tf.cast(fake_logits < 0, tf.float32))),
                "clean_rank": float(tf.reduce_mean(tf.cast(real_logits > fake_logits,
                                                           tf.float32))),
                "clean_gap": float(tf.reduce_mean(real_logits) - tf.reduce_mean(fake_logits)),
                "clean_d_loss": float(tf.reduce_mean(loss(real_logits, fake_logits))),
                "clean_d_loss_eq": float(tf.reduce_mean(loss(zeros, zeros)))}


def make_quality_monitor(counter, every: int, gan, held: HeldOut, stats, config, run,
                         best_saver=None, writer=None, stream=sys.stdout):
    """The callback that evaluates quality every `every` steps and at the last step (see
    module docstring).

    Args:
      counter: the trainer's StepCounter.
      every: steps between evaluations.
      gan: the GAN (its `sampler()` is scored, after `refresh_ema_statistics`).
      held: the held-out reference (`build_held_out`).
      stats: normalisation statistics (for Griffin-Lim).
      config: the run's config (latent size, seed).
      run: the RunDir whose metrics.jsonl gets the quality rows.
      best_saver: `f(step, fd)` saving the best checkpoint; None: no best checkpoint.
      writer: TensorBoard writer or None.
      stream: where the quality line is printed.
    """
    import keras
    import tensorflow as tf

    from tfgan.models import balanced_labels

    # What `generate` asks a conditional G for: every class in turn.
    labels = balanced_labels(held.n, config.model.num_classes)
    requested = None if labels is None else labels.numpy()

    class _Monitor(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best = _read_best(run)
            if self.best is not None and self.best["step"] > counter.step:
                # From steps a resume will redo (killed before their checkpoint): the next
                # evaluation replaces it.
                self.best = None

        def on_train_batch_end(self, batch, logs=None):
            step = counter.step
            if not counter.due(every):  # every `every` steps, and at the run's last step
                return
            t0 = time.perf_counter()
            gan.refresh_ema_statistics()
            generated = generate(gan.sampler(), held.n, config.model.latent_dim,
                                 config.train.seed)
            scores = score(held, generated, stats, requested)
            record = {"step": step, "kind": "eval", **scores,
                      "fd_real": held.real["fd"], "is_real": held.real["is"],
                      "silent_share_real": held.real["silent_share"], "n": held.n,
                      **({"fd_class_real": held.real["fd_class"]} if "fd_class" in scores
                         else {}),
                      "eval_seconds": round(time.perf_counter() - t0, 2)}
            if gan.ema_generator is not None:
                # The live generator too: whether the average helps at this point of the
                # run is a measurement, not an assumption.
                raw = score(held, generate(gan.generator, held.n, config.model.latent_dim,
                                           config.train.seed), stats)
                record.update(fd_raw=raw["fd"], is_raw=raw["is"],
                              classes_covered_raw=raw["classes_covered"],
                              silent_share_raw=raw["silent_share"])
            fd = scores["fd"]
            if fd is not None and best_saver is not None and (self.best is None
                                                              or fd < self.best["fd"]):
                best_saver(step, fd)
                self.best = {"step": step, "fd": fd}
            record["best_step"] = self.best["step"] if self.best else None
            with open(run.metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            if writer is not None:
                with writer.as_default(step=step):
                    for k in ("fd", "is", "classes_covered", "silent_share", "cond_acc"):
                        if scores.get(k) is not None:
                            tf.summary.scalar(f"eval/{k}", scores[k])
            print(_line(record), file=stream, flush=True)

    return _Monitor()


def _line(r: dict) -> str:
    def num(v, fmt):
        return "n/a" if v is None else fmt.format(v)

    raw = f" [raw G {num(r['fd_raw'], '{:.2f}')}]" if "fd_raw" in r else ""
    return (f"eval   {r['step']:>6}  FD {num(r['fd'], '{:.2f}')}{raw} (real {r['fd_real']:.2f})  "
            f"IS {num(r['is'], '{:.2f}')} (real {r['is_real']:.2f})  classes "
            f"{r['classes_covered']}/{r.get('n_classes', '?')}  silent "
            f"{num(r['silent_share'], '{:.2f}')} (real {r['silent_share_real']:.2f})  "
            + (f"class acc {r['cond_acc']:.2f} (worst {r['cond_acc_min']:.2f})  "
               if r.get("cond_acc") is not None else "")
            + f"best step {r['best_step']}  {r['eval_seconds']:.1f} s")


def _read_best(run) -> Optional[dict]:
    path = run.checkpoints / "best" / "best.json"
    if path.exists():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return None
    return None
