"""The native-log filter: known TensorFlow noise dropped, everything else passed through."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tfgan.console import NOISE, is_noise

ROOT = Path(__file__).resolve().parents[1]

CUFFT = ("2026-11-29 23:42:40.977970: E external/local_xla/xla/stream_executor/cuda/"
         "cuda_fft.cc:479] Unable to register cuFFT factory: Attempting to register factory "
         "for plugin cuFFT when one has already been registered")
REMAPPER = ("2026-11-29 23:43:04.511209: E tensorflow/core/grappler/optimizers/"
            "meta_optimizer.cc:961] remapper failed: INVALID_ARGUMENT: Mutation::Apply error: "
            "fanout 'StatefulPartitionedCall/gradient_tape/simple_discriminator_1/LeakyRelu_3/"
            "LeakyReluGrad_1' exist for missing node 'StatefulPartitionedCall/"
            "simple_discriminator_1/conv2d_3_1/BiasAdd'.")
OTHER_REMAPPER = ("2026-11-29 23:43:04.511209: E tensorflow/core/grappler/optimizers/"
                  "meta_optimizer.cc:961] remapper failed: INVALID_ARGUMENT: something else")


def test_only_the_known_lines_are_noise():
    assert is_noise(CUFFT) and is_noise(REMAPPER)
    assert not is_noise(OTHER_REMAPPER)  # an unknown remapper failure is still shown
    assert not is_noise("Traceback (most recent call last):")
    assert len(NOISE) == 3


def test_native_writes_are_filtered_and_a_traceback_still_reaches_the_console():
    script = textwrap.dedent(f"""
        import os, sys
        from tfgan.console import quiet_native_logs
        quiet_native_logs()
        os.write(2, {CUFFT!r}.encode() + b"\\n" + b"native error kept\\n")
        os.write(2, b"progress 1/2\\r")
        print("python warning kept", file=sys.stderr)
        sys.exit("fatal: kept")
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1
    assert "Unable to register" not in proc.stderr
    for kept in ("native error kept", "progress 1/2", "python warning kept", "fatal: kept"):
        assert kept in proc.stderr, proc.stderr


def test_an_uncaught_exception_is_printed_in_full():
    script = ("from tfgan.console import quiet_native_logs\n"
              "quiet_native_logs()\n"
              "raise RuntimeError('the cause')\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.rstrip().endswith("RuntimeError: the cause")
