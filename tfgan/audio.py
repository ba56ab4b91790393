"""Waveform <-> normalised log-magnitude spectrogram, in TensorFlow ops.

Layout: a spectrogram is `[..., n_bins, n_frames]` (frequency rows, time columns), row 0
the lowest frequency. Models see it as an image `[H, W, 1]` with `H = n_bins`,
`W = n_frames`.

Forward:  waveform [..., clip_samples] -> |STFT| -> (mel filterbank) -> log(. + eps)
          -> per-bin (x - mean) / (3 std), clipped to [-1, 1]   (SpecGAN's normalisation)
Inverse:  denormalise -> exp -> (mel pseudo-inverse) -> Griffin-Lim -> waveform in [-1, 1]

Everything but the WAV helpers is pure TF, so the inverse path can live inside an exported
SavedModel.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tfgan.config import DataConfig

LOG_EPS = 1e-6
# Values beyond 3 standard deviations are clipped: SpecGAN found this keeps the range
# usable for tanh without letting rare loud bins squash everything else.
CLIP_STDS = 3.0


@dataclasses.dataclass(frozen=True)
class Stats:
    """Per-frequency-bin statistics of log-magnitudes over a dataset.

    Attributes:
      mean: `[n_bins]` mean log-magnitude per bin.
      std: `[n_bins]` standard deviation per bin (floored, never 0).
      data: the audio parameters the statistics were computed with.
      num_examples: how many clips were measured.
    """

    mean: np.ndarray
    std: np.ndarray
    data: DataConfig
    num_examples: int = 0

    def to_json(self) -> str:
        return json.dumps(
            {
                "mean": [float(v) for v in self.mean],
                "std": [float(v) for v in self.std],
                "audio": dataclasses.asdict(self.data),
                "num_examples": int(self.num_examples),
                "log_eps": LOG_EPS,
                "clip_stds": CLIP_STDS,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> "Stats":
        d = json.loads(text)
        known = {f.name for f in dataclasses.fields(DataConfig)}
        data = DataConfig(**{k: v for k, v in d["audio"].items() if k in known})
        return cls(
            mean=np.asarray(d["mean"], np.float32),
            std=np.asarray(d["std"], np.float32),
            data=data,
            num_examples=int(d.get("num_examples", 0)),
        )

    def save(self, path) -> None:
        _atomic_write_text(Path(path), self.to_json())

    @classmethod
    def load(cls, path) -> "Stats":
        return cls.from_json(Path(path).read_text())


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _window(cfg: DataConfig):
    del cfg
    return tf.signal.hann_window


def mel_matrix(cfg: DataConfig) -> tf.Tensor:
    """`[n_fft // 2 + 1, n_bins]` mel filterbank (HTK mel scale, as tf.signal builds it)."""
    return tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=cfg.n_bins,
        num_spectrogram_bins=cfg.n_fft // 2 + 1,
        sample_rate=cfg.sample_rate,
        lower_edge_hertz=cfg.fmin,
        upper_edge_hertz=cfg.sample_rate / 2,
    )


def stft(waveform: tf.Tensor, cfg: DataConfig) -> tf.Tensor:
    """Complex STFT `[..., frames, n_fft // 2 + 1]` of `[..., samples]` float32 audio."""
    return tf.signal.stft(
        waveform,
        frame_length=cfg.n_fft,
        frame_step=cfg.hop_length,
        fft_length=cfg.n_fft,
        window_fn=_window(cfg),
        pad_end=False,
    )


def magnitude(waveform: tf.Tensor, cfg: DataConfig) -> tf.Tensor:
    """Magnitude spectrogram `[..., n_bins, frames]` on the configured frequency scale."""
    mag = tf.abs(stft(waveform, cfg))  # [..., frames, n_fft/2 + 1]
    if cfg.scale == "mel":
        mag = tf.tensordot(mag, mel_matrix(cfg), axes=1)  # [..., frames, n_bins]
    else:
        mag = mag[..., : cfg.n_bins]  # drop the Nyquist bin, as SpecGAN does
    return tf.linalg.matrix_transpose(mag)


def log_magnitude(waveform: tf.Tensor, cfg: DataConfig) -> tf.Tensor:
    """Log-magnitude spectrogram `[..., n_bins, frames]`, natural log, floor log(1e-6)."""
    return tf.math.log(magnitude(waveform, cfg) + LOG_EPS)


def normalise(log_mag: tf.Tensor, stats: Stats) -> tf.Tensor:
    """Per-bin standardisation to [-1, 1]: clip((x - mean) / (3 std), -1, 1)."""
    mean = tf.constant(stats.mean[:, None], tf.float32)
    std = tf.constant(stats.std[:, None], tf.float32)
    return tf.clip_by_value((log_mag - mean) / (CLIP_STDS * std), -1.0, 1.0)


def denormalise(spec: tf.Tensor, stats: Stats) -> tf.Tensor:
    """Inverse of `normalise` (up to clipping): `[..., n_bins, frames]` log-magnitudes."""
    mean = tf.constant(stats.mean[:, None], tf.float32)
    std = tf.constant(stats.std[:, None], tf.float32)
    return tf.cast(spec, tf.float32) * (CLIP_STDS * std) + mean


def linear_magnitude(log_mag: tf.Tensor, cfg: DataConfig) -> tf.Tensor:
    """Full linear STFT magnitude `[..., frames, n_fft // 2 + 1]` from a log spectrogram."""
    mag = tf.nn.relu(tf.exp(log_mag) - LOG_EPS)
    mag = tf.linalg.matrix_transpose(mag)  # [..., frames, n_bins]
    if cfg.scale == "mel":
        # The pseudo-inverse of the filterbank is the least-squares linear spectrum;
        # negative lobes are not magnitudes, so they are clipped.
        pinv = tf.linalg.pinv(mel_matrix(cfg))  # [n_bins, n_fft/2 + 1]
        return tf.nn.relu(tf.tensordot(mag, pinv, axes=1))
    pad = [[0, 0]] * (len(mag.shape) - 1) + [[0, cfg.n_fft // 2 + 1 - cfg.n_bins]]
    return tf.pad(mag, pad)  # the Nyquist bin comes back as zero


def griffin_lim(mag: tf.Tensor, cfg: DataConfig, n_iter: int = 32,
                momentum: float = 0.99) -> tf.Tensor:
    """Waveform `[..., samples]` whose STFT magnitude approximates `mag`.

    Fast Griffin-Lim (Perraudin et al., 2013): the phase estimate is extrapolated with
    `momentum` each iteration, which converges in far fewer iterations than plain GL.
    Starts from zero phase so the result is deterministic (exportable, testable).

    Args:
      mag: `[..., frames, n_fft // 2 + 1]` non-negative float32 magnitudes.
      cfg: the STFT parameters.
      n_iter: iterations; a Python int, fixed when a graph is traced.
    """
    mag = tf.cast(mag, tf.float32)
    inv_window = tf.signal.inverse_stft_window_fn(cfg.hop_length, forward_window_fn=_window(cfg))

    def istft(spec):
        return tf.signal.inverse_stft(spec, frame_length=cfg.n_fft, frame_step=cfg.hop_length,
                                      fft_length=cfg.n_fft, window_fn=inv_window)

    mag_c = tf.complex(mag, tf.zeros_like(mag))
    angles = tf.complex(tf.ones_like(mag), tf.zeros_like(mag))
    previous = tf.zeros_like(mag_c)
    for _ in range(n_iter):
        rebuilt = stft(istft(mag_c * angles), cfg)
        accelerated = rebuilt - tf.cast(momentum / (1 + momentum), tf.complex64) * previous
        previous = rebuilt
        angles = accelerated / tf.cast(tf.maximum(tf.abs(accelerated), 1e-8), tf.complex64)
    return istft(mag_c * angles)


def to_waveform(spec: tf.Tensor, stats: Stats, n_iter: int = 32) -> tf.Tensor:
    """Normalised spectrograms `[batch, n_bins, frames(, 1)]` -> audio `[batch, samples]`.

    The output is scaled down only when its peak exceeds 1, so quiet sounds stay quiet.
    """
    spec = tf.convert_to_tensor(spec, tf.float32)
    if spec.shape.rank == 4:
        spec = spec[..., 0]
    mag = linear_magnitude(denormalise(spec, stats), stats.data)
    wave = griffin_lim(mag, stats.data, n_iter=n_iter)
    peak = tf.reduce_max(tf.abs(wave), axis=-1, keepdims=True)
    return wave / tf.maximum(peak, 1.0)


def spectral_convergence(reference: tf.Tensor, estimate: tf.Tensor, cfg: DataConfig) -> tf.Tensor:
    """|| |S(ref)| - |S(est)| ||_F / || |S(ref)| ||_F: 0 is a perfect magnitude match."""
    a = tf.abs(stft(reference, cfg))
    b = tf.abs(stft(estimate, cfg))
    return tf.norm(a - b) / tf.maximum(tf.norm(a), 1e-12)


def write_wav(path, audio: np.ndarray, sample_rate: int) -> None:
    """Writes float audio in [-1, 1] (`[samples]` or `[samples, channels]`) as 16-bit PCM."""
    import soundfile as sf

    audio = np.clip(np.nan_to_num(np.asarray(audio, np.float32)), -1.0, 1.0)
    sf.write(str(path), audio, int(sample_rate), subtype="PCM_16")


def read_wav(path) -> tuple[np.ndarray, int]:
    """Reads any soundfile-supported file as float32 `[samples, channels]` and its rate."""
    import soundfile as sf

    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return audio, int(rate)


def rms(audio: Sequence[float] | np.ndarray, axis: Optional[int] = -1) -> np.ndarray:
    audio = np.asarray(audio, np.float64)
    return np.sqrt(np.mean(audio ** 2, axis=axis))
