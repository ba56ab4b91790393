"""A spectrogram classifier for the quality metrics, trained once per dataset and cached.

The Inception Score and the Frechet distance need a network that knows what the data's
classes look like. ImageNet's Inception knows nothing of spectrograms, so this module
trains a small CNN on the dataset's own class labels (its sub-folder names), on exactly
the normalised spectrograms the GAN sees (`tfgan.data.pipeline.make_dataset`).

The files of each class are split 80/20 (stratified, seeded); the classifier learns from
the centre crop and a few random crops of each training file and is scored on the centre
crops of the held-out files. Its held-out accuracy travels with it in `meta.json`: a
classifier near chance makes IS and FD meaningless, and the reader must be able to see
that. The 128-d penultimate layer (`embedding`) is the feature space of the Frechet
distance.

Trained classifiers are cached under `<cache>/classifiers/<key>/` (`classifier.keras`,
`meta.json`), the key hashing the file list, the labels, the normalisation statistics,
the audio parameters and the classifier's own settings, so every run on the same data
(each arm of a benchmark, say) shares one classifier.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSIFIER_VERSION = 2  # bump when the architecture or the training recipe changes
EMBEDDING_DIM = 128
TEST_FRACTION = 0.2


class NoLabelsError(ValueError):
    """The data has fewer than two classes, so no classifier can be trained on it."""


@dataclasses.dataclass(frozen=True)
class ClassifierOptions:
    """How the classifier is built and trained (all part of the cache key).

    Attributes:
      width: channels of the first convolution (doubling twice after it).
      epochs: passes over the training crops.
      random_crops: random crops per training file, besides its centre crop.
      batch_size: examples per gradient step.
      seed: seeds the split, the crops, the initialisation and the shuffling.
    """

    width: int = 16
    epochs: int = 6
    random_crops: int = 3
    batch_size: int = 64
    seed: int = 0


def build_classifier(size: int, n_classes: int, width: int = 16,
                     embedding_dim: int = EMBEDDING_DIM):
    """A small CNN: `[b, size, size, 1]` spectrograms in [-1, 1] -> `[b, n_classes]` probs.

    Four Conv(3x3) -> BatchNorm -> ReLU -> MaxPool(2) blocks of widths w, 2w, 4w, 4w, a
    global average pool, the `embedding` Dense(embedding_dim, ReLU), dropout and a softmax.
    A functional model, so `.keras` files load without registered custom classes.
    """
    import keras
    from keras import layers

    if n_classes < 2:
        raise ValueError(f"A classifier needs at least 2 classes. Received: n_classes={n_classes}")
    inputs = keras.Input((size, size, 1), name="spectrogram")
    x = inputs
    for w in (width, 2 * width, 4 * width, 4 * width):        # size -> size / 16
        x = layers.Conv2D(w, 3, padding="same", use_bias=False)(x)
        # momentum 0.9, not Keras' 0.99, which lags the fast-changing weights of a short
        # training so far that held-out accuracy sat near chance (see also the
        # recalibration in train_classifier).
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)                      # [b, 4w]
    emb = layers.Dense(embedding_dim, activation="relu", name="embedding")(x)
    x = layers.Dropout(0.3)(emb)
    probs = layers.Dense(n_classes, activation="softmax", name="probs", dtype="float32")(x)
    return keras.Model(inputs, probs, name="spectrogram_classifier")


class Classifier:
    """A trained classifier with its metadata.

    Attributes:
      model: spectrograms `[b, H, W, 1]` -> class probabilities `[b, K]`.
      meta: held-out accuracy, class names, sample counts, options, cache path.
    """

    def __init__(self, model, meta: dict):
        import keras

        self.model, self.meta = model, meta
        # One pass gives both outputs: the embedding for FD and the probabilities for IS.
        self._both = keras.Model(model.inputs[0],
                                 [model.get_layer("embedding").output, model.outputs[0]])

    @property
    def accuracy(self) -> float:
        return float(self.meta["accuracy"])

    def predict(self, specs: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities `[N, K]` and embeddings `[N, EMBEDDING_DIM]` of `specs`."""
        probs, embs = [], []
        for i in range(0, len(specs), batch_size):
            emb, prob = self._both(np.asarray(specs[i:i + batch_size], np.float32),
                                   training=False)
            embs.append(np.asarray(emb, np.float64))
            probs.append(np.asarray(prob, np.float64))
        return np.concatenate(probs), np.concatenate(embs)


