"""Synthetic rock thin sections: sandstone, limestone, shale, granite, basalt.

A thin section is a 30 micrometre slice of rock seen through a polarising
microscope. Geologists tell rocks apart by *texture* (grain size, grain shape,
sorting, how grains are held together) and by *mineralogy* (how each mineral
looks in plane-polarised light, PPL, and between crossed polars, XPL). The
generator draws those cues:

* **sandstone**: rounded, well-sorted quartz grains (some feldspar and rock
  fragments) packed together, with calcite, silica or clay/iron-oxide cement
  and a little blue-dyed pore space between them.
* **limestone**: murky micrite (lime mud) holding ooids (round grains with
  concentric laminae and, in XPL, a dark extinction cross) and curved shell
  fragments; sometimes sparry calcite cement instead of micrite.
* **shale**: fine laminae of dark clay and lighter silt, slightly wavy, with
  silt specks and dark organic lenses; aligned clays brighten and darken with
  the stage angle in XPL.
* **granite**: large interlocking crystals with no cement: clear quartz,
  cloudy K-feldspar, twinned plagioclase and brown cleaved biotite.
* **basalt**: a fine groundmass of plagioclase laths in dark glass, with a few
  large phenocrysts (olivine, plagioclase, pyroxene) and round vesicles.

What does *not* identify the class is varied on purpose, identically for all
classes: magnification, PPL or XPL, focus, illumination falloff, camera white
balance, brightness and contrast (each channel's mean and std are pulled to a
random target), and sensor noise. So the average colour of an image says
little about its rock type; its texture says a lot.

All lengths are in field-of-view units (the image is 1 x 1).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from synth._common import (
    SUPERSAMPLE,
    Windows,
    blend_ranges,
    blur,
    downsample,
    draw,
    jittered_grid,
    michel_levy,
    paint,
    pixel_grid,
    resolve,
    restyle_stats,
    size_groups,
    smooth_noise,
    voronoi,
)

CLASSES = ("sandstone", "limestone", "shale", "granite", "basalt")

# Shared texture parameters, each class with its own (low, high) range. The
# ``overlap`` knob pulls these ranges toward their mean over the classes.
#   grain      characteristic size of the main grains/crystals/allochems
#   sorting    spread of sizes (std of log size): small = well sorted
#   elongation largest aspect ratio of grains, lenses, laths
#   roundness  0 = angular, irregular outlines; 1 = smooth, round
#              (limestone: share of ooids; basalt: amount of vesicles)
#   matrix     share of fine-grained material: cement, micrite, clay, groundmass
#   alignment  how parallel the fabric is (laminae, flow, foliation)
PARAMS: dict[str, dict[str, tuple[float, float]]] = {
    "sandstone": {
        "grain": (0.050, 0.085),
        "sorting": (0.05, 0.18),
        "elongation": (1.0, 1.4),
        "roundness": (0.6, 1.0),
        "matrix": (0.10, 0.40),
        "alignment": (0.0, 0.4),
    },
    "limestone": {
        "grain": (0.035, 0.070),
        "sorting": (0.10, 0.35),
        "elongation": (1.0, 1.6),
        "roundness": (0.3, 0.9),
        "matrix": (0.45, 0.85),
        "alignment": (0.0, 0.4),
    },
    "shale": {
        "grain": (0.012, 0.030),
        "sorting": (0.20, 0.50),
        "elongation": (2.0, 4.0),
        "roundness": (0.2, 0.6),
        "matrix": (0.75, 0.98),
        "alignment": (0.6, 1.0),
    },
    "granite": {
        "grain": (0.120, 0.260),
        "sorting": (0.20, 0.50),
        "elongation": (1.0, 1.6),
        "roundness": (0.0, 0.3),
        "matrix": (0.00, 0.10),
        "alignment": (0.0, 0.3),
    },
    "basalt": {
        "grain": (0.050, 0.110),
        "sorting": (0.30, 0.60),
        "elongation": (1.3, 2.5),
        "roundness": (0.3, 0.9),
        "matrix": (0.55, 0.85),
        "alignment": (0.0, 0.6),
    },
}

# How much of an image's own per-channel mean/std survives the camera restyle
# (0 = none). Tuned so a logistic regression on the six colour statistics
# stays well below the CNN (see bench/bench_datasets.py).
KEEP_COLOUR = 0.35

# Retardation (nm) of a 30 um section at the mineral's maximum birefringence.
R_QUARTZ, R_FELDSPAR, R_OLIVINE, R_PYROXENE, R_BIOTITE = 270.0, 240.0, 1200.0, 750.0, 1600.0


def render(
    class_id: int,
    params: np.random.Generator,
    pixels: np.random.Generator,
    size: int,
    noise: float,
    overlap: float,
) -> np.ndarray:
    """One thin-section photograph, float RGB in [0, 1] of shape (size, size, 3)."""
    name = CLASSES[class_id]
    p = draw(params, blend_ranges(PARAMS, name, overlap))
    # The view: the same distributions for every class.
    p["grain"] *= params.uniform(0.85, 1.2)  # objective / camera magnification
    xpl = bool(params.random() < 0.5)  # crossed polars, else plane-polarised light
    focus = params.uniform(0.0, 0.5)  # blur sigma in output pixels
    n = size * SUPERSAMPLE
    scene = _RENDERERS[name](p, xpl, params, pixels, n)
    img = downsample(blur(scene, focus * SUPERSAMPLE), SUPERSAMPLE)
    img = restyle_stats(img, params, brightness=(0.30, 0.70), contrast=(0.12, 0.26), tint=0.12, keep=KEEP_COLOUR)
    img = img * _illumination(params, size)[..., None]
    sigma = noise * params.uniform(0.010, 0.035)
    img = img + sigma * pixels.standard_normal(img.shape)
    return np.clip(img, 0.0, 1.0)


def _illumination(rng: np.random.Generator, size: int) -> np.ndarray:
    """Uneven lamp light: a radial falloff (vignetting) and a gentle tilt."""
    x, y = pixel_grid(size)
    cx, cy = rng.uniform(0.3, 0.7, 2)
    fall = rng.uniform(0.0, 0.5)
    gx, gy = rng.uniform(-0.12, 0.12, 2)
    return 1.0 - fall * ((x - cx) ** 2 + (y - cy) ** 2) + gx * (x - 0.5) + gy * (y - 0.5)


def _jitter(rng: np.random.Generator, rgb: tuple[float, float, float], amount: float) -> np.ndarray:
    """A base colour with a little per-image variation."""
    return np.clip(np.asarray(rgb) * rng.uniform(1 - amount, 1 + amount, 3), 0, 1)


def _extinction(phi: np.ndarray) -> np.ndarray:
    """Fraction of light an anisotropic crystal passes between crossed polars.

    Zero when the crystal's vibration directions line up with the polars
    (extinction), maximal at 45 degrees: sin^2(2 phi).
    """
    return np.sin(2 * phi) ** 2


def _wobble(rng: np.random.Generator, count: int, amount: float) -> np.ndarray:
    """Boundary harmonics 2..5 for ``count`` grains: (count, 4, 2) of (amplitude, phase)."""
    amp = amount * rng.uniform(0.2, 1.0, (count, 4)) / np.arange(1, 5)
    phase = rng.uniform(0, 2 * math.pi, (count, 4))
    return np.stack([amp, phase], axis=-1)


def _sandstone(p: dict, xpl: bool, prm: np.random.Generator, pix: np.random.Generator, n: int) -> np.ndarray:
    """Rounded, sorted detrital grains held by cement, with a little pore space."""
    spacing = 2 * p["grain"] * (0.85 + 0.6 * p["matrix"])
    centres = jittered_grid(prm, spacing, 0.3, margin=spacing)
    k = len(centres)
    radii = p["grain"] * np.exp(prm.normal(0.0, p["sorting"], k))
    aspects = prm.uniform(1.0, p["elongation"], k)
    # Aligned grains lie along the bedding; unaligned ones point anywhere.
    angles = prm.uniform(0, math.pi) + prm.normal(0, 1, k) * (1 - p["alignment"]) * math.pi
    wobbles = _wobble(prm, k, (1 - p["roundness"]) * 0.35)
    mineral = prm.choice(3, size=k, p=[0.80, 0.12, 0.08])  # quartz, feldspar, rock fragment
    retard = prm.uniform(0, 1, k) * np.where(mineral == 0, R_QUARTZ, R_FELDSPAR)
    ext = _extinction(prm.uniform(0, math.pi, k))
    cement = prm.choice(3, p=[0.4, 0.3, 0.3])  # calcite, silica, clay + iron oxide
    porosity = prm.uniform(0.0, 0.4)
    label, dist = paint(n, centres, radii, aspects=aspects, angles=angles, wobble=wobbles)
    grain = label >= 0
    idx = np.maximum(label, 0)

    if xpl:
        table = michel_levy(retard) * ext[:, None]
        table[mineral == 2] = 0.25 * prm.uniform(0.5, 1.0)  # fine-grained lithic: dull grey
        img = table[idx] * (1 + 0.2 * smooth_noise(pix, n, 0.03))[..., None]  # undulose extinction
        cement_rgb = [
            0.3 + 0.5 * michel_levy(2500 + 1500 * smooth_noise(pix, n, 0.02)),  # calcite: pastel
            michel_levy(R_QUARTZ * np.abs(smooth_noise(pix, n, 0.05)) / 2.5),  # silica: greys
            np.broadcast_to(_jitter(prm, (0.22, 0.15, 0.10), 0.2), (n, n, 3)),  # clay: dark brown
        ][cement]
        pore_rgb = np.zeros(3)  # epoxy is isotropic: black between crossed polars
    else:
        table = np.array(
            [
                _jitter(prm, (0.93, 0.92, 0.89), 0.04),
                _jitter(prm, (0.84, 0.79, 0.74), 0.06),
                _jitter(prm, (0.55, 0.50, 0.45), 0.15),
            ]
        )
        img = table[mineral][idx]
        cloud = 0.06 * smooth_noise(pix, n, 0.008)
        img = img - (cloud * (mineral[idx] >= 1))[..., None]  # clay-dusted feldspar, lithics
        base = [(0.86, 0.84, 0.78), (0.91, 0.91, 0.89), (0.62, 0.44, 0.30)][cement]
        cement_rgb = _jitter(prm, base, 0.06) * (1 + 0.05 * smooth_noise(pix, n, 0.01))[..., None]
        pore_rgb = _jitter(prm, (0.40, 0.58, 0.88), 0.08)  # blue-dyed epoxy
    pore_field = smooth_noise(pix, n, 0.04)
    pores = pore_field > np.quantile(pore_field, 1 - porosity)
    img = np.where(grain[..., None], img, cement_rgb)
    img = np.where((~grain & pores)[..., None], pore_rgb, img)
    rim = grain & (dist > 0.85)  # grain outlines: relief and dust rims
    return np.clip(img * np.where(rim, 0.78, 1.0)[..., None], 0, 1)


def _limestone(p: dict, xpl: bool, prm: np.random.Generator, pix: np.random.Generator, n: int) -> np.ndarray:
    """Micrite (or sparry cement) with ooids and curved shell fragments."""
    x, y = pixel_grid(n)
    count = int(np.clip(round((1 - p["matrix"]) * 1.3 / (math.pi * p["grain"] ** 2)), 3, 250))
    centres = prm.uniform(-0.05, 1.05, (count, 2))
    radii = p["grain"] * np.exp(prm.normal(0.0, p["sorting"], count))
    is_ooid = prm.random(count) < 0.15 + 0.8 * p["roundness"]
    aspects = np.where(is_ooid, prm.uniform(1.0, math.sqrt(p["elongation"]), count), 1.0)
    angles = prm.uniform(0, math.pi, count)
    ring = prm.uniform(0.12, 0.25, count)  # concentric lamina spacing, as a share of the radius
    spar = prm.random() < 0.35  # grainstone: sparry calcite cement instead of lime mud
    label, dist = paint(n, centres, radii, aspects=aspects, angles=angles, wobble=_wobble(prm, count, 0.05))
    label[~is_ooid[np.maximum(label, 0)]] = -1  # shells are drawn as arcs below
    # Shells: slices of thin annuli, radius 1.5-4 grains, angular span 0.6-2.6 rad,
    # drawn in windows around each fragment's midpoint.
    sh = np.flatnonzero(~is_ooid)
    big_r = radii[sh] * prm.uniform(1.5, 4.0, len(sh))
    thick = np.maximum(radii[sh] * prm.uniform(0.15, 0.35, len(sh)), 1.2 / n)
    span = prm.uniform(0.6, 2.6, len(sh))
    mid = prm.uniform(0, 2 * math.pi, len(sh))  # direction from the annulus centre to the midpoint
    # Window reach: the arc's chord from its midpoint to an end, plus half its thickness.
    reach = 2 * big_r * np.sin(span / 4) + thick + 1.0 / n
    parts = []
    for group in size_groups(reach):
        win = Windows(n, centres[sh[group]], float(reach[group].max()))
        r_, t_, sp_, md_ = (a[group][:, None, None] for a in (big_r, thick, span, mid))
        ex, ey = win.dx + r_ * np.cos(md_), win.dy + r_ * np.sin(md_)  # offsets from the annulus centre
        ang = np.mod(np.arctan2(ey, ex) - md_ + math.pi, 2 * math.pi) - math.pi
        d = np.abs(np.hypot(ex, ey) - r_) / (t_ / 2)
        d = np.where(np.abs(ang) < sp_ / 2, d, np.inf)
        parts.append(win.candidates(d, group, ang * r_))
    if parts:
        shell_lab, _, fibre = resolve(n, parts)
    else:
        shell_lab, fibre = np.full((n, n), -1), np.zeros((n, n))
    shell = shell_lab >= 0
    ooid = label >= 0
    idx = np.maximum(label, 0)
    # Polar angle around each ooid's centre: gives concentric rings and the extinction cross.
    theta = np.arctan2(y - centres[idx, 1], x - centres[idx, 0])
    rings = np.cos(2 * math.pi * np.where(ooid, dist, 0.0) / ring[idx])
    nucleus = ooid & (dist < 0.25)
    speck = ndimage.gaussian_filter(pix.standard_normal((n, n)), 0.8)

    if xpl:
        mottle = smooth_noise(pix, n, 0.1)
        micrite = _jitter(prm, (0.42, 0.37, 0.30), 0.15) * (1 + 0.35 * speck + 0.08 * mottle)[..., None]
        if spar:
            micrite = 0.25 + 0.55 * michel_levy(2000 + 4000 * _cells(pix, n, 0.035))
        ooid_rgb = _jitter(prm, (0.75, 0.70, 0.60), 0.1) * (np.sin(2 * theta) ** 2 * (0.8 + 0.2 * rings))[..., None]
        shell_rgb = 0.2 + 0.6 * michel_levy(3000 + 300 * np.cos(fibre * 400)) * 0.8
    else:
        mottle = smooth_noise(pix, n, 0.1)
        micrite = _jitter(prm, (0.62, 0.57, 0.48), 0.10) * (1 + 0.08 * speck + 0.05 * mottle)[..., None]
        if spar:
            micrite = _jitter(prm, (0.88, 0.86, 0.82), 0.04) * (1 - 0.25 * _cell_edges(pix, n, 0.035))[..., None]
        ooid_rgb = _jitter(prm, (0.72, 0.64, 0.50), 0.08) * (1 + 0.2 * rings)[..., None]
        shell_rgb = _jitter(prm, (0.90, 0.88, 0.84), 0.05) * (1 + 0.05 * np.cos(fibre * 400))[..., None]
    img = np.where(ooid[..., None], ooid_rgb, micrite)
    img = np.where(nucleus[..., None], 0.85 if not xpl else 0.3, img)
    img = np.where(shell[..., None], shell_rgb, img)
    rim = ooid & (dist > 0.88)
    return np.clip(img * np.where(rim, 0.8, 1.0)[..., None], 0, 1)


def _cells(rng: np.random.Generator, n: int, size: float) -> np.ndarray:
    """A random value per cell of a Voronoi mosaic of cell size ``size`` (FOV units)."""
    label = voronoi(rng, n, size)
    return rng.random(int(label.max()) + 1)[label]


def _cell_edges(rng: np.random.Generator, n: int, size: float) -> np.ndarray:
    """1 on the boundaries of a Voronoi mosaic, else 0 (crystal outlines of spar)."""
    return _edges(voronoi(rng, n, size)).astype(np.float64)


def _edges(label: np.ndarray) -> np.ndarray:
    """True where a pixel's right or lower neighbour has another label."""
    edge = np.zeros(label.shape, dtype=bool)
    edge[:, 1:] |= label[:, 1:] != label[:, :-1]
    edge[1:, :] |= label[1:, :] != label[:-1, :]
    return edge


