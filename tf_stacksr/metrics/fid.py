"""Fréchet Inception Distance, computed as TTUR / pytorch-fid / clean-fid(legacy) compute it.

Pipeline: uint8 RGB image -> bilinear resize to 299 with TF's legacy sampling (no half-pixel
centres, the `ResizeBilinear` op of the original graph) -> (x - 128) / 128 -> the standard
FID Inception (`metrics.inception`) -> 2048-d pool_3 features -> mean and covariance
(float64, accumulated batch by batch so a large set never sits in memory) -> Fréchet distance
with pytorch-fid's fallback (eps on the diagonals when sqrtm(Σ1Σ2) is not finite).

Below 2,048 images the 2048x2048 covariance is rank-deficient and FID is biased upwards
(and noisy); it is still computed, with a warning, and every caller reports n beside it.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Iterable

import numpy as np
import scipy.linalg
import tensorflow as tf

from tf_stacksr.metrics import inception

MIN_RELIABLE_N = inception.FEATURE_DIM


def resize_for_inception(images: tf.Tensor) -> tf.Tensor:
    """[N, H, W, 3] or [H, W, 3] images in [0, 255] (any dtype) -> float32 at 299x299, still in [0, 255]."""
    images = tf.cast(images, tf.float32)
    single = images.shape.rank == 3
    batch = images[tf.newaxis] if single else images
    resized = tf.raw_ops.ResizeBilinear(
        images=batch, size=[inception.INPUT_SIZE, inception.INPUT_SIZE], align_corners=False, half_pixel_centers=False)
    return resized[0] if single else resized


class InceptionFeatures:
    """Callable: batch of RGB images in [0, 255] (uint8 or float, any size) -> float64 [N, 2048]."""

    def __init__(self, cache: str | None = None):
        self.model = inception.load_fid_inception(cache)
        self._features = tf.function(self._forward, input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])

    def _forward(self, images: tf.Tensor) -> tf.Tensor:
        x = (resize_for_inception(images) - 128.0) / 128.0
        return self.model(x, training=False)

    def __call__(self, images) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected RGB images [N, H, W, 3], got shape {images.shape}")
        return self._features(tf.constant(images, tf.float32)).numpy().astype(np.float64)


@dataclasses.dataclass(frozen=True)
class FidStats:
    """Mean and covariance (ddof=1, as np.cov) of the Inception features of n images."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int

    def save(self, path: str) -> None:
        """`.npz` with `mu`, `sigma` (pytorch-fid's keys, so its tools read it) and `n`."""
        np.savez(path, mu=self.mu, sigma=self.sigma, n=np.int64(self.n))

    @classmethod
    def load(cls, path: str) -> "FidStats":
        """Reads our `.npz` or pytorch-fid's (no `n`: reported as 0, meaning unknown)."""
        try:
            with np.load(path) as data:
                mu, sigma = data["mu"].astype(np.float64), data["sigma"].astype(np.float64)
                n = int(data["n"]) if "n" in data else 0
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"{path}: expected an .npz with arrays 'mu' and 'sigma' (and 'n'): {err}") from err
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise ValueError(f"{path}: 'mu' {mu.shape} and 'sigma' {sigma.shape} are not a [d] mean and [d, d] covariance")
        return cls(mu, sigma, n)


class StatsAccumulator:
    """Streaming mean and covariance in float64 (Chan et al.'s pairwise update: no catastrophic cancellation)."""

    def __init__(self, dim: int = inception.FEATURE_DIM):
        self.n = 0
        self._mean = np.zeros(dim, np.float64)
        self._comoment = np.zeros((dim, dim), np.float64)

    def update(self, features: np.ndarray) -> None:
        features = np.asarray(features, np.float64)
        m = features.shape[0]
        if m == 0:
            return
        batch_mean = features.mean(axis=0)
        centred = features - batch_mean
        delta = batch_mean - self._mean
        total = self.n + m
        self._comoment += centred.T @ centred + np.outer(delta, delta) * (self.n * m / total)
        self._mean += delta * (m / total)
        self.n = total

    def result(self) -> FidStats:
        if self.n < 2:
            raise ValueError(f"FID statistics need at least 2 images, got {self.n}")
        return FidStats(self._mean.copy(), self._comoment / (self.n - 1), self.n)


def compute_stats(batches: Iterable[np.ndarray], features: InceptionFeatures) -> FidStats:
    """Stats of all images in an iterable of [N, H, W, 3] batches."""
    acc = StatsAccumulator()
    for batch in batches:
        acc.update(features(batch))
    return acc.result()


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(Σ1 + Σ2 - 2 sqrt(Σ1 Σ2)), exactly as pytorch-fid computes it.

    If sqrtm(Σ1 Σ2) is not finite (singular product), eps is added to both diagonals; a
    result with a sizeable imaginary diagonal is an error, a tiny one is numerical noise.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        warnings.warn(f"FID: singular product of covariances; adding {eps} to their diagonals")
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: imaginary component {np.max(np.abs(covmean.imag))} in sqrtm(Σ1 Σ2)")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid(a: FidStats, b: FidStats) -> float:
    """FID between two sets' statistics; warns when either has fewer than 2,048 images."""
    small = [s.n for s in (a, b) if s.n < MIN_RELIABLE_N]
    if small:
        warnings.warn(f"FID from n={a.n} vs n={b.n} images: below {MIN_RELIABLE_N} the covariance is rank-deficient "
                      "and FID is biased upwards; compare only FIDs computed with the same n"
                      + (" (n=0: count unknown, stats from another tool)" if 0 in small else ""))
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)


def is_stats_file(path: str) -> bool:
    return path.lower().endswith(".npz") and os.path.isfile(path)
