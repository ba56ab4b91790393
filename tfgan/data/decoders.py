"""Audio decoders: tensorflow-io in the graph where its kernels load, soundfile otherwise.

`probe` reads a file's header (rate, channels, length, codec) with soundfile; `decode_graph`
decodes one file inside a `tf.data` map to mono float32 at the target rate. The codec index
picks a tensorflow-io kernel; files tensorflow-io cannot read (and every file, when its
kernels fail to load, e.g. on TF >= 2.17) go through `decode_python` via
`tf.numpy_function`. The fallback is announced once with a warning. Both paths resample
with soxr.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import logging
import os
import warnings

import numpy as np
import tensorflow as tf

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")

# Index = branch of the in-graph decoder. 0 is the Python (soundfile) decoder.
CODECS = ("python", "wav_int16", "wav_int32", "wav_float32", "flac_int16", "flac_int32",
          "vorbis", "mp3")
_SUBTYPE_CODEC = {
    ("WAV", "PCM_16"): "wav_int16",
    ("WAV", "PCM_24"): "wav_int32",
    ("WAV", "PCM_32"): "wav_int32",
    ("WAV", "FLOAT"): "wav_float32",
    ("FLAC", "PCM_16"): "flac_int16",
    ("FLAC", "PCM_24"): "flac_int32",
    ("OGG", "VORBIS"): "vorbis",
    ("MP3", "MPEG_LAYER_III"): "mp3",
}


class DecodeError(ValueError):
    """A file that is not decodable audio."""


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    rate: int
    channels: int
    frames: int
    codec: str

    @property
    def codec_index(self) -> int:
        return CODECS.index(self.codec)


def probe(path: str) -> AudioInfo:
    """Reads the header of `path`. Raises DecodeError if it is not audio soundfile knows."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as e:  # soundfile raises RuntimeError/LibsndfileError/TypeError
        raise DecodeError(f"not readable audio ({_short(e)})") from None
    if info.frames <= 0 or info.samplerate <= 0 or info.channels <= 0:
        raise DecodeError(f"empty audio ({info.frames} frames)")
    codec = _SUBTYPE_CODEC.get((info.format, info.subtype), "python")
    if codec == "wav_int32" and info.subtype == "PCM_24" and (info.frames * info.channels) % 2:
        codec = "python"  # tensorflow-io misreads the pad byte of an odd-length 24-bit chunk
    if codec != "python" and not tfio_available():
        codec = "python"
    return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames), codec)


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:160]


