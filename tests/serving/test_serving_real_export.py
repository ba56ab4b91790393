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


def test_a_conditional_model_generates_the_class_asked_for(conditional_exported, conditional_run,
                                                           server_factory, tmp_path):
    import httpx
    import pytest

    from serving import client
    from tfgan.rundir import RunDir, load_generator

    base, _ = conditional_exported
    g, _, _, _ = load_generator(RunDir(conditional_run))
    with server_factory(base) as server:
        kicks = client.generate(server.url, count=2, seed=3, label="kick")
        every = client.generate(server.url, count=4, seed=3)
        paths = client.save(kicks, tmp_path / "out")
        prefix = f"{server.url}/v1/models/generator:predict"
        z = every["z"][:1].tolist()
        columnar = httpx.post(prefix, json={"signature_name": "spectrogram_by_name",
                                            "inputs": {"z": z, "class_name": ["cowbell"]}})
        row = httpx.post(prefix, json={"signature_name": "spectrogram_by_name",
                                       "instances": [{"z": z[0], "class_name": "cowbell"}]})
        by_row = httpx.post(prefix, json={"signature_name": "spectrogram_by_name",
                                          "instances": [{"z": z[0], "class_name": "snare"}]})
        with pytest.raises(client.ServingClientError, match="cowbell"):
            client.generate(server.url, count=1, label="cowbell")

    assert kicks["classes"] == ["kick", "sine", "snare"]
    assert kicks["label"].tolist() == [0, 0] and every["label"].tolist() == [0, 1, 2, 0]
    np.testing.assert_allclose(kicks["spectrogram"], g(kicks["z"], kicks["label"],
                                                       training=False).numpy(), atol=1e-5)
    assert sorted(p.name for p in paths) == ["sample_0_kick.png", "sample_0_kick.wav",
                                             "sample_1_kick.png", "sample_1_kick.wav"]
    for r in (columnar, row):
        assert r.status_code == 400
        assert "unknown class name: cowbell" in r.json()["error"]
        assert "kick, sine, snare" in r.json()["error"]
        assert "{{" not in r.json()["error"]  # no graph-function names for the client
    assert by_row.status_code == 200
    pred = by_row.json()["predictions"][0]
    assert pred["label"] == 2
    np.testing.assert_allclose(pred["spectrogram"], g(np.array(z, np.float32), np.array([2]),
                                                      training=False).numpy()[0], atol=1e-5)


def test_a_label_for_an_unconditional_model_is_refused(exported, server_factory):
    import pytest

    from serving import client

    with server_factory(exported[0]) as server:
        with pytest.raises(client.ServingClientError, match="not class-conditional"):
            client.generate(server.url, count=1, label="kick")