def _shale(p: dict, xpl: bool, prm: np.random.Generator, pix: np.random.Generator, n: int) -> np.ndarray:
    """Fine parallel laminae of clay and silt, with silt specks and organic lenses."""
    x, y = pixel_grid(n)
    alpha = prm.uniform(0, math.pi)  # lamina direction on the stage
    warp_amp = 0.004 + 0.05 * (1 - p["alignment"])
    s = x * math.sin(alpha) - y * math.cos(alpha)  # distance across the laminae
    s = s + warp_amp * smooth_noise(pix, n, 0.15)
    mean_t = 0.02 + 2.5 * p["grain"]
    thick = prm.gamma(3.0, mean_t / 3.0, 200)
    edges = np.cumsum(thick) - 1.5
    strength = 0.5 + 0.5 * p["alignment"]
    clay = 0.5 + 0.5 * strength * np.where(np.arange(200) % 2, 1, -1) * prm.uniform(0.3, 1.0, 200)
    v = clay[np.clip(np.searchsorted(edges, s), 0, 199)]
    v = ndimage.gaussian_filter(v, 0.7)
    silt = pix.random((n, n)) < (1 - v) * (1.2 - p["matrix"]) * 0.08  # quartz silt specks
    lenses = prm.poisson(3)  # organic matter / pyrite lenses, flattened along the laminae
    lab, _ = paint(
        n,
        prm.uniform(0, 1, (lenses, 2)),
        prm.uniform(0.01, 0.03, lenses),
        aspects=np.full(lenses, p["elongation"] * 2),
        angles=np.full(lenses, alpha),
    )
    organic = lab >= 0
    if xpl:
        # Aligned clay flakes go extinct together: the whole fabric dims as the stage turns.
        fabric = 0.3 + 0.5 * _extinction(np.asarray(alpha + prm.normal(0, 0.15)))
        img = _jitter(prm, (0.55, 0.42, 0.28), 0.15) * (fabric * (1 - 0.75 * v))[..., None]
        img = np.where(silt[..., None], 0.5 * michel_levy(pix.uniform(0, R_QUARTZ, (n, n))) + 0.5 * img, img)
    else:
        dark, light = _jitter(prm, (0.36, 0.28, 0.20), 0.12), _jitter(prm, (0.72, 0.68, 0.60), 0.08)
        img = v[..., None] * dark + (1 - v[..., None]) * light
        img = np.where(silt[..., None], np.minimum(light * 1.1, 1), img)
    img = img * (1 + 0.04 * smooth_noise(pix, n, 0.01))[..., None]
    img = np.where(organic[..., None], 0.06, img)
    return np.clip(img, 0, 1)


