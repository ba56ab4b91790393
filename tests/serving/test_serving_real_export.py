"""The path a user follows: train -> export -> built-in server -> client writes PNG and WAV."""

import json

import numpy as np
import soundfile as sf
from PIL import Image


def test_client_hears_the_exported_generator(exported, server_factory, tmp_path):
    from serving import client

    base, version_dir = exported
    config = json.loads((version_dir / "assets.extra" / "config.json").read_text())
    with server_factory(base) as server:
        result = client.generate(server.url, count=3, seed=11)
        paths = client.save(result, tmp_path / "out")
        again = client.generate(server.url, count=3, seed=11)

    assert result["sample_rate"] == config["data"]["sample_rate"] == 8000
    np.testing.assert_array_equal(result["z"], again["z"])  # the seed makes it reproducible
    pngs = sorted(p for p in paths if p.suffix == ".png")
    wavs = sorted(p for p in paths if p.suffix == ".wav")
    assert len(pngs) == len(wavs) == 3
    for png, wav in zip(pngs, wavs):
        with Image.open(png) as im:
            assert im.size == (64, 64)
        wave, rate = sf.read(wav)
        hop, n_fft, frames = (config["data"][k] for k in ("hop_length", "n_fft", "n_frames"))
        assert rate == 8000 and wave.shape == (hop * (frames - 1) + n_fft,)
        assert np.sqrt(np.mean(wave ** 2)) > 1e-4  # not silence
