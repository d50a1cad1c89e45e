"""Procedural dermoscopy-like images with exact lesion masks.

Lets training, evaluation and CI run without the ISIC/PH2 download. Each image
holds one irregular pigmented lesion on textured skin, plus the nuisances that
make real dermoscopy hard (hairs, air bubbles, dark vignetted corners,
low-contrast lesions). The mask is exact by construction, so a model's errors
are its own and not label noise.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

# Pale pink -> beige -> tan -> brown, sampled from the backgrounds of real ISIC/PH2 images.
_SKIN_TONES = np.float32([[240, 208, 200], [236, 206, 184], [218, 178, 148], [192, 146, 112], [160, 114, 86]])
# Light brown, brown, dark brown, reddish, blue-grey. Only the hue matters: brightness is set
# relative to the skin so that contrast, not skin tone, decides how hard a lesion is to see.
_PIGMENT_HUES = np.float32([[190, 120, 75], [160, 95, 60], [120, 75, 55], [150, 85, 80], [98, 100, 106]])
_PIGMENT_WEIGHTS = np.array([0.3, 0.35, 0.2, 0.1, 0.05])
_BLUE_GREY = np.float32([108, 112, 125])
_LUMA = np.float32([0.299, 0.587, 0.114])


def make_synthetic(num_samples: int, image_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Procedural dermoscopy-like images and their exact lesion masks.

    Args:
        num_samples: Number of images to generate, >= 1.
        image_size: Side length H = W in pixels, >= 16.
        seed: Non-negative integer seed.

    Returns:
        ``(images, masks)``: ``images`` is uint8 of shape ``(N, H, W, 3)`` with
        values in 0..255; ``masks`` is uint8 of shape ``(N, H, W, 1)`` with
        values in {0, 1}, 1 marking the single (connected) lesion.

    Sample ``i`` depends only on ``(seed, i, image_size)``: asking for more
    samples never changes earlier ones.

    Raises:
        ValueError: If an argument is not an integer or is out of range.
    """
    _check_int("num_samples", num_samples, minimum=1, requirement="must be positive")
    _check_int("image_size", image_size, minimum=16, requirement="must be at least 16")
    _check_int("seed", seed, minimum=0, requirement="must be non-negative")

    # Pixel centres in [-1, 1]; shared by all samples so it is built once.
    axis = (np.arange(image_size, dtype=np.float32) + 0.5) / image_size * 2.0 - 1.0
    grid_y, grid_x = np.meshgrid(axis, axis, indexing="ij")

    images = np.empty((num_samples, image_size, image_size, 3), dtype=np.uint8)
    masks = np.empty((num_samples, image_size, image_size, 1), dtype=np.uint8)
    for i in range(num_samples):
        rng = np.random.default_rng([seed, i])
        images[i], masks[i, ..., 0] = _make_sample(rng, grid_y, grid_x)
    return images, masks


