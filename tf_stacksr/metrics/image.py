"""PSNR and SSIM per image, on RGB and on the luma (Y) channel, batched in float64 numpy.

Conventions, chosen to match what super-resolution papers report and `skimage.metrics`:
- Inputs are uint8 RGB [N, H, W, 3]; data range 255; no border crop.
- Y is ITU-R BT.601 "studio swing" luma as MATLAB's rgb2ycbcr / skimage.color.rgb2ycbcr:
  Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, unrounded, in [16, 235]. Most SR papers
  report PSNR/SSIM on this Y; the RGB variants average over the three channels.
- SSIM is Wang et al. 2004: 11x11 Gaussian window (sigma 1.5, truncated at 3.5 sigma), population
  covariances, K1 = 0.01, K2 = 0.03, mean over the "valid" window positions, i.e.
  `skimage.metrics.structural_similarity(a, b, data_range=255, gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, channel_axis=-1)`.
- PSNR is 10 log10(255^2 / MSE) per image (infinite for identical images); averages over a set
  are means of per-image values, as in the SR literature.
"""

from __future__ import annotations

import numpy as np

DATA_RANGE = 255.0
_SIGMA = 1.5
_RADIUS = int(3.5 * _SIGMA + 0.5)  # scipy.ndimage.gaussian_filter's truncate=3.5 -> 11x11 window
_K1, _K2 = 0.01, 0.03
_BT601_Y = np.array([65.481, 128.553, 24.966]) / 255.0


def _as_batch(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[np.newaxis]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected RGB images [N, H, W, 3] or [H, W, 3], got shape {images.shape}")
    return images.astype(np.float64)


def rgb_to_y(images) -> np.ndarray:
    """uint8 RGB [N, H, W, 3] -> float64 BT.601 luma [N, H, W, 1] in [16, 235]."""
    return 16.0 + _as_batch(images) @ _BT601_Y[:, np.newaxis]


def psnr(a, b) -> np.ndarray:
    """Per-image PSNR (dB) between batches of [N, H, W, C] images in [0, 255]."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    _check_pair(a, b)
    mse = np.mean((a - b) ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(DATA_RANGE**2 / mse)


def _gaussian_kernel() -> np.ndarray:
    x = np.arange(-_RADIUS, _RADIUS + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / _SIGMA) ** 2)
    return k / k.sum()


def _filter_valid(x: np.ndarray) -> np.ndarray:
    """Separable Gaussian over H and W of [N, H, W, C], keeping only fully covered positions."""
    k = _gaussian_kernel()
    x = np.lib.stride_tricks.sliding_window_view(x, k.size, axis=1) @ k
    return np.lib.stride_tricks.sliding_window_view(x, k.size, axis=2) @ k


def ssim(a, b) -> np.ndarray:
    """Per-image SSIM between batches of [N, H, W, C] images in [0, 255] (mean over channels)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    _check_pair(a, b)
    if min(a.shape[1:3]) < 2 * _RADIUS + 1:
        raise ValueError(f"SSIM needs images of at least {2 * _RADIUS + 1}x{2 * _RADIUS + 1}, got {a.shape[1:3]}")
    c1, c2 = (_K1 * DATA_RANGE) ** 2, (_K2 * DATA_RANGE) ** 2
    mu_a, mu_b = _filter_valid(a), _filter_valid(b)
    var_a = _filter_valid(a * a) - mu_a**2
    var_b = _filter_valid(b * b) - mu_b**2
    cov = _filter_valid(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim_map.mean(axis=(1, 2, 3))


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"expected two image batches [N, H, W, C] of equal shape, got {a.shape} and {b.shape}")


def image_metrics(restored, reference) -> dict[str, np.ndarray]:
    """Per-image `psnr_y`, `ssim_y`, `psnr_rgb`, `ssim_rgb` of uint8 RGB batches."""
    restored, reference = _as_batch(restored), _as_batch(reference)
    y_restored, y_reference = rgb_to_y(restored), rgb_to_y(reference)
    return {
        "psnr_y": psnr(y_restored, y_reference),
        "ssim_y": ssim(y_restored, y_reference),
        "psnr_rgb": psnr(restored, reference),
        "ssim_rgb": ssim(restored, reference),
    }
