"""Sound recipes of the built-in dataset: one function per family of classes.

`tfgan.data.synthetic` picks the recipe for a class, then normalises and writes the
result; this module only makes the raw waveforms. Design constraints, all coming from how
the pipeline consumes the files:

* Training takes *random* crops of about 0.5 s, so every class repeats its structure
  throughout the second (drum hits every 0.15-0.35 s, plucks and bells re-struck every
  0.25-0.5 s, chirps sweeping in 0.3-1.0 s segments, tones sustained).
* The CPU preset resamples to 8 kHz, so fundamentals stay in roughly 100-1000 Hz and the
  defining structure stays under 4 kHz; only the hi-hat and snare noise reach higher.
* Classes must look different in a spectrogram: harmonic stacks (tones, pluck),
  inharmonic partials (bell), sweeps (chirps) and percussive onsets (drums).

Every recipe draws all its randomness from the caller's ``numpy.random.Generator``, in a
fixed order, so the same generator state gives the same sound. Each returns an unnormalised
float64 waveform of ``n`` samples (``len(t)`` for the sustained ones).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy import signal

# Structure the 8 kHz preset must keep lies below its 4 kHz Nyquist; a little margin
# keeps it clear of the resampler's anti-aliasing roll-off.
_KEEP_BELOW_HZ = 3800.0

_TWO_PI = 2.0 * np.pi


# --------------------------------------------------------------------------------------
# Small building blocks
# --------------------------------------------------------------------------------------


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """Draws from a log-uniform distribution, so pitches are spread evenly in octaves."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _max_partial_hz(sample_rate: int) -> float:
    """Highest frequency a partial may have without aliasing (with a 10% margin)."""
    return 0.45 * sample_rate