def _check_int(name: str, value, *, minimum: int, requirement: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer. Received: {name}={value!r}")
    if value < minimum:
        raise ValueError(f"{name} {requirement}. Received: {name}={value!r}")


def _make_sample(rng: np.random.Generator, grid_y: np.ndarray, grid_x: np.ndarray) -> tuple[np.ndarray, ...]:
    size = grid_y.shape[0]
    px_scale = size / 128.0  # widths are designed at 128 px and scale with resolution
    skin = _skin(rng, size)
    signed_dist, depth = _lesion_shape(rng, grid_y, grid_x)
    mask = signed_dist < 0.0

    lesion = _lesion_colour(rng, skin, depth, size)
    # Real borders are sharp in places and diffuse in others.
    fuzz = np.exp(0.5 * _smooth_noise(rng, size, cells=3))
    border_px = rng.uniform(0.6, 2.5) * px_scale * fuzz
    distance_px = signed_dist * (size / 2.0)
    alpha = 1.0 / (1.0 + np.exp(np.clip(distance_px / border_px, -30.0, 30.0)))
    image = skin + alpha[..., None] * (lesion - skin)

    image = _draw_hairs(rng, image, px_scale)
    image = _draw_bubbles(rng, image, grid_y, grid_x, px_scale)
    image = _apply_optics(rng, image, grid_y, grid_x)
    image += rng.uniform(1.0, 4.0) * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), mask.astype(np.uint8)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, octaves: int = 1) -> np.ndarray:
    """Zero-mean, unit-std value noise: `cells` random blobs across the image, plus finer octaves."""
    total = np.zeros((size, size), dtype=np.float32)
    for octave in range(octaves):
        n = min(cells * 2**octave, size)
        upsample, upsample_t = _upsampling_matrices(n, size)
        coarse = rng.standard_normal((n, n), dtype=np.float32)
        # einsum rather than @: for products this small, multithreaded BLAS spends more time
        # starting threads than multiplying, and fights data-loader workers for cores.
        total += 0.5**octave * np.einsum("ij,jk->ik", np.einsum("ij,jk->ik", upsample, coarse), upsample_t)
    return (total - total.mean()) / (total.std() + 1e-6)