def _granite(p: dict, xpl: bool, prm: np.random.Generator, pix: np.random.Generator, n: int) -> np.ndarray:
    """Large interlocking crystals of quartz, K-feldspar, plagioclase and biotite."""
    x, y = pixel_grid(n)
    count = int(np.clip(round(1.1 / (math.pi * p["grain"] ** 2) * 1.4), 4, 80))
    seeds = prm.uniform(-0.15, 1.15, (count, 2))
    weight = (p["grain"] * np.exp(prm.normal(0.0, p["sorting"], count))) ** 2
    mineral = prm.choice(4, size=count, p=[0.30, 0.33, 0.25, 0.12])  # qtz, kfs, plag, bt
    phi = prm.uniform(0, math.pi, count)  # extinction angle of each crystal
    retard = prm.uniform(0.2, 1.0, count) * np.array([R_QUARTZ, R_FELDSPAR, R_FELDSPAR, R_BIOTITE])[mineral]
    twin = prm.uniform(0, math.pi, count)  # twin lamellae / cleavage direction
    axis = prm.uniform(0, math.pi)
    e = 1 + (p["elongation"] - 1) * p["alignment"] * 2
    # Power diagram (weighted Voronoi) on slightly warped coordinates: straight-ish,
    # interlocking crystal boundaries, bigger crystals where the weight is larger.
    wx = x + 0.015 * smooth_noise(pix, n, 0.03)
    wy = y + 0.015 * smooth_noise(pix, n, 0.03)
    u = (wx * math.cos(axis) + wy * math.sin(axis)) / math.sqrt(e)
    v = (-wx * math.sin(axis) + wy * math.cos(axis)) * math.sqrt(e)
    su = (seeds[:, 0] * math.cos(axis) + seeds[:, 1] * math.sin(axis)) / math.sqrt(e)
    sv = (-seeds[:, 0] * math.sin(axis) + seeds[:, 1] * math.cos(axis)) * math.sqrt(e)
    power = (u[None] - su[:, None, None]) ** 2 + (v[None] - sv[:, None, None]) ** 2 - weight[:, None, None]
    label = np.argmin(power, axis=0)
    m = mineral[label]
    stripe_pos = (x * np.cos(twin[label]) + y * np.sin(twin[label])) / 0.012
    stripes = (np.floor(stripe_pos) % 2).astype(bool)  # polysynthetic twin lamellae
    cleave = np.cos(2 * math.pi * stripe_pos * 1.5)

    if xpl:
        ext = _extinction(phi[label] + np.where(stripes & (m == 2), 0.6, 0.0))
        img = michel_levy(retard[label]) * ext[..., None]
        img = img * (1 + 0.15 * smooth_noise(pix, n, 0.05))[..., None]  # undulose quartz
        tartan = np.cos(2 * math.pi * (x - y) / 0.02) * np.cos(2 * math.pi * (x + y) / 0.02)
        img = np.where((m == 1)[..., None], img * (1 + 0.15 * tartan)[..., None], img)  # microcline
        bt = _jitter(prm, (0.55, 0.40, 0.20), 0.15) * (0.7 + 0.3 * cleave)[..., None]
        img = np.where((m == 3)[..., None], 0.5 * bt + 0.5 * img, img)
    else:
        colours = np.array(
            [
                _jitter(prm, (0.93, 0.93, 0.91), 0.03),
                _jitter(prm, (0.82, 0.76, 0.70), 0.06),
                _jitter(prm, (0.88, 0.87, 0.84), 0.04),
                _jitter(prm, (0.50, 0.33, 0.18), 0.2),
            ]
        )
        img = colours[m]
        cloud = np.abs(smooth_noise(pix, n, 0.015)) * 0.08
        img = img - (cloud * (m == 1))[..., None]  # sericite/clay clouding of K-feldspar
        pleo = 0.75 + 0.5 * np.sin(phi[label]) ** 2  # biotite pleochroism: shade varies per crystal
        img = np.where((m == 3)[..., None], img * (pleo * (0.85 + 0.15 * cleave))[..., None], img)
    edge = _edges(label)
    if p["matrix"] > 0.02:
        # Fine recrystallised mosaic along some boundaries (more with higher 'matrix').
        near = ndimage.binary_dilation(edge, iterations=max(int(p["matrix"] * n * 0.15), 1))
        fine = near & (smooth_noise(pix, n, 0.1) > 0.5)
        img = np.where(fine[..., None], np.clip(_cells(pix, n, 0.02), 0.2, 0.9)[..., None] * np.ones(3), img)
    img = img * np.where(edge, 0.7, 1.0)[..., None]
    return np.clip(img, 0, 1)