def _harmonic_stack(
    phase: np.ndarray,
    f0_max: float,
    sample_rate: int,
    weight: Callable[[int], float],
) -> np.ndarray:
    """Sums sine harmonics of a fundamental phase, stopping below Nyquist.

    Summing partials instead of evaluating a naive square or sawtooth avoids the
    aliased partials that would fold back as spurious inharmonic lines.

    Args:
        phase: Instantaneous phase of the fundamental, in radians.
        f0_max: Highest instantaneous fundamental frequency reached, in Hz; it sets
            how many harmonics fit below Nyquist.
        sample_rate: Sampling rate in Hz.
        weight: Amplitude of harmonic ``k`` (1-based); zero skips it.

    Returns:
        The summed waveform (not normalised).
    """
    n_harmonics = max(1, int(_max_partial_hz(sample_rate) // f0_max))
    out = np.zeros_like(phase)
    for k in range(1, n_harmonics + 1):
        w = weight(k)
        if w:
            out += w * np.sin(k * phase)
    return out


def _slow_envelope(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """A smooth random amplitude envelope: two slow swells and a light tremolo.

    The envelope stays within about [0.35, 1.6], so a sustained tone never vanishes in a
    random crop but still has a visibly varying level.
    """
    env = np.ones_like(t)
    for _ in range(2):
        rate = rng.uniform(0.3, 3.0)
        depth = rng.uniform(0.05, 0.25)
        env += depth * np.sin(_TWO_PI * rate * t + rng.uniform(0.0, _TWO_PI))
    tremolo_rate = rng.uniform(3.0, 8.0)
    tremolo_depth = rng.uniform(0.0, 0.15)
    env *= 1.0 + tremolo_depth * np.sin(_TWO_PI * tremolo_rate * t + rng.uniform(0.0, _TWO_PI))
    return env


def edge_fade(y: np.ndarray, sample_rate: int, seconds: float = 0.005) -> np.ndarray:
    """Applies short linear fades at both ends so the file edges do not click."""
    n = min(len(y) // 2, max(1, int(seconds * sample_rate)))
    ramp = np.linspace(0.0, 1.0, n, endpoint=False)
    y = y.copy()
    y[:n] *= ramp
    y[len(y) - n :] *= ramp[::-1]
    return y


def _periodic_onsets(
    rng: np.random.Generator, seconds: float, low: float, high: float, jitter: float
) -> np.ndarray:
    """Onset times (s) at a random tempo with small timing jitter.

    The first onset may lie before 0, so a file can open on the tail of a hit, as an
    arbitrary excerpt of a drum loop would.
    """
    period = rng.uniform(low, high)
    start = rng.uniform(-0.5 * period, 0.5 * period)
    count = int(np.ceil((seconds - start) / period)) + 1
    times = start + period * np.arange(count) + rng.normal(0.0, jitter, count)
    return np.sort(times[times < seconds])


def _random_onsets(
    rng: np.random.Generator, seconds: float, low: float, high: float
) -> np.ndarray:
    """Onset times (s) with independent random gaps in [low, high], e.g. for re-strikes."""
    times = [rng.uniform(-0.2, 0.05)]
    while True:
        nxt = times[-1] + rng.uniform(low, high)
        if nxt >= seconds:
            break
        times.append(nxt)
    return np.asarray(times)


def _place(out: np.ndarray, event: np.ndarray, start: int) -> None:
    """Adds ``event`` into ``out`` beginning at sample ``start`` (which may be < 0)."""
    lo = max(start, 0)
    hi = min(start + len(event), len(out))
    if hi > lo:
        out[lo:hi] += event[lo - start : hi - start]


def _render_events(
    n: int,
    sample_rate: int,
    onsets: Sequence[float],
    event: Callable[[np.ndarray, int], np.ndarray],
    max_len_s: float,
) -> np.ndarray:
    """Sums one rendered event per onset.

    Args:
        n: Output length in samples.
        sample_rate: Sampling rate in Hz.
        onsets: Onset times in seconds (may be negative).
        event: Called with the time since onset (s) for ``max_len_s`` seconds and the
            onset's index; returns the event waveform of the same length.
        max_len_s: How long each event is rendered; beyond it the event is negligible.

    Returns:
        The mixed waveform, float64.
    """
    out = np.zeros(n)
    tau = np.arange(int(max_len_s * sample_rate)) / sample_rate
    for i, t0 in enumerate(onsets):
        _place(out, event(tau, i), int(round(t0 * sample_rate)))
    return out


# --------------------------------------------------------------------------------------
# Recipes
# --------------------------------------------------------------------------------------


def tone(rng: np.random.Generator, t: np.ndarray, sample_rate: int, kind: str) -> np.ndarray:
    """Sustained sine, square or sawtooth with a random pitch, light vibrato and swells."""
    if kind == "sine":
        f0 = _log_uniform(rng, 200.0, 1000.0)
        weight = lambda k: 1.0 if k == 1 else 0.0  # noqa: E731
    elif kind == "square":
        # Fundamentals above ~180 Hz keep the stack resolvable at the 8 kHz preset's
        # 62.5 Hz bin spacing; lower ones smear into a band.
        f0 = _log_uniform(rng, 180.0, 650.0)
        weight = lambda k: 1.0 / k if k % 2 else 0.0  # noqa: E731
    else:  # sawtooth
        f0 = _log_uniform(rng, 180.0, 650.0)
        weight = lambda k: (-1.0) ** (k + 1) / k  # noqa: E731
    # A little vibrato keeps the tones from being perfectly static lines, while staying
    # far too small to blur the harmonic stack at the pipeline's frequency resolution.
    vib_depth = rng.uniform(0.0, 0.006)
    vib_rate = rng.uniform(4.0, 6.5)
    inst_f = f0 * (1.0 + vib_depth * np.sin(_TWO_PI * vib_rate * t + rng.uniform(0.0, _TWO_PI)))
    phase = _TWO_PI * np.cumsum(inst_f) / sample_rate + rng.uniform(0.0, _TWO_PI)
    y = _harmonic_stack(phase, f0 * (1.0 + vib_depth), sample_rate, weight)
    return y * _slow_envelope(rng, t)


def chirp(rng: np.random.Generator, t: np.ndarray, sample_rate: int, rising: bool) -> np.ndarray:
    """Exponential sweeps of one to two octaves, repeated in segments of 0.3-0.75 s.

    Segments stay well under a second so that any 0.5 s crop holds most of a sweep; the
    file starts at a random point inside a segment so the wrap position varies.
    """
    seg = rng.uniform(0.3, 0.75)
    ratio = 2.0 ** rng.uniform(1.0, 2.0)
    f_low = _log_uniform(rng, 150.0, min(600.0, 3200.0 / ratio))
    tau = (t + rng.uniform(0.0, seg)) % seg
    u = tau / seg if rising else 1.0 - tau / seg
    inst_f = f_low * ratio**u
    phase = _TWO_PI * np.cumsum(inst_f) / sample_rate
    y = np.sin(phase)
    if 2.0 * f_low * ratio < _max_partial_hz(sample_rate):
        # A weak second harmonic makes the sweep look less synthetic without ever
        # competing with the fundamental for the per-frame peak.
        y += rng.uniform(0.0, 0.3) * np.sin(2.0 * phase)
    # Fade in and out at every segment boundary: the jump back to the start frequency
    # then reads as a new sweep instead of a click spraying energy over all bins.
    fade = 0.015
    seg_env = np.clip(np.minimum(tau, seg - tau) / fade, 0.0, 1.0)
    return y * seg_env * _slow_envelope(rng, t)


_STEPS = np.array([-7, -5, -3, 0, 0, 2, 4, 5, 7, 9, 12])


def _melody(rng: np.random.Generator, n_notes: int, low: float, high: float) -> np.ndarray:
    """Pitches for re-struck notes: the same pitch again or a small interval away."""
    base = _log_uniform(rng, low, high)
    pitches = [base]
    for _ in range(n_notes - 1):
        if rng.uniform() < 0.4:
            pitches.append(pitches[-1])
        else:
            f = base * 2.0 ** (rng.choice(_STEPS) / 12.0)
            pitches.append(float(np.clip(f, 100.0, 1000.0)))
    return np.asarray(pitches)


def _karplus_strong(
    rng: np.random.Generator, f0: float, n: int, sample_rate: int, t60: float
) -> np.ndarray:
    """A plucked string: a noise burst recirculating through a damped averaging loop.

    Written as one IIR filter ``y[n] = x[n] + g/2 (y[n-N] + y[n-N-1])`` so scipy runs the
    whole note in C rather than a Python loop over periods. The averaging makes high
    harmonics die faster than the fundamental, the pluck's characteristic darkening.
    """
    delay = max(2, int(round(sample_rate / f0 - 0.5)))
    periods_per_s = sample_rate / (delay + 0.5)
    gain = 10.0 ** (-3.0 / (t60 * periods_per_s))  # -60 dB after t60 seconds
    excitation = np.zeros(n)
    burst = rng.uniform(-1.0, 1.0, delay)
    # A one-pole low-pass on the burst is the usual "softer pick" variant: it lowers the
    # broadband click at the onset relative to the ringing harmonics.
    softness = rng.uniform(0.2, 0.7)
    burst = signal.lfilter([1.0 - softness], [1.0, -softness], burst)
    excitation[:delay] = burst - burst.mean()  # no DC: it would never decay
    a = np.zeros(delay + 2)
    a[0] = 1.0
    a[delay] = a[delay + 1] = -0.5 * gain
    return signal.lfilter([1.0], a, excitation)


def pluck(rng: np.random.Generator, n: int, sample_rate: int, seconds: float) -> np.ndarray:
    """Karplus-Strong plucks re-struck every 0.25-0.5 s, each damping the previous one."""
    onsets = _random_onsets(rng, seconds, 0.25, 0.5)
    pitches = _melody(rng, len(onsets), 110.0, 660.0)
    t60 = rng.uniform(1.0, 2.5)
    out = np.zeros(n)
    release = int(0.02 * sample_rate)
    for i, (t0, f0) in enumerate(zip(onsets, pitches)):
        end = onsets[i + 1] if i + 1 < len(onsets) else seconds
        length = int(round((end - t0) * sample_rate)) + release
        note = _karplus_strong(rng, f0, length, sample_rate, t60)
        # Re-striking the string stops the old vibration: a short release ramp instead
        # of overlapping stacks keeps each note's harmonics distinct in a spectrogram.
        note[-release:] *= np.linspace(1.0, 0.0, release)
        _place(out, note * rng.uniform(0.7, 1.0), int(round(t0 * sample_rate)))
    return out


# Modulator-to-carrier ratios away from small integers give inharmonic sidebands: the
# difference between a bell and a harmonic instrument.
_BELL_RATIOS = np.array([1.4, 1.73, 2.41, 2.76, 3.5])


def fm_bell(rng: np.random.Generator, n: int, sample_rate: int, seconds: float) -> np.ndarray:
    """Two-operator FM bells re-struck every 0.25-0.5 s, left ringing under each other."""
    onsets = _random_onsets(rng, seconds, 0.25, 0.5)
    pitches = _melody(rng, len(onsets), 200.0, 700.0)
    ratio = float(rng.choice(_BELL_RATIOS))
    tau_amp = rng.uniform(0.2, 0.5)
    tau_index = tau_amp * rng.uniform(0.3, 0.6)  # brightness fades before loudness
    limit = min(_KEEP_BELOW_HZ, _max_partial_hz(sample_rate))

    def strike(tau: np.ndarray, i: int) -> np.ndarray:
        fc = pitches[i]
        fm = fc * ratio
        # Sidebands of order above index+1 are negligible; cap the index so the strong
        # ones stay below 3.8 kHz (the 8 kHz preset keeps them, nothing aliases).
        index = min(rng.uniform(1.5, 4.0), max(0.5, (limit - fc) / fm - 1.5))
        attack = np.clip(tau / 0.003, 0.0, 1.0)
        env = attack * np.exp(-tau / tau_amp)
        mod = index * np.exp(-tau / tau_index) * np.sin(_TWO_PI * fm * tau)
        return rng.uniform(0.7, 1.0) * env * np.sin(_TWO_PI * fc * tau + mod)

    return _render_events(n, sample_rate, onsets, strike, max_len_s=5.0 * tau_amp)


def kick(rng: np.random.Generator, n: int, sample_rate: int, seconds: float) -> np.ndarray:
    """Kick drum: a sine whose pitch drops from ~150 Hz to ~50 Hz, with a fast decay."""
    onsets = _periodic_onsets(rng, seconds, 0.15, 0.35, jitter=0.005)
    f_hi = rng.uniform(130.0, 180.0)
    f_lo = rng.uniform(40.0, 60.0)
    tau_f = rng.uniform(0.02, 0.05)
    tau_a = rng.uniform(0.06, 0.12)
    click_level = rng.uniform(0.05, 0.2)
    sos_click = signal.butter(
        2, min(3000.0, 0.4 * sample_rate), "low", fs=sample_rate, output="sos"
    )

    def hit(tau: np.ndarray, i: int) -> np.ndarray:
        # Phase is the closed-form integral of f(t) = f_lo + (f_hi - f_lo) exp(-t/tau_f).
        phase = _TWO_PI * (f_lo * tau + (f_hi - f_lo) * tau_f * (1.0 - np.exp(-tau / tau_f)))
        body = np.sin(phase) * np.exp(-tau / tau_a)
        # The beater click gives the onset a broadband edge, as on a real kick.
        click = signal.sosfilt(sos_click, rng.standard_normal(len(tau))) * np.exp(-tau / 0.003)
        return rng.uniform(0.75, 1.0) * (body + click_level * click)

    return _render_events(n, sample_rate, onsets, hit, max_len_s=6.0 * tau_a)


def snare(rng: np.random.Generator, n: int, sample_rate: int, seconds: float) -> np.ndarray:
    """Snare drum: a band-passed noise burst over a short ~200 Hz body."""
    onsets = _periodic_onsets(rng, seconds, 0.15, 0.35, jitter=0.005)
    f_body = rng.uniform(170.0, 240.0)
    tau_body = rng.uniform(0.02, 0.045)
    tau_noise = rng.uniform(0.04, 0.09)
    noise_level = rng.uniform(0.7, 1.2)
    sos_noise = signal.butter(
        2, [800.0, min(7000.0, 0.45 * sample_rate)], "band", fs=sample_rate, output="sos"
    )

    def hit(tau: np.ndarray, i: int) -> np.ndarray:
        body = np.sin(_TWO_PI * f_body * tau) * np.exp(-tau / tau_body)
        noise = signal.sosfilt(sos_noise, rng.standard_normal(len(tau))) * np.exp(-tau / tau_noise)
        # Band-passed white noise has a much smaller RMS than the sine; scale it so the
        # rattle, not the body, dominates, as it does on a snare.
        return rng.uniform(0.75, 1.0) * (0.6 * body + noise_level * 2.0 * noise)

    return _render_events(n, sample_rate, onsets, hit, max_len_s=6.0 * tau_noise)


def hihat(rng: np.random.Generator, n: int, sample_rate: int, seconds: float) -> np.ndarray:
    """Closed hi-hat: high-passed noise with a very short decay."""
    onsets = _periodic_onsets(rng, seconds, 0.15, 0.3, jitter=0.004)
    # The cutoff stays below 3.5 kHz (and below Nyquist at low rates) so the 8 kHz
    # preset still sees the top of the band; above it the noise runs up to Nyquist.
    cutoff = min(rng.uniform(2500.0, 3500.0), 0.38 * sample_rate)
    tau = rng.uniform(0.01, 0.03)
    sos = signal.butter(4, cutoff, "high", fs=sample_rate, output="sos")

    def hit(tau_s: np.ndarray, i: int) -> np.ndarray:
        noise = signal.sosfilt(sos, rng.standard_normal(len(tau_s)))
        return rng.uniform(0.6, 1.0) * noise * np.exp(-tau_s / tau)

    return _render_events(n, sample_rate, onsets, hit, max_len_s=8.0 * tau)