@functools.lru_cache(maxsize=64)
def _upsampling_matrices(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    # Cubic-spline zoom is linear and separable, so a (size, n) matrix applied on both sides
    # equals ndimage.zoom of the 2-D grid at a fraction of the cost.
    identity = np.eye(n, dtype=np.float32)
    matrix = ndimage.zoom(identity, (size / n, 1.0), order=3, mode="reflect", grid_mode=True)
    transposed = np.ascontiguousarray(matrix.T)
    matrix.setflags(write=False)
    transposed.setflags(write=False)
    return matrix, transposed


def _skin(rng: np.random.Generator, size: int) -> np.ndarray:
    # Paler skin is more common in the public dermoscopy sets.
    position = rng.beta(1.3, 2.0) * (len(_SKIN_TONES) - 1)
    low = int(position)
    high = min(low + 1, len(_SKIN_TONES) - 1)
    tone = _SKIN_TONES[low] + (position - low) * (_SKIN_TONES[high] - _SKIN_TONES[low])
    tone = tone + rng.normal(0.0, 5.0, 3).astype(np.float32)

    brightness = _smooth_noise(rng, size, cells=int(rng.integers(2, 5)), octaves=2)
    redness = _smooth_noise(rng, size, cells=int(rng.integers(3, 7)))
    grain = ndimage.gaussian_filter(rng.standard_normal((size, size), dtype=np.float32), 0.8)
    grain /= grain.std() + 1e-6
    shade = 1.0 + rng.uniform(0.02, 0.07) * brightness + rng.uniform(0.01, 0.03) * grain
    # Erythema: redness raises R relative to G and B rather than overall brightness.
    erythema = rng.uniform(0.0, 8.0) * np.clip(redness, 0.0, None)
    skin = tone * shade[..., None]
    skin += erythema[..., None] * np.float32([1.0, -0.6, -0.4])
    return skin


def _lesion_shape(rng: np.random.Generator, grid_y: np.ndarray, grid_x: np.ndarray):
    """Signed radial distance to a star-shaped boundary (< 0 inside) and depth (1 at centre, 0 at border).

    Star-shaped around its centre, so the thresholded region is one piece even after image-border clipping.
    """
    harmonics = np.arange(2, 17)
    # Low orders set the overall outline (elongation, lobes); high orders only roughen the edge.
    amplitudes = rng.uniform(0.0, 1.0, harmonics.size) * rng.uniform(0.15, 0.5) / harmonics**1.3
    amplitudes[0] += rng.uniform(0.0, 0.25)  # elongation
    phases = rng.uniform(0.0, 2.0 * np.pi, harmonics.size)
    lookup_angles = np.linspace(-np.pi, np.pi, 361, dtype=np.float32)
    wobble = (amplitudes[:, None] * np.cos(harmonics[:, None] * lookup_angles + phases[:, None])).sum(0)
    # Keep the radius well away from zero so no lobe pinches off.
    wobble *= min(1.0, 0.55 / (np.abs(wobble).max() + 1e-6))
    radius_shape = 1.0 + wobble

    # Area of r(theta) is pi * mean(r^2); the image spans area 4 in these units.
    area_fraction = rng.uniform(0.05, 0.45)
    scale = np.sqrt(4.0 * area_fraction / (np.pi * np.mean(radius_shape**2)))
    radius_lookup = (scale * radius_shape).astype(np.float32)
    # Big lesions may run off the edge, as in close-up ISIC shots.
    centre_range = max(0.05, 1.0 - 0.8 * radius_lookup.max())
    centre_y, centre_x = rng.uniform(-centre_range, centre_range, 2)

    dy, dx = grid_y - centre_y, grid_x - centre_x
    rho = np.hypot(dy, dx)
    boundary = np.interp(np.arctan2(dy, dx), lookup_angles, radius_lookup, period=2.0 * np.pi)
    depth = np.clip(1.0 - rho / boundary, 0.0, 1.0)
    return (rho - boundary).astype(np.float32), depth.astype(np.float32)


def _lesion_colour(rng: np.random.Generator, skin: np.ndarray, depth: np.ndarray, size: int) -> np.ndarray:
    skin_luma = float((skin @ _LUMA).mean())
    hue = _PIGMENT_HUES[rng.choice(len(_PIGMENT_HUES), p=_PIGMENT_WEIGHTS)]
    hue = hue * rng.uniform(0.95, 1.05, 3).astype(np.float32)
    # A minority of faint lesions keeps the task from being a simple colour threshold.
    core_ratio = rng.uniform(0.6, 0.8) if rng.random() < 0.15 else rng.uniform(0.25, 0.65)
    core = hue * (core_ratio * skin_luma / (hue @ _LUMA))
    edge = core + rng.uniform(0.3, 0.7) * (skin.mean(axis=(0, 1)) - core)

    blotches = _smooth_noise(rng, size, cells=int(rng.integers(4, 10)), octaves=3)
    centre_weight = depth ** rng.uniform(0.3, 1.0)
    pigment = np.clip(centre_weight + rng.uniform(0.15, 0.45) * blotches, 0.0, 1.0)
    lesion = edge + pigment[..., None] * (core - edge)

    # Pigment network: a mesh of darker lines along the zero-crossings of fine noise.
    if rng.random() < 0.6:
        ridges = 1.0 - np.abs(_smooth_noise(rng, size, cells=max(4, size // 8)))
        network = np.clip(ridges, 0.0, 1.0) ** 2 * rng.uniform(0.1, 0.3) * np.sqrt(depth)
        lesion *= 1.0 - network[..., None]

    if rng.random() < 0.2:  # blue-grey veil
        veil = np.clip(_smooth_noise(rng, size, cells=3) - 0.5, 0.0, 1.0) * rng.uniform(0.3, 0.8)
        target = _BLUE_GREY * (core_ratio * skin_luma / (_BLUE_GREY @ _LUMA))
        lesion += veil[..., None] * (target - lesion)
    if rng.random() < 0.2:  # regression: pale scar-like patches inside the lesion
        regression = np.clip(_smooth_noise(rng, size, cells=4) - 0.8, 0.0, 1.0) * rng.uniform(0.3, 0.7)
        lesion += regression[..., None] * (skin * 1.05 - lesion)
    if rng.random() < 0.3:  # dark dots and globules, denser towards the centre
        seeds = rng.random((size, size), dtype=np.float32) < rng.uniform(0.0005, 0.003) * depth
        dots = ndimage.gaussian_filter(seeds.astype(np.float32), size / 128.0)
        darkening = np.clip(dots * 5.0 * (size / 128.0) ** 2, 0.0, rng.uniform(0.2, 0.45))
        lesion *= 1.0 - darkening[..., None]
    return lesion


def _draw_hairs(rng: np.random.Generator, image: np.ndarray, px_scale: float) -> np.ndarray:
    size = image.shape[0]
    roll = rng.random()
    count = 0 if roll < 0.4 else int(rng.integers(1, 6)) if roll < 0.85 else int(rng.integers(8, 25))
    if count == 0:
        return image
    # Each hair is a constant-curvature arc, sampled at sub-pixel steps and splatted onto a coverage map.
    steps = 4 * size
    lengths = rng.uniform(0.4, 2.2, count)[:, None]
    travel = np.linspace(0.0, 1.0, steps, dtype=np.float32)[None, :] * lengths
    heading = rng.uniform(0.0, 2.0 * np.pi, (count, 1)) + rng.uniform(-1.5, 1.5, (count, 1)) * travel
    step_len = lengths / steps
    ys = rng.uniform(-1.2, 1.2, (count, 1)) + np.cumsum(np.sin(heading) * step_len, axis=1)
    xs = rng.uniform(-1.2, 1.2, (count, 1)) + np.cumsum(np.cos(heading) * step_len, axis=1)
    rows = np.floor((ys + 1.0) * size / 2.0).astype(np.int64)
    cols = np.floor((xs + 1.0) * size / 2.0).astype(np.int64)
    # Weighting each splat by its spacing makes ink per unit length independent of hair length.
    spacing_px = lengths * (size / 2.0) / steps
    ink = np.broadcast_to(rng.uniform(0.5, 1.0, (count, 1)) * spacing_px, rows.shape)
    inside = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    hits = np.bincount(rows[inside] * size + cols[inside], weights=ink[inside], minlength=size * size)
    sigma = max(0.5, rng.uniform(0.4, 0.7) * px_scale)
    coverage = ndimage.gaussian_filter(hits.reshape(size, size).astype(np.float32), sigma)
    # A blurred line of unit ink per pixel peaks at 1 / (sqrt(2 pi) sigma); rescale that peak to full cover.
    coverage = np.clip(coverage * np.sqrt(2.0 * np.pi) * sigma, 0.0, 1.0)
    colour = np.float32([45, 32, 25]) * rng.uniform(0.4, 1.5)
    return image + coverage[..., None] * (colour - image)


def _draw_bubbles(rng: np.random.Generator, image, grid_y, grid_x, px_scale: float) -> np.ndarray:
    if rng.random() > 0.2:
        return image
    size = image.shape[0]
    for _ in range(int(rng.integers(1, 5))):
        centre_y, centre_x = rng.uniform(-0.9, 0.9, 2)
        radius = rng.uniform(0.04, 0.15)
        offset_px = (np.hypot(grid_y - centre_y, grid_x - centre_x) - radius) * (size / 2.0)
        ring = np.exp(-((offset_px / (0.8 * px_scale)) ** 2))
        # Air bubbles refract: a bright rim, a faintly lighter inside.
        glow = ring * rng.uniform(0.4, 0.8) + (offset_px < 0) * np.float32(0.08)
        image = image + glow[..., None] * (255.0 - image)
    return image


def _apply_optics(rng: np.random.Generator, image, grid_y, grid_x) -> np.ndarray:
    rho = np.hypot(grid_y, grid_x)
    white_balance = rng.uniform(0.94, 1.04, 3).astype(np.float32)
    falloff = 1.0 - rng.uniform(0.0, 0.2) * rho**2
    image = image * falloff[..., None] * white_balance
    if rng.random() < 0.5:
        # The dermoscope's circular field of view leaves the corners dark.
        edge = rng.uniform(0.95, 1.35)
        softness = rng.uniform(0.02, 0.1)
        outside = 1.0 / (1.0 + np.exp(-np.clip((rho - edge) / softness, -30.0, 30.0)))
        dark = np.float32([18, 14, 12]) * rng.uniform(0.5, 2.0)
        image = image + outside[..., None] * (dark - image)
    return image
