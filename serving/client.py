"""Ask a generator server for samples and save them as PNG spectrograms and WAV audio.

    python -m serving.client --server http://127.0.0.1:8501 --count 4 --seed 0 --out samples/

Works against `python -m serving.server` and against real TensorFlow Serving: it only uses
TF Serving REST calls (model status, then predict with the `generate` signature for z and
spectrograms, then predict with the `audio` signature on those z). Both predicts go to the
version the status call reported, so a version swap between them cannot mix two models.
The sample rate comes from our server's `/v1/models/NAME/versions/N/config`; real TF Serving
has no such endpoint, so there `--sample-rate` is used.

From a notebook:

    from serving import client
    result = client.generate("http://127.0.0.1:8501", count=4, seed=0)
    paths = client.save(result, "samples/")
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional

import httpx
import numpy as np

DEFAULT_SAMPLE_RATE = 16000


class ServingClientError(RuntimeError):
    """A failure worth a one-line message: server unreachable, or it answered an error."""


def _call(client: httpx.Client, method: str, path: str, what: str, **kwargs) -> httpx.Response:
    try:
        return client.request(method, path, **kwargs)
    except httpx.ConnectError as e:
        raise ServingClientError(
            f"cannot reach the server at {client.base_url} ({e}); is it running? Start one "
            "with: python -m serving.server --model-base-path DIR") from None
    except httpx.TimeoutException:
        raise ServingClientError(
            f"{what}: no answer from {client.base_url} within {client.timeout.read} s "
            "(raise --timeout)") from None
    except httpx.HTTPError as e:
        raise ServingClientError(f"{what}: {type(e).__name__}: {e}") from None


def _json(response: httpx.Response, what: str) -> Any:
    try:
        body = response.json()  # json.loads: accepts TF Serving's NaN/Infinity tokens
    except ValueError:
        body = None
    if response.status_code != 200:
        detail = body.get("error") if isinstance(body, dict) and "error" in body \
            else response.text[:300].strip()
        raise ServingClientError(f"{what} failed: HTTP {response.status_code}: {detail}")
    if body is None:
        raise ServingClientError(f"{what}: the server did not answer with JSON")
    return body


def latest_version(client: httpx.Client, model: str) -> int:
    """The newest AVAILABLE version from TF Serving's model status API."""
    status = _json(_call(client, "GET", f"/v1/models/{model}", "model status"), "model status")
    versions = [int(s["version"]) for s in status.get("model_version_status", [])
                if s.get("state") == "AVAILABLE"]
    if not versions:
        raise ServingClientError(f"model {model!r} has no AVAILABLE version: {status}")
    return max(versions)


def predict(client: httpx.Client, prefix: str, signature: str, inputs: dict) -> Any:
    """Columnar-format predict; returns the `outputs` value."""
    what = f"predict with signature {signature!r}"
    body = {"signature_name": signature, "inputs": inputs}
    return _json(_call(client, "POST", f"{prefix}:predict", what, json=body), what)["outputs"]


