"""Ask a generator server for samples and save them as PNG spectrograms and WAV audio.

    python -m serving.client --server http://127.0.0.1:8501 --count 4 --seed 0 --out samples/
    python -m serving.client --label kick       # a class-conditional model: ask for a class

Works against `python -m serving.server` and against real TensorFlow Serving: it only uses
TF Serving REST calls (model status, then predict with the `generate` signature for z and
spectrograms, then predict with the `audio` signature on those z). Both predicts go to the
version the status call reported, so a version swap between them cannot mix two models.
For a class-conditional model (its `generate` signature takes a `label`, as the metadata
call shows) the class goes by name to `generate_by_name`, or -1 (every class in turn)
to `generate`; the returned class indices go with z to `audio`.
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


def served_config(client: httpx.Client, prefix: str) -> dict:
    """The model's config.json from our server's config endpoint; {} where there is none."""
    try:
        response = client.get(f"{prefix}/config")
        config = response.json() if response.status_code == 200 else None
        return config if isinstance(config, dict) else {}
    except (httpx.HTTPError, ValueError):
        return {}


def config_sample_rate(config: dict) -> Optional[int]:
    try:
        return int(config["data"]["sample_rate"])
    except (KeyError, TypeError, ValueError):
        return None


def signature_inputs(client: httpx.Client, prefix: str, signature: str) -> set:
    """Input names of one signature, from TF Serving's metadata API."""
    meta = _json(_call(client, "GET", f"{prefix}/metadata", "model metadata"), "model metadata")
    try:
        return set(meta["metadata"]["signature_def"]["signature_def"][signature]["inputs"])
    except (KeyError, TypeError):
        raise ServingClientError(f"the model has no {signature!r} signature") from None


def generate(server: str, model: str = "generator", count: int = 4, seed: int = 0,
             timeout: float = 60.0, sample_rate: Optional[int] = None,
             version: Optional[int] = None, label: Optional[str] = None) -> dict:
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
      label: a class name, for a class-conditional model (None: every class in turn).

    Returns:
      dict with `z` [count, latent], `spectrogram` [count, H, W, 1] in [-1, 1], `audio`
      [count, samples] in [-1, 1] (float32 arrays), `sample_rate`, `model`, `version`;
      for a conditional model also `label` [count] (class indices) and `classes` (their
      names where the server publishes the config, else []).

    Raises:
      ServingClientError: unreachable server or an error answer (message from the server).
    """
    if count < 1:
        raise ValueError(f"count must be at least 1. Received: count={count}")
    with httpx.Client(base_url=server.rstrip("/"), timeout=timeout) as client:
        if version is None:
            version = latest_version(client, model)
        prefix = f"/v1/models/{model}/versions/{int(version)}"
        conditional = "label" in signature_inputs(client, prefix, "generate")
        if label is not None and not conditional:
            raise ServingClientError(f"model {model!r} is not class-conditional, so it takes "
                                     "no --label (train with --conditional to get one)")
        inputs = {"seed": int(seed), "count": int(count)}
        if label is not None:
            generated = predict(client, prefix, "generate_by_name",
                                {**inputs, "class_name": str(label)})
        else:
            generated = predict(client, prefix, "generate",
                                {**inputs, **({"label": -1} if conditional else {})})
        if not isinstance(generated, dict) or not {"z", "spectrogram"} <= set(generated):
            raise ServingClientError("the generate signature did not return z and spectrogram")
        audio = predict(client, prefix, "audio", {
            "z": generated["z"], **({"label": generated["label"]} if conditional else {})})
        if isinstance(audio, dict):  # several outputs come back named
            audio = audio["audio"]
        config = served_config(client, prefix)
        rate = config_sample_rate(config) or sample_rate or DEFAULT_SAMPLE_RATE
    result = {
        "z": np.asarray(generated["z"], np.float32),
        "spectrogram": np.asarray(generated["spectrogram"], np.float32),
        "audio": np.asarray(audio, np.float32),
        "sample_rate": int(rate),
        "model": model,
        "version": int(version),
    }
    if conditional:
        result["label"] = np.asarray(generated["label"], np.int32)
        result["classes"] = list((config.get("model") or {}).get("classes") or [])
    return result


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
    """Writes `sample_K.png` and `sample_K.wav` (16-bit PCM) for K = 0..count-1
    (`sample_K_<class>` when the class of a conditional model's sample is known).

    Returns:
      The written paths, PNG then WAV for each sample.
    """
    import soundfile as sf

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, (spec, audio) in enumerate(zip(result["spectrogram"], result["audio"])):
        stem = f"sample_{k}"
        if "label" in result and len(result["classes"]) > int(result["label"][k]):
            stem += f"_{result['classes'][int(result['label'][k])]}"
        png, wav = out / f"{stem}.png", out / f"{stem}.wav"
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
    p.add_argument("--label", metavar="NAME",
                   help="class to generate, for a class-conditional model (default: every "
                        "class in turn)")
    args = p.parse_args(argv)
    if args.count < 1 or args.timeout <= 0 or args.sample_rate < 1 or args.scale < 1:
        p.error("--count, --timeout, --sample-rate and --scale must be positive")
    try:
        result = generate(args.server, args.model, args.count, args.seed, args.timeout,
                          args.sample_rate, args.model_version, args.label)
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
