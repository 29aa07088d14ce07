"""Synthetic seismic facies patches: parallel, channel fill, levee/wedge, chaotic MTD.

A seismic section is an image of echoes: wherever the acoustic impedance of
the rock changes (a bed boundary), part of the sound wave reflects. The
recorded trace is the *reflectivity series* convolved with the source
*wavelet*. Interpreters classify facies by the geometry of the reflectors
(parallel, divergent, concave-up, chaotic), their lateral continuity and
their amplitude. The generator follows that convolutional model:

1. Build a *relative geologic time* field tau(x, z): beds are its level sets.
   Each facies shapes tau differently (see below), and tilts it by a regional
   dip; some patches are cut by a normal fault that offsets everything.
2. Give every bed an impedance (a random walk of layer values over tau) and
   take the vertical change of log impedance: the reflectivity.
3. Convolve every trace with a Ricker wavelet of random frequency and phase,
   add band-limited noise, and scale by a random display gain and polarity.

Facies (label order):

* **parallel**: continuous, parallel reflectors of steady amplitude
  (hemipelagic drape, sheet sands); only gentle dip and undulation.
* **channel_fill**: a concave-up erosional surface truncates the beds below
  it; the fill has its own impedance series, onlapping or draping reflectors
  and often a bright base.
* **levee_wedge**: a wedge in which reflectors diverge toward the thick end
  (levee or prograding wedge) and converge/downlap toward the thin end.
* **chaotic_mtd**: a mass-transport deposit: a zone of contorted,
  discontinuous, dimmer reflectors between continuous ones, with a rugose top.

All lengths are in field-of-view units (the patch is 1 x 1; z points down).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from synth._common import SUPERSAMPLE, blend_ranges, downsample, draw, pixel_grid, smooth_noise

CLASSES = ("parallel", "channel_fill", "levee_wedge", "chaotic_mtd")

# Shared geometry parameters; each facies is a region of this space and the
# ``overlap`` knob pulls the regions together.
#   continuity  lateral continuity of reflectors (1 = unbroken)
#   divergence  how strongly beds thicken across the patch (wedge)
#   incision    depth of an erosional channel (0 = none)
#   chaos       thickness share of a chaotic, contorted zone (0 = none)
PARAMS: dict[str, dict[str, tuple[float, float]]] = {
    "parallel": {
        "continuity": (0.80, 1.00),
        "divergence": (0.00, 0.20),
        "incision": (0.00, 0.05),
        "chaos": (0.00, 0.05),
    },
    "channel_fill": {
        "continuity": (0.65, 0.95),
        "divergence": (0.00, 0.20),
        "incision": (0.55, 1.00),
        "chaos": (0.00, 0.08),
    },
    "levee_wedge": {
        "continuity": (0.65, 0.95),
        "divergence": (0.60, 0.95),
        "incision": (0.00, 0.05),
        "chaos": (0.00, 0.05),
    },
    "chaotic_mtd": {
        "continuity": (0.05, 0.40),
        "divergence": (0.00, 0.30),
        "incision": (0.00, 0.08),
        "chaos": (0.50, 0.90),
    },
}

_TAU = np.linspace(-2.0, 3.0, 5001)  # relative-time axis of the impedance logs


def render(
    class_id: int,
    params: np.random.Generator,
    pixels: np.random.Generator,
    size: int,
    noise: float,
    overlap: float,
) -> np.ndarray:
    """One seismic patch, float grayscale in [0, 1] (0.5 = zero amplitude), (size, size)."""
    p = draw(params, blend_ranges(PARAMS, CLASSES[class_id], overlap))
    n = size * SUPERSAMPLE
    x, z = pixel_grid(n)

    dip = params.uniform(-0.25, 0.25)
    period = params.uniform(0.07, 0.13)  # dominant wavelet period, FOV units
    phase = params.uniform(-40, 40)  # degrees; zero-phase is the ideal, rarely the reality
    polarity = params.choice([-1.0, 1.0])  # SEG normal or reverse display
    # A normal fault (30% of patches): everything on the hanging wall drops by `throw`.
    if params.random() < 0.3:
        xf, lean, throw = params.uniform(0.2, 0.8), params.uniform(-0.5, 0.5), params.uniform(0.03, 0.12)
        z = z - throw * (x > xf + lean * (z - 0.5))
    wiggle = (1 - p["continuity"]) * 0.03 + 0.003
    tau = z - dip * (x - 0.5) + wiggle * smooth_noise(pixels, n, 0.06)
    zone = np.zeros((n, n), dtype=np.int64)  # which impedance series: 0 host, 1 channel, 2 MTD
    amp = np.ones((n, n))

    if p["divergence"] > 0.02:
        tau = _wedge(tau, x, z, dip, p["divergence"], params)
    if p["incision"] > 0.06:
        tau, zone = _channel(tau, zone, x, z, dip, p["incision"], params)
    if p["chaos"] > 0.06:
        tau, zone, amp = _chaotic(tau, zone, amp, x, z, p["chaos"], params, pixels, n)

    # Poorly continuous reflectors: amplitude that wanders along each reflector.
    lateral = ndimage.gaussian_filter(pixels.standard_normal((n, n)), (0.01 * n, 0.08 * n), mode="wrap")
    lateral /= lateral.std()
    amp = amp * np.clip(1 + (1 - p["continuity"]) * 0.8 * lateral, 0.05, None)

    logs = _impedance_logs(params)
    idx = np.clip(np.searchsorted(_TAU, tau), 0, len(_TAU) - 1)
    log_imp = logs[zone, idx]
    refl = np.zeros((n, n))
    refl[1:] = np.diff(log_imp, axis=0)  # reflectivity: vertical change of log impedance
    refl *= amp

    wavelet = _ricker(period * n, phase)
    trace = ndimage.convolve1d(refl, wavelet, axis=0, mode="reflect")
    rms = np.sqrt(np.mean(trace**2)) + 1e-12
    band_noise = ndimage.convolve1d(pixels.standard_normal((n, n)), wavelet, axis=0, mode="reflect")
    band_noise = ndimage.gaussian_filter1d(band_noise, 0.6, axis=1)
    band_noise *= rms / (np.sqrt(np.mean(band_noise**2)) + 1e-12)
    trace = trace + noise * params.uniform(0.08, 0.3) * band_noise

    trace = downsample(trace, SUPERSAMPLE)
    gain = params.uniform(0.22, 0.40)  # display clip: strong events saturate
    img = 0.5 + polarity * gain * trace / (np.sqrt(np.mean(trace**2)) + 1e-12)
    return np.clip(img, 0.0, 1.0)


def _ricker(period_px: float, phase_deg: float) -> np.ndarray:
    """Ricker (Mexican-hat) wavelet of dominant period ``period_px`` samples, phase-rotated."""
    f = 1.0 / period_px
    half = int(math.ceil(1.5 * period_px))
    t = np.arange(-half, half + 1, dtype=np.float64)
    arg = (math.pi * f * t) ** 2
    w = (1 - 2 * arg) * np.exp(-arg)
    # Constant phase rotation: mix the wavelet with its Hilbert transform.
    rot = math.radians(phase_deg)
    w = math.cos(rot) * w + math.sin(rot) * _hilbert(w)
    return w / np.sqrt(np.sum(w**2))


def _hilbert(w: np.ndarray) -> np.ndarray:
    """Hilbert transform of a short real signal (the analytic signal's imaginary part)."""
    m = len(w)
    h = np.zeros(m)
    h[0] = 1.0
    h[1 : (m + 1) // 2] = 2.0
    if m % 2 == 0:
        h[m // 2] = 1.0
    return np.imag(np.fft.ifft(np.fft.fft(w) * h))


def _impedance_logs(rng: np.random.Generator) -> np.ndarray:
    """Three log-impedance series over relative time: host, channel fill, MTD.

    Beds have gamma-distributed thicknesses; their log impedance is a slow
    random walk (compaction trend, cycles) plus bed-to-bed contrasts. The
    channel fill is offset (sand against mud gives a bright base); the MTD is
    a remoulded mud with weak internal contrasts.
    """
    logs = np.empty((3, len(_TAU)))
    bed = rng.uniform(0.025, 0.06)
    for k, (contrast, offset) in enumerate(
        [(1.0, 0.0), (1.1, rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 1.8)), (0.7, rng.uniform(-1.0, 1.0))]
    ):
        thick = rng.gamma(2.5, bed / 2.5, 400)
        edges = np.cumsum(thick) + _TAU[0]
        walk = np.cumsum(rng.normal(0, 0.3, 400))
        values = offset + contrast * (walk + rng.normal(0, 1.0, 400))
        logs[k] = values[np.clip(np.searchsorted(edges, _TAU), 0, 399)]
    return logs


def _wedge(tau, x, z, dip, divergence, rng):
    """Beds thicken across the patch inside a wedge: reflectors diverge toward the thick end."""
    thick_end = rng.choice([0.0, 1.0])  # the levee crest / wedge root is left or right
    s = np.abs(x - thick_end)  # 0 at the thick end, 1 at the thin end
    t0 = rng.uniform(0.45, 0.75)
    base0 = rng.uniform(0.75, 0.98)
    base = base0 - dip * (x - 0.5)
    thickness = t0 * (1 - divergence * s) * (1 + 0.2 * divergence * np.sin(math.pi * (1 - s)))  # convex top
    top = base - thickness
    tau_base = base - dip * (x - 0.5)  # relative time of the wedge base, in host units
    inside = (z < base) & (z > top)
    above = z <= top
    tau_in = tau_base - (base - z) * t0 / thickness
    tau_above = tau_base - t0 - (top - z)
    return np.where(inside, tau_in, np.where(above, tau_above, tau))


def _channel(tau, zone, x, z, dip, incision, rng):
    """A concave-up erosional channel, cut into the beds and filled with its own beds."""
    depth = incision * rng.uniform(0.3, 0.5)
    half_w = rng.uniform(0.2, 0.45)
    xc = rng.uniform(0.3, 0.7)
    shape = rng.uniform(0.4, 1.0)  # 0.4: U-shaped, flat floored; 1: V-shaped
    top = rng.uniform(0.12, 0.95 - depth) - 0.5 * dip * (x - 0.5)
    across = np.clip(1 - np.abs(x - xc) / half_w, 0, 1)
    base = top + depth * across**shape
    inside = (z > top) & (z < base)
    # Fill geometry: flat onlapping beds, or beds draping the concave base.
    drape = rng.uniform(0.0, 1.0)
    rel = (z - top) / np.maximum(base - top, 1e-6)
    tau_fill = (1 - drape) * (z - dip * (x - 0.5)) + drape * (rel * depth + top)
    return np.where(inside, tau_fill, tau), np.where(inside, 1, zone)


def _chaotic(tau, zone, amp, x, z, chaos, rng, pixels, n):
    """A mass-transport deposit: contorted, discontinuous, dim reflectors in a rugose zone."""
    thick = chaos * rng.uniform(0.75, 1.0)
    top0 = rng.uniform(0.0, max(1.0 - thick, 0.0))
    rugose = ndimage.gaussian_filter1d(pixels.standard_normal(n), 0.04 * n, mode="wrap")
    top = top0 + 0.03 * (rugose / rugose.std())[None, :]
    base = top0 + thick
    inside = (z > top) & (z < base)
    fold = rng.uniform(0.05, 0.15) * smooth_noise(pixels, n, rng.uniform(0.025, 0.05))
    patchy = np.clip(0.5 + 0.6 * smooth_noise(pixels, n, 0.03), 0.0, 1.0)
    dim = rng.uniform(0.5, 0.9)
    tau = np.where(inside, tau + fold, tau)
    zone = np.where(inside, 2, zone)
    amp = np.where(inside, amp * dim * patchy, amp)
    return tau, zone, amp


DATASHEET = {
    "title": "seismic facies patches",
    "summary": (
        "64 x 64 patches of 2-D seismic sections (vertical axis = two-way time, down), four facies\n"
        "told apart by reflection geometry, lateral continuity and amplitude pattern. Grayscale:\n"
        "mid-grey is zero amplitude, black and white are the troughs and peaks."
    ),
    "classes": {
        "parallel": "continuous, parallel reflectors of steady amplitude; only gentle dip and undulation",
        "channel_fill": "a concave-up erosional base truncating the beds below; fill with its own "
        "onlapping or draping reflectors and often a bright base",
        "levee_wedge": "reflectors that diverge toward one side (thick end) and converge/downlap "
        "toward the other, under a gently convex top",
        "chaotic_mtd": "a mass-transport deposit: contorted, discontinuous, dimmer reflectors in a zone "
        "with a rugose top, between continuous beds",
    },
    "nuisance": (
        "Varied identically in every class: regional dip (+-0.25), wavelet frequency (period\n"
        "0.07-0.13 of the patch) and phase (+-40 deg), display polarity (SEG normal or reverse),\n"
        "a normal fault in 30% of patches, band-limited noise (8-30% of the signal RMS, scaled by\n"
        "`--noise`), impedance series (bed thickness, contrasts) and display gain: every patch is\n"
        "normalised to the same RMS amplitude (as an AGC display would), then scaled by a random\n"
        "gain and clipped."
    ),
    "generation": (
        "Convolutional model: reflectivity (vertical change of log impedance) convolved with a\n"
        "wavelet, trace by trace.\n"
        "1. Draw the facies' geometry parameters (continuity, divergence, incision, chaos);\n"
        "   `--overlap` pulls their class ranges toward the shared middle.\n"
        "2. Build a relative geologic time field tau(x, z) at twice the output size: regional dip\n"
        "   and undulation; a wedge that thickens across the patch; a parabolic erosional channel\n"
        "   with flat or draping fill; a chaotic zone with folded tau and patchy amplitude; a\n"
        "   fault that shifts everything on its hanging wall.\n"
        "3. Look up log impedance of each pixel's bed from random-walk impedance logs (host,\n"
        "   channel fill, MTD), differentiate vertically, convolve with a phase-rotated Ricker\n"
        "   wavelet, add wavelet-filtered noise, average down, normalise to unit RMS, apply a\n"
        "   display gain and clip to 8-bit grayscale.\n"
        "\nSeeds: `numpy.random.SeedSequence([seed, 2, class_id, index])`."
    ),
    "difficulty": (
        "Measured with `python bench/bench_datasets.py` on the shipped files (course CNN, 20\n"
        "epochs, seed 42, stratified 80/20 train/test split, 20% of training for validation):\n"
        "\n"
        "- course CNN test accuracy **0.93**; most errors are parallel versus channel_fill (a\n"
        "  shallow channel is a small feature in a 64 px patch);\n"
        "- logistic regression on the six colour statistics: **0.38** (chance 0.25): amplitudes\n"
        "  are normalised per patch, so brightness and contrast say little;\n"
        "- CNN on 20% of the training images, no dropout: train 1.00 vs validation 0.77, a gap\n"
        "  of **0.23**; with the course augmentation **0.06** (train 0.62, validation 0.56).\n"
        "\n"
        "Note that vertical flips and large rotations are not neutral for seismic (time runs\n"
        "down, reflectors are mostly sub-horizontal); horizontal flips and small shifts are."
    ),
    "limitations": (
        "2-D only, with no multiples, migration smiles, acquisition footprint or velocity\n"
        "pull-up; amplitudes are relative (no AVO, no true impedance values). Real facies grade\n"
        "into each other; here each patch is one facies by construction."
    ),
}