def _lath_kernel(length_px: float, angle: float) -> np.ndarray:
    """A 1-pixel-wide line segment of ``length_px`` at ``angle``, as a convolution kernel."""
    half = int(math.ceil(length_px / 2))
    r = np.arange(-half, half + 1)
    dy, dx = np.meshgrid(r, r, indexing="ij")
    along = dx * math.cos(angle) + dy * math.sin(angle)
    across = -dx * math.sin(angle) + dy * math.cos(angle)
    return ((np.abs(along) <= length_px / 2) & (np.abs(across) < 0.6)).astype(np.float64)


def _basalt(p: dict, xpl: bool, prm: np.random.Generator, pix: np.random.Generator, n: int) -> np.ndarray:
    """Fine groundmass of plagioclase laths in glass, phenocrysts and vesicles."""
    # Groundmass: sparse seeds spread into short laths by line kernels, a few orientations.
    flow = prm.uniform(0, math.pi)
    lath_len = prm.uniform(0.04, 0.07) * n
    density = prm.uniform(0.015, 0.03)
    laths = np.zeros((n, n))
    for k in range(6):
        angle = flow + (k / 6 - 0.5) * math.pi * (1 - 0.8 * p["alignment"])
        seeds = (pix.random((n, n)) < density / 6) * pix.uniform(0.3, 1.0, (n, n))
        laths = np.maximum(laths, ndimage.convolve(seeds, _lath_kernel(lath_len, angle), mode="wrap"))
    laths = np.minimum(laths, 1.0)
    on = laths > 0
    granules = ndimage.gaussian_filter(pix.standard_normal((n, n)), 0.7)
    opaque = ndimage.binary_dilation(pix.random((n, n)) < 0.003)  # magnetite grains

    # Phenocrysts: euhedral olivine (hexagons), plagioclase (tablets), pyroxene (octagons).
    count = int(np.clip(prm.poisson((1 - p["matrix"]) * 0.5 / (math.pi * p["grain"] ** 2)), 2, 25))
    kind = prm.choice(3, size=count, p=[0.45, 0.35, 0.20])
    centres = prm.uniform(0, 1, (count, 2))
    radii = p["grain"] * np.exp(prm.normal(0, p["sorting"], count))
    aspects = np.where(kind == 1, prm.uniform(2.0, 3.5, count), prm.uniform(1.0, math.sqrt(p["elongation"]), count))
    angles = prm.uniform(0, math.pi, count)
    sides = np.array([6, 4, 8])[kind]
    retard = prm.uniform(0.3, 1.0, count) * np.array([R_OLIVINE, R_FELDSPAR, R_PYROXENE])[kind]
    phi = prm.uniform(0, math.pi, count)
    wobble = _wobble(prm, count, 0.08)
    pheno, pdist = paint(n, centres, radii, aspects=aspects, angles=angles, sides=sides, wobble=wobble)

    # Vesicles: gas bubbles frozen in the lava, round or stretched along the flow.
    nves = prm.poisson(p["roundness"] * 7)
    vc = prm.uniform(0, 1, (nves, 2))
    vr = p["grain"] * prm.uniform(0.4, 1.1, nves)
    va = prm.uniform(1.0, p["elongation"], nves)
    vang = flow + prm.normal(0, 0.3, nves)
    ves, vdist = paint(n, vc, vr, aspects=va, angles=vang, wobble=_wobble(prm, nves, 0.1))
    blue_epoxy = prm.random() < 0.3
    idx = np.maximum(pheno, 0)
    fractures = np.abs(smooth_noise(pix, n, 0.015)) < 0.12  # olivine's irregular cracks

    if xpl:
        img = np.broadcast_to(_jitter(prm, (0.05, 0.05, 0.05), 0.3), (n, n, 3)).copy()
        img += 0.12 * np.clip(granules, 0, None)[..., None] * michel_levy(np.asarray(700.0))
        img = np.where(on[..., None], michel_levy(laths * R_FELDSPAR) * 0.9, img)
        pimg = michel_levy(retard[idx]) * _extinction(phi[idx])[..., None]
        vesicle_rgb = np.zeros(3)
    else:
        glass = _jitter(prm, (0.32, 0.26, 0.20), 0.15)
        img = glass * (1 + 0.25 * granules)[..., None]
        img = np.where(on[..., None], _jitter(prm, (0.82, 0.82, 0.80), 0.04), img)
        colours = np.array(
            [
                _jitter(prm, (0.83, 0.88, 0.74), 0.05),
                _jitter(prm, (0.88, 0.88, 0.86), 0.03),
                _jitter(prm, (0.78, 0.72, 0.60), 0.06),
            ]
        )
        pimg = colours[kind[idx]]
        vesicle_rgb = _jitter(prm, (0.40, 0.55, 0.88) if blue_epoxy else (0.92, 0.93, 0.95), 0.05)
    pimg = np.where((fractures & (kind[idx] == 0))[..., None], pimg * 0.45, pimg)
    img = np.where((pheno >= 0)[..., None], pimg, img)
    img = np.where(((pheno >= 0) & (pdist > 0.9))[..., None], img * 0.7, img)
    img = np.where(opaque[..., None], 0.04, img)
    img = np.where((ves >= 0)[..., None], vesicle_rgb, img)
    img = np.where(((ves >= 0) & (vdist > 0.85))[..., None], img * 0.5 + 0.02, img)  # chilled rim
    return np.clip(img, 0, 1)