def config_sample_rate(client: httpx.Client, prefix: str) -> Optional[int]:
    """`data.sample_rate` from our server's config endpoint; None where there is none."""
    try:
        response = client.get(f"{prefix}/config")
        config = response.json() if response.status_code == 200 else None
        return int(config["data"]["sample_rate"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


def generate(server: str, model: str = "generator", count: int = 4, seed: int = 0,
             timeout: float = 60.0, sample_rate: Optional[int] = None,
             version: Optional[int] = None) -> dict:
    """Generates `count` samples.

    Args:
      server: base URL, e.g. "http://127.0.0.1:8501".
      model: model name on the server.
      count: number of samples (the server may cap it).
      seed: seed of the latent draw; the same seed gives the same samples.
      timeout: seconds to wait for each HTTP call.
      sample_rate: used when the server does not publish the model's config
        (real TF Serving); default 16000.
      version: pin a model version instead of the newest available.

    Returns:
      dict with `z` [count, latent], `spectrogram` [count, H, W, 1] in [-1, 1], `audio`
      [count, samples] in [-1, 1] (float32 arrays), `sample_rate`, `model`, `version`.

    Raises:
      ServingClientError: unreachable server or an error answer (message from the server).
    """
    if count < 1:
        raise ValueError(f"count must be at least 1. Received: count={count}")
    with httpx.Client(base_url=server.rstrip("/"), timeout=timeout) as client:
        if version is None:
            version = latest_version(client, model)
        prefix = f"/v1/models/{model}/versions/{int(version)}"
        generated = predict(client, prefix, "generate", {"seed": int(seed), "count": int(count)})
        if not isinstance(generated, dict) or not {"z", "spectrogram"} <= set(generated):
            raise ServingClientError("the generate signature did not return z and spectrogram")
        audio = predict(client, prefix, "audio", {"z": generated["z"]})
        if isinstance(audio, dict):  # several outputs come back named
            audio = audio["audio"]
        rate = config_sample_rate(client, prefix) or sample_rate or DEFAULT_SAMPLE_RATE
    return {
        "z": np.asarray(generated["z"], np.float32),
        "spectrogram": np.asarray(generated["spectrogram"], np.float32),
        "audio": np.asarray(audio, np.float32),
        "sample_rate": int(rate),
        "model": model,
        "version": int(version),
    }


def spectrogram_image(spectrogram: np.ndarray, scale: int = 1):
    """A [H, W(, 1)] spectrogram in [-1, 1] as an RGB PIL image, low frequencies at the bottom.

    Row 0 of the model's spectrogram is the lowest frequency, so rows are flipped; the
    colormap is matplotlib's perceptually uniform "magma".
    """
    import matplotlib
    from PIL import Image

    s = np.asarray(spectrogram, np.float32)
    if s.ndim == 3:
        s = s[..., 0]
    unit = (np.clip(np.nan_to_num(s[::-1]), -1.0, 1.0) + 1.0) / 2.0
    rgb = matplotlib.colormaps["magma"](unit, bytes=True)[..., :3]
    image = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    return image


def save(result: dict, out_dir, scale: int = 1) -> list[Path]:
    """Writes `sample_K.png` and `sample_K.wav` (16-bit PCM) for K = 0..count-1.

    Returns:
      The written paths, PNG then WAV for each sample.
    """
    import soundfile as sf

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, (spec, audio) in enumerate(zip(result["spectrogram"], result["audio"])):
        png, wav = out / f"sample_{k}.png", out / f"sample_{k}.wav"
        spectrogram_image(spec, scale).save(png)
        sf.write(str(wav), np.clip(np.nan_to_num(audio), -1.0, 1.0), int(result["sample_rate"]),
                 subtype="PCM_16")
        paths += [png, wav]
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m serving.client",
                                description="Generate samples from a served generator.")
    p.add_argument("--server", default="http://127.0.0.1:8501", help="base URL of the server")
    p.add_argument("--model", default="generator", help="model name on the server")
    p.add_argument("--model-version", type=int, default=None,
                   help="pin this version (default: newest available)")
    p.add_argument("--count", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="samples", help="output directory")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per HTTP call")
    p.add_argument("--sample-rate", type=int, default=DEFAULT_SAMPLE_RATE,
                   help="WAV sample rate when the server does not publish the model config")
    p.add_argument("--scale", type=int, default=1, help="integer upscaling of the PNGs")
    args = p.parse_args(argv)
    if args.count < 1 or args.timeout <= 0 or args.sample_rate < 1 or args.scale < 1:
        p.error("--count, --timeout, --sample-rate and --scale must be positive")
    try:
        result = generate(args.server, args.model, args.count, args.seed, args.timeout,
                          args.sample_rate, args.model_version)
        paths = save(result, args.out, args.scale)
    except ServingClientError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: cannot write samples to {args.out}: {e}", file=sys.stderr)
        return 1
    print(f"{args.model} version {result['version']}: {len(result['audio'])} samples at "
          f"{result['sample_rate']} Hz")
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
