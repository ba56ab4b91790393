"""serving.client end to end against a live server: files written, errors reported."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import soundfile as sf
from PIL import Image

from serving import client

REPO = Path(__file__).resolve().parents[2]


def test_generate_and_save(live_server, shapes, tmp_path):
    result = client.generate(live_server.url, count=3, seed=5)
    assert result["version"] == 1
    assert result["sample_rate"] == shapes["sample_rate"]  # from assets.extra/config.json
    assert result["z"].shape == (3, shapes["latent_dim"])
    assert result["spectrogram"].shape == (3, shapes["height"], shapes["width"], 1)
    assert result["audio"].shape == (3, shapes["samples"])
    again = client.generate(live_server.url, count=3, seed=5)
    np.testing.assert_array_equal(again["audio"], result["audio"])  # seeded

    paths = client.save(result, tmp_path / "out")
    assert [p.name for p in paths] == ["sample_0.png", "sample_0.wav", "sample_1.png",
                                       "sample_1.wav", "sample_2.png", "sample_2.wav"]
    for k in range(3):
        with Image.open(tmp_path / "out" / f"sample_{k}.png") as image:
            assert image.format == "PNG" and image.mode == "RGB"
            assert image.size == (shapes["width"], shapes["height"])
            pixels = np.asarray(image)
        # Row 0 of the spectrogram (lowest frequency) is the bottom row of the image.
        row0 = (np.clip(result["spectrogram"][k, 0, :, 0], -1, 1) + 1) / 2
        expected = matplotlib.colormaps["magma"](row0, bytes=True)[..., :3]
        np.testing.assert_array_equal(pixels[-1], expected)

        audio, rate = sf.read(tmp_path / "out" / f"sample_{k}.wav", dtype="float32")
        info = sf.info(tmp_path / "out" / f"sample_{k}.wav")
        assert info.subtype == "PCM_16" and info.channels == 1
        assert rate == shapes["sample_rate"] and audio.shape == (shapes["samples"],)
        assert np.abs(audio).max() > 0.1, "model output is non-silent, so the WAV must be"
        np.testing.assert_allclose(audio, result["audio"][k], atol=2 / 32768)


def test_cli_writes_files(live_server, shapes, tmp_path):
    out = tmp_path / "cli"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "serving.client", "--server", live_server.url, "--count", "2",
         "--seed", "1", "--out", str(out), "--timeout", "30", "--scale", "4"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "version 1" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "sample_0.png", "sample_0.wav", "sample_1.png", "sample_1.wav"]
    with Image.open(out / "sample_1.png") as image:
        assert image.size == (shapes["width"] * 4, shapes["height"] * 4)
    assert sf.info(out / "sample_0.wav").frames == shapes["samples"]


def test_sample_rate_falls_back_without_config(live_server, tmp_path):
    """Real TF Serving publishes no config: the --sample-rate value is used."""
    model = live_server.app.state.store.current
    saved, model.config = model.config, None
    try:
        assert client.generate(live_server.url, count=1)["sample_rate"] == 16000
        assert client.main(["--server", live_server.url, "--count", "1", "--sample-rate", "22050",
                            "--out", str(tmp_path)]) == 0
        assert sf.info(tmp_path / "sample_0.wav").samplerate == 22050
    finally:
        model.config = saved


def test_unreachable_server_is_one_clear_line(capsys, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    assert client.main(["--server", url, "--out", str(tmp_path), "--timeout", "5"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach the server at " + url)
    assert "Traceback" not in err


def test_server_errors_are_reported(live_server, capsys, tmp_path):
    assert client.main(["--server", live_server.url, "--model", "nope", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "HTTP 404" in err and "Could not find any versions of model nope" in err
    assert "Traceback" not in err
    # Too many samples for the server's batch limit: the server's message comes through.
    assert client.main(["--server", live_server.url, "--count", "100", "--out", str(tmp_path)]) == 1
    assert "maximum input batch size" in capsys.readouterr().err