def cache_key(scan, data_cfg, stats, options: ClassifierOptions) -> str:
    """A hex digest naming what a classifier was trained on and how."""
    files = []
    for path in scan.paths:
        st = os.stat(path)
        files.append([os.path.abspath(path), st.st_size, st.st_mtime_ns])
    payload = {
        "version": CLASSIFIER_VERSION,
        "files": files,
        "labels": list(scan.labels),
        "classes": list(scan.class_names),
        "data": {k: v for k, v in dataclasses.asdict(data_cfg).items()
                 if k not in ("data_dir", "shuffle_buffer", "cache")},
        "stats": hashlib.sha256(np.asarray(stats.mean, np.float32).tobytes()
                                + np.asarray(stats.std, np.float32).tobytes()).hexdigest(),
        "options": dataclasses.asdict(options),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def default_cache_dir() -> Path:
    """`$TFGAN_CACHE/classifiers` (default `~/.cache/tfgan/classifiers`)."""
    from tfgan.data.synthetic import default_cache_dir as data_cache

    return data_cache() / "classifiers"


def stratified_split(labels, test_fraction: float = TEST_FRACTION,
                     seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices (train, test) of the labelled files, `test_fraction` of each class held out.

    A class with a single file keeps it for training; files with label -1 are left out.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    train, test = [], []
    for c in sorted(set(labels[labels >= 0].tolist())):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(idx) * test_fraction))
        n_test = min(max(n_test, 1), len(idx) - 1)
        test.extend(idx[:n_test].tolist())
        train.extend(idx[n_test:].tolist())
    return sorted(train), sorted(test)


def three_way_split(scan, seed: int = 0):
    """Disjoint file indices (classifier, A, B): half of each class for the classifier to
    learn from, the other half split again into two real sets that are scored, so no
    scored file trained the scorer and the real-vs-real reference compares different
    files. None when the files are not labelled with two or more classes, or too few to
    give each part two files of every class.
    """
    k = len(scan.class_names)
    if k < 2:
        return None
    train_idx, scored_idx = stratified_split(scan.labels, 0.5, seed)
    scored_labels = [scan.labels[i] for i in scored_idx]
    a_rel, b_rel = stratified_split(scored_labels, 0.5, seed + 1)
    a_idx, b_idx = [scored_idx[i] for i in a_rel], [scored_idx[i] for i in b_rel]
    labels = np.asarray(scan.labels)
    for part in (train_idx, a_idx, b_idx):
        if np.bincount(labels[part], minlength=k).min() < 2:
            return None
    return train_idx, a_idx, b_idx


def _subset(scan, indices):
    return dataclasses.replace(scan, paths=[scan.paths[i] for i in indices],
                               infos=[scan.infos[i] for i in indices],
                               labels=[scan.labels[i] for i in indices])


def _arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*ds.as_numpy_iterator())
    return np.concatenate(xs), np.concatenate(ys)