def resample_np(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling of mono float32 audio with soxr (what librosa uses)."""
    if rate_in == rate_out:
        return audio
    import soxr

    return soxr.resample(audio, rate_in, rate_out, quality="HQ").astype(np.float32)


def decode_python(path, target_rate: int, max_seconds: float = 0.0) -> np.ndarray:
    """Decodes any soundfile-supported file to mono float32 `[samples]` at `target_rate`.

    Args:
      path: file path (str or bytes, as tf.numpy_function passes it).
      target_rate: output sample rate in Hz.
      max_seconds: if > 0, reads at most this much audio (guards against hour-long files).
    """
    import soundfile as sf

    if isinstance(path, np.ndarray):  # tf.numpy_function, run eagerly, passes a 0-d array
        path = path.item()
    path = path.decode() if isinstance(path, bytes) else str(path)
    try:
        with sf.SoundFile(path) as f:
            frames = f.frames
            if max_seconds > 0:
                frames = min(frames, int(max_seconds * f.samplerate))
            audio = f.read(frames, dtype="float32", always_2d=True)
            rate = f.samplerate
    except Exception as e:
        raise DecodeError(f"not readable audio ({_short(e)})") from None
    mono = audio.mean(axis=1) if audio.size else np.zeros([0], np.float32)
    return resample_np(mono.astype(np.float32), rate, target_rate)


@functools.lru_cache(maxsize=None)
def tfio_available() -> bool:
    """True when tensorflow-io imports and its audio kernels run on this TensorFlow.

    Set TFGAN_DISABLE_TFIO=1 to force the soundfile decoder (used by the tests of the
    fallback path). Warns once when falling back.
    """
    if os.environ.get("TFGAN_DISABLE_TFIO", "") not in ("", "0"):
        warnings.warn("TFGAN_DISABLE_TFIO is set: decoding audio with soundfile, outside "
                      "the TensorFlow graph.", RuntimeWarning, stacklevel=2)
        return False
    try:
        import tensorflow_io as tfio
        import soundfile as sf

        buf = io.BytesIO()
        sf.write(buf, np.zeros(64, np.float32), 8000, format="WAV", subtype="PCM_16")
        tfio.audio.decode_wav(tf.constant(buf.getvalue()), dtype=tf.int16)
        return True
    except Exception as e:  # ImportError, NotFoundError (undefined symbol), ...
        warnings.warn(
            f"tensorflow-io's audio kernels could not be loaded ({_short(e)}); decoding "
            "audio with soundfile instead (slower, outside the TensorFlow graph).",
            RuntimeWarning, stacklevel=2)
        return False


def _tfio_branches(contents: tf.Tensor):
    """One zero-argument function per codec (CODECS[1:]) returning float32 [n, channels]."""
    import tensorflow_io as tfio

    a = tfio.audio
    return [
        lambda: tf.cast(a.decode_wav(contents, dtype=tf.int16), tf.float32) / 32768.0,
        lambda: tf.cast(a.decode_wav(contents, dtype=tf.int32), tf.float32) / 2147483648.0,
        lambda: a.decode_wav(contents, dtype=tf.float32),
        lambda: tf.cast(a.decode_flac(contents, dtype=tf.int16), tf.float32) / 32768.0,
        lambda: tf.cast(a.decode_flac(contents, dtype=tf.int32), tf.float32) / 2147483648.0,
        lambda: tf.cast(a.decode_vorbis(contents), tf.float32),
        lambda: tf.cast(a.decode_mp3(contents), tf.float32),
    ]


def resample_graph(audio: tf.Tensor, rate: tf.Tensor, target_rate: int) -> tf.Tensor:
    """Mono `[samples]` resampled inside a graph by soxr (`resample_np`).

    tensorflow-io's `io_audio_resample` kernel made the cold input pipeline 3-4x slower
    (`python -m training.perf`; its build lacks SSE3/AVX), and soxr is what the
    soundfile fallback and librosa use, so both decode paths give the same samples.
    """
    out = tf.numpy_function(lambda a, r: resample_np(a, int(r), target_rate),
                            [audio, rate], tf.float32, stateful=False)
    return tf.reshape(out, [-1])


def decode_graph(path: tf.Tensor, codec: tf.Tensor, rate: tf.Tensor, target_rate: int,
                 max_seconds: float = 0.0) -> tf.Tensor:
    """Decodes one file inside a graph to mono float32 `[samples]` at `target_rate`.

    Args:
      path: scalar string tensor.
      codec: scalar int32, an index into CODECS (from `probe`).
      rate: scalar int64, the file's sample rate (from `probe`).
      target_rate: output rate in Hz.
      max_seconds: if > 0, keeps at most this much audio.
    """

    def python_branch():
        out = tf.numpy_function(
            lambda p: decode_python(p, target_rate, max_seconds), [path], tf.float32,
            stateful=False)
        return tf.reshape(out, [-1])

    if not tfio_available():
        return python_branch()

    def tfio_branch(decode):
        def run():
            audio = tf.reduce_mean(decode(), axis=1)  # downmix to mono
            if max_seconds > 0:
                audio = audio[: tf.cast(tf.cast(rate, tf.float32) * max_seconds, tf.int32)]
            return tf.cond(tf.equal(rate, target_rate), lambda: audio,
                           lambda: resample_graph(audio, rate, target_rate))
        return run

    contents = tf.io.read_file(path)
    branches = [python_branch] + [tfio_branch(fn) for fn in _tfio_branches(contents)]
    return tf.switch_case(tf.cast(codec, tf.int32), branches)
