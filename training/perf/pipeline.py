"""The pipeline section: tf.data examples/s, cold and warm, against a librosa + NumPy loop."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from training.perf.common import import_tf, load_avg, subset_root, timed


def numpy_spectrogram(wave: np.ndarray, data_cfg, mean: np.ndarray, std: np.ndarray):
    """`audio.normalise(audio.log_magnitude(wave))` in NumPy (linear scale), [bins, frames]."""
    from tfgan import audio

    n_fft, hop = data_cfg.n_fft, data_cfg.hop_length
    frames = np.lib.stride_tricks.sliding_window_view(wave, n_fft)[::hop]
    # tf.signal.hann_window is periodic by default.
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    mag = np.abs(np.fft.rfft(frames * window, axis=-1))[:, :data_cfg.n_bins].T
    log_mag = np.log(mag + audio.LOG_EPS)
    return np.clip((log_mag - mean[:, None]) / (audio.CLIP_STDS * std[:, None]), -1.0, 1.0)


def librosa_loop(paths, data_cfg, stats, batch: int, n_examples: int, seed: int = 0) -> dict:
    """A PyTorch-style Dataset in a plain loop: librosa.load, random crop, NumPy STFT."""
    import librosa

    rng = np.random.default_rng(seed)
    mean, std = stats.mean.astype(np.float64), stats.std.astype(np.float64)
    clip = data_cfg.clip_samples
    librosa.load(paths[0], sr=data_cfg.sample_rate)  # imports and caches outside the timing

    def run():
        batches, current = 0, []
        for i in range(n_examples):
            wave, _ = librosa.load(paths[rng.integers(len(paths))], sr=data_cfg.sample_rate,
                                   mono=True)
            wave = np.pad(wave, (0, max(clip - wave.size, 0)))
            start = int(rng.integers(wave.size - clip + 1))
            current.append(numpy_spectrogram(wave[start:start + clip], data_cfg, mean, std))
            if len(current) == batch:
                np.stack(current)[..., None].astype(np.float32)
                batches, current = batches + 1, []
        return batches

    wall, cpu, _ = timed(run)
    return {"examples": n_examples, "seconds": wall, "cpu_seconds": cpu,
            "examples_per_s": n_examples / wall}


def _dataset_rate(scan, data_cfg, stats, batch: int, n_batches: int, warm: bool,
                  options: bool = False) -> dict:
    from tfgan.data import pipeline

    ds = pipeline.make_dataset(scan, data_cfg, stats, batch, training=True, seed=0)
    if options:
        opts = import_tf().data.Options()
        opts.deterministic = False
        opts.experimental_optimization.parallel_batch = True
        ds = ds.with_options(opts)
    it = iter(ds)
    first, _, _ = timed(lambda: next(it))
    if warm:  # one pass over the files fills the cache (the shuffle buffer holds them all)
        for _ in range(max(1, math.ceil(len(scan.paths) / batch))):
            next(it)
    wall, cpu, _ = timed(lambda: [next(it) for _ in range(n_batches)])
    return {"first_batch_s": first, "batches": n_batches, "seconds": wall, "cpu_seconds": cpu,
            "examples_per_s": n_batches * batch / wall, "load": load_avg()}


def tfio_resample_graph(audio, rate, target_rate: int):
    """The graph decoder's former resampler: tensorflow-io's `io_audio_resample` kernel.

    (`tfio.audio.resample` wraps the same kernel in `vectorized_map`, which logs a warning on
    every trace; the kernel takes `[samples, channels]`.)
    """
    tf = import_tf()
    from tensorflow_io.python.ops import core_ops

    out = core_ops.io_audio_resample(audio[:, None], rate_in=rate, rate_out=target_rate)
    return tf.reshape(out, [-1])


def bench_pipeline(quick: bool, tmp: Path) -> dict:
    from tfgan.config import preset
    from tfgan.data import decoders, pipeline

    cfg = preset("cpu", "reference")
    data_cfg, batch = cfg.data, cfg.train.batch_size if not quick else 8
    root = pipeline.builtin_or(None)
    if quick:
        root = subset_root(root, 2, tmp)
    scan_wall, _, scan = timed(lambda: pipeline.scan_folder(root, data_cfg))
    stats_wall, _, stats = timed(lambda: pipeline.compute_stats(scan, data_cfg))
    n_cold, n_warm, n_lib = (2, 4, 8) if quick else (40, 200, 640)
    cold_cfg = dataclasses.replace(data_cfg, cache=False)
    out = {"preset": "cpu", "files": len(scan.paths), "batch": batch,
           "sample_rate": data_cfg.sample_rate, "tfio": decoders.tfio_available(),
           "scan_s": scan_wall, "stats_s": stats_wall}
    out["cold"] = _dataset_rate(scan, cold_cfg, stats, batch, n_cold, warm=False)
    out["warm"] = _dataset_rate(scan, data_cfg, stats, batch, n_warm, warm=True)
    # tf.data options: nondeterministic order and parallel batching (measured: no gain).
    out["warm_options"] = _dataset_rate(scan, data_cfg, stats, batch, n_warm, warm=True,
                                        options=True)
    out["librosa_loop"] = librosa_loop(scan.paths, data_cfg, stats, batch, n_lib)
    # The same spectrogram? One file through both paths (resamplers differ slightly).
    import librosa
    from tfgan import audio

    wave, _ = librosa.load(scan.paths[0], sr=data_cfg.sample_rate)
    wave = wave[:data_cfg.clip_samples]
    ours = audio.normalise(audio.log_magnitude(wave, data_cfg), stats).numpy()
    theirs = numpy_spectrogram(wave, data_cfg, stats.mean.astype(np.float64),
                               stats.std.astype(np.float64))
    out["numpy_vs_tf_max_abs_diff"] = float(np.max(np.abs(ours - theirs)))
    # Variant: tensorflow-io's resampling kernel instead of soxr in the graph decoder.
    if out["tfio"]:
        original = decoders.resample_graph
        decoders.resample_graph = tfio_resample_graph
        try:
            out["cold_tfio_resample"] = _dataset_rate(scan, cold_cfg, stats, batch, n_cold,
                                                      False)
        finally:
            decoders.resample_graph = original
        out["cold_vs_cold_tfio"] = (out["cold"]["examples_per_s"]
                                    / out["cold_tfio_resample"]["examples_per_s"])
    out["cold_vs_librosa"] = out["cold"]["examples_per_s"] / out["librosa_loop"]["examples_per_s"]
    out["warm_vs_librosa"] = out["warm"]["examples_per_s"] / out["librosa_loop"]["examples_per_s"]
    return out