def random_crops(scan, data_cfg, stats, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` random clips of `scan`'s files, as the training pipeline slices them.

    Files are taken in seeded random order, each once per pass, each sliced at a uniform
    random one of its allowed starts (`tfgan.data.slicing`). The
    randomness is NumPy's, so the crops depend on `seed` alone: the training pipeline's
    own shuffle would also depend on whether some earlier code set TensorFlow's global
    seed (training does), and scores would change between processes.

    Returns:
      float32 spectrograms `[n, n_bins, n_frames, 1]` in [-1, 1] and int32 labels `[n]`.
    """
    import tensorflow as tf

    from tfgan import audio
    from tfgan.data import pipeline

    rng = np.random.default_rng(seed)
    passes = -(-n // len(scan.paths))
    order = np.concatenate([rng.permutation(len(scan.paths)) for _ in range(passes)])[:n]
    offsets = tf.data.Dataset.from_tensor_slices(rng.uniform(size=n).astype(np.float32))
    # The pipeline's own decoding and slicing, so the clips are exactly what training sees.
    files = pipeline.decoded_files(_subset(scan, order), data_cfg)
    ds = tf.data.Dataset.zip((files, offsets)).map(
        lambda e, f: (pipeline.clip_of(e, f, data_cfg), e["label"]),
        num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(256).map(
        lambda w, y: (audio.normalise(audio.log_magnitude(w, data_cfg), stats)[..., None], y))
    return _arrays(ds)


def train_classifier(scan, data_cfg, stats, options: ClassifierOptions = ClassifierOptions(),
                     stream=None):
    """Trains a classifier on `scan`'s labelled files (see module docstring).

    Args:
      scan: the data (`tfgan.data.pipeline.scan_folder`); needs >= 2 classes.
      data_cfg: audio parameters.
      stats: normalisation statistics, the same the GAN was trained with.
      options: architecture and training settings.
      stream: where progress lines go (None: nowhere).

    Returns:
      (keras model, meta dict without the cache path).

    Raises:
      NoLabelsError: fewer than two classes, or too few labelled files to hold some out.
    """
    import keras

    from tfgan.data import pipeline

    if len(scan.class_names) < 2:
        raise NoLabelsError(
            f"the data has {len(scan.class_names)} class sub-folder(s) under {scan.root}; "
            "a classifier needs at least 2 (sub-folder names are the labels)")
    train_idx, test_idx = stratified_split(scan.labels, seed=options.seed)
    if not test_idx or not train_idx:
        raise NoLabelsError(f"too few labelled files under {scan.root} to hold any out")
    train_scan, test_scan = _subset(scan, train_idx), _subset(scan, test_idx)
    t0 = time.perf_counter()
    # Centre crops of every training file plus random crops: more examples without more
    # files, and the GAN itself is trained on random crops.
    centre = pipeline.make_dataset(train_scan, data_cfg, stats, 256, training=False,
                                   with_labels=True)
    x_train, y_train = _arrays(centre)
    if options.random_crops > 0:
        x_more, y_more = random_crops(train_scan, data_cfg, stats,
                                      len(train_idx) * options.random_crops, options.seed)
        x_train, y_train = np.concatenate([x_train, x_more]), np.concatenate([y_train, y_more])
    x_test, y_test = _arrays(pipeline.make_dataset(test_scan, data_cfg, stats, 256,
                                                   training=False, with_labels=True))
    keras.utils.set_random_seed(options.seed)
    model = build_classifier(data_cfg.n_bins, len(scan.class_names), options.width)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # At least ~16 steps an epoch, so that a small dataset still gets trained.
    batch = min(options.batch_size, max(8, len(x_train) // 16))
    model.fit(x_train, y_train, batch_size=batch, epochs=options.epochs, shuffle=True,
              verbose=0)
    # Recalibrate BatchNorm: its moving statistics trail the weights of the last steps
    # (badly so after a short training); two passes in training mode, without updates,
    # make them the statistics of the final weights.
    for _ in range(2):
        for i in range(0, len(x_train), batch):
            model(x_train[i:i + batch], training=True)
    probs = model.predict(x_test, batch_size=256, verbose=0)
    accuracy = float(np.mean(np.argmax(probs, axis=1) == y_test))
    meta = {
        "version": CLASSIFIER_VERSION,
        "accuracy": accuracy,
        "chance": float(np.max(np.bincount(y_test)) / len(y_test)),
        "n_classes": len(scan.class_names),
        "class_names": list(scan.class_names),
        "train_files": len(train_idx),
        "test_files": len(test_idx),
        "train_examples": int(len(x_train)),
        "test_examples": int(len(x_test)),
        "embedding_dim": EMBEDDING_DIM,
        "options": dataclasses.asdict(options),
        "data_root": str(scan.root),
        "train_seconds": round(time.perf_counter() - t0, 1),
    }
    if stream is not None:
        print(f"Classifier: held-out accuracy {accuracy:.3f} on {len(test_idx)} files of "
              f"{meta['n_classes']} classes (chance {meta['chance']:.3f}), trained on "
              f"{len(x_train)} crops in {meta['train_seconds']:.0f} s", file=stream, flush=True)
    return model, meta


def get_classifier(scan, data_cfg, stats, options: ClassifierOptions = ClassifierOptions(),
                   cache_dir=None, stream=sys.stdout) -> Classifier:
    """The cached classifier for this data, statistics and options; trained if missing.

    Args:
      scan, data_cfg, stats, options: as in `train_classifier`.
      cache_dir: where classifiers are cached (default: `default_cache_dir()`).
      stream: where progress lines go.

    Raises:
      NoLabelsError: as in `train_classifier`.
    """
    import keras

    if len(scan.class_names) < 2:  # fail before hashing a possibly large file list
        raise NoLabelsError(
            f"the data has {len(scan.class_names)} class sub-folder(s) under {scan.root}; "
            "a classifier needs at least 2 (sub-folder names are the labels)")
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    key = cache_key(scan, data_cfg, stats, options)
    final = root / key
    model_path, meta_path = final / "classifier.keras", final / "meta.json"
    if model_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        model = keras.models.load_model(model_path, compile=False)
        meta["cache_path"], meta["cached"] = str(final), True
        if stream is not None:
            print(f"Classifier: cached at {final} (held-out accuracy {meta['accuracy']:.3f})",
                  file=stream, flush=True)
        return Classifier(model, meta)

    model, meta = train_classifier(scan, data_cfg, stats, options, stream)
    root.mkdir(parents=True, exist_ok=True)
    # Written to a temporary sibling and renamed: a concurrent or killed writer never
    # leaves a half-written classifier where a reader would pick it up.
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=root))
    try:
        model.save(tmp / "classifier.keras")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide the cache from other users
        try:
            os.rename(tmp, final)
        except OSError:
            pass  # another process finished first; its classifier is equivalent
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    meta = {**meta, "cache_path": str(final), "cached": False}
    return Classifier(model, meta)