_RENDERERS = {
    "sandstone": _sandstone,
    "limestone": _limestone,
    "shale": _shale,
    "granite": _granite,
    "basalt": _basalt,
}


DATASHEET = {
    "title": "rock thin sections under the polarising microscope",
    "summary": (
        "Microscope views of 30 um rock slices, in plane-polarised (PPL) or cross-polarised (XPL)\n"
        "light, in the course's setup: 1,000 RGB images of 64 x 64 px, five balanced rock types.\n"
        "A CNN has to learn texture (grain size, shape, sorting, fabric) because the overall\n"
        "colour of an image is deliberately a weak clue."
    ),
    "classes": {
        "sandstone": "rounded, well-sorted quartz grains (some feldspar, rock fragments) touching each "
        "other, held by calcite, silica or clay/iron-oxide cement; a little blue-dyed pore space",
        "limestone": "murky micrite (lime mud) or sparry calcite with ooids (concentric rings; dark "
        "extinction cross in XPL) and thin curved shell fragments",
        "shale": "fine, slightly wavy laminae of dark clay and lighter silt, silt specks, flattened "
        "organic lenses; aligned clays dim together in XPL",
        "granite": "a few large interlocking crystals, no cement: clear quartz, cloudy K-feldspar "
        "(tartan twinning), striped plagioclase, brown cleaved biotite",
        "basalt": "fine groundmass of tiny plagioclase laths in dark glass, a few large phenocrysts "
        "(olivine, plagioclase, pyroxene) and round or stretched vesicles",
    },
    "nuisance": (
        "Varied identically in every class: PPL or XPL (half each), magnification (0.85-1.2x), focus blur,\n"
        "uneven illumination (vignetting, tilt), sensor noise, and the camera's white balance,\n"
        "brightness and contrast: each image's per-channel mean and standard deviation are moved\n"
        f"{1 - KEEP_COLOUR:.0%} of the way to a random target drawn the same way for all classes.\n"
        "Within a class, grain size, sorting, elongation, roundness, matrix share and fabric\n"
        "alignment are drawn from ranges (see `PARAMS` in the generator), and minerals, cement\n"
        "type, porosity, orientation and colours vary per image."
    ),
    "generation": (
        "1. Draw the class's texture parameters (grain, sorting, elongation, roundness, matrix,\n"
        "   alignment) from its ranges; `--overlap` pulls these ranges toward their mean over the\n"
        "   five classes.\n"
        "2. Draw the rock at twice the output size in field-of-view units: grains and crystals as\n"
        "   ellipses/polygons with wobbly outlines (sandstone, ooids, phenocrysts, vesicles), arcs\n"
        "   (shells), laminae along a warped coordinate (shale), a weighted Voronoi tessellation\n"
        "   (granite) and short line kernels (basalt laths).\n"
        "3. Colour each mineral as it looks in PPL, or in XPL from a Michel-Levy interference colour\n"
        "   (retardation = thickness x birefringence) times its extinction factor sin^2(2 phi).\n"
        "4. Blur (focus), average down to the output size, restyle the colour statistics, apply\n"
        "   illumination and Gaussian sensor noise (scaled by `--noise`), round to 8 bits and save\n"
        "   as PNG without metadata.\n"
        "\nSeeds: `numpy.random.SeedSequence([seed, 1, class_id, index])`."
    ),
    "difficulty": (
        "Measured with `python bench/bench_datasets.py` on the shipped files (course CNN, 20\n"
        "epochs, seed 42, stratified 80/20 train/test split, 20% of training for validation):\n"
        "\n"
        "- course CNN test accuracy **0.95** (0.91-0.95 over three training seeds): learnable,\n"
        "  not trivial;\n"
        "- logistic regression on the six per-channel means and standard deviations: **0.42**\n"
        "  (chance 0.20): colour statistics alone do not solve it;\n"
        "- CNN on 20% of the training images (128), no dropout: train 0.88 vs validation 0.53,\n"
        "  a gap of **0.36** (overfitting); with the course augmentation the gap is **0.23**\n"
        "  (train 0.69, validation 0.46: in 20 epochs augmentation mostly slows memorisation).\n"
        "\n"
        "The CNN's 10 test errors are spread over the classes (sandstone taken for shale is the\n"
        "most common). With `--overlap 0.5` the same CNN drops to 0.87 (limestone taken for\n"
        "basalt or granite, granite for shale or sandstone) while colour statistics stay at 0.43."
    ),
    "limitations": (
        "Minerals, twinning and interference colours are simplified; real sections have more\n"
        "mineral species, alteration, scratches, bubbles and thickness variations. One field of\n"
        "view per image, no stage-rotation series. Do not use a model trained here on real\n"
        "microscope images."
    ),
}
