"""Fréchet Inception Distance, computed as TTUR / pytorch-fid / clean-fid(legacy) compute it.

Pipeline: uint8 RGB image -> bilinear resize to 299 with TF's legacy sampling (no half-pixel
centres, the `ResizeBilinear` op of the original graph) -> (x - 128) / 128 -> the standard
FID Inception (`metrics.inception`) -> 2048-d pool_3 features -> mean and covariance
(float64, accumulated batch by batch so a large set never sits in memory) -> Fréchet distance
(see `trace_sqrt_product` for how its matrix square root is taken, and why).

Below 2,048 images the 2048x2048 covariance is rank-deficient and FID is biased upwards
(and noisy); it is still computed, with a warning, and every caller reports n beside it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings

import numpy as np
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


@functools.lru_cache(maxsize=2)
def shared_features(cache: str | None = None) -> InceptionFeatures:
    """One `InceptionFeatures` per cache dir and process: building the 22M-parameter model costs seconds."""
    return InceptionFeatures(cache)


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


def _psd_eigenvalues_floor(w: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with rounding noise zeroed (below numpy's matrix_rank tolerance).

    A covariance of n < d samples has d - n + 1 zero eigenvalues that come out as +-1e-14-ish;
    kept, their square roots (~1e-7 each, thousands of them) would bias the trace by ~1e-4.
    """
    if w.size == 0:
        return w
    tolerance = np.abs(w).max() * w.size * np.finfo(np.float64).eps
    return np.where(w > tolerance, w, 0.0)


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr(sqrt(Σ1 Σ2)) for covariances Σ1, Σ2.

    With Σ1 = V diag(w) Vᵀ (keeping its r non-zero eigenvalues) and B = V diag(√w), Σ1 Σ2 has
    the same non-zero eigenvalues as the symmetric PSD r x r matrix Bᵀ Σ2 B, so the trace is the
    sum of their square roots. This is the quantity pytorch-fid gets from
    `scipy.linalg.sqrtm(Σ1 @ Σ2)`, computed with symmetric eigensolvers instead: several times
    faster at 2048-d (far more when n < 2048 makes r small), and exact where sqrtm of the
    singular, non-symmetric product of rank-deficient covariances drifts (~1e-4 for a set
    against itself) or turns complex, which is what pytorch-fid's "add eps to the diagonals"
    fallback patches over; no such fallback is needed here.
    """
    w, v = np.linalg.eigh(sigma1)
    keep = _psd_eigenvalues_floor(w) > 0
    b = v[:, keep] * np.sqrt(w[keep])
    m = b.T @ sigma2 @ b
    eigenvalues = _psd_eigenvalues_floor(np.linalg.eigvalsh((m + m.T) / 2)) if m.size else np.zeros(0)
    return float(np.sqrt(eigenvalues).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(Σ1 + Σ2 - 2 sqrt(Σ1 Σ2)): the Fréchet distance of two Gaussians, in float64."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    for name, value in (("mu", (mu1, mu2)), ("sigma", (sigma1, sigma2))):
        if not all(np.isfinite(v).all() for v in value):
            raise ValueError(f"FID: non-finite values in {name}")
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2))


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


def _fid_of_grams(gxx: np.ndarray, gyy: np.ndarray, gxy: np.ndarray) -> float:
    """FID of two sets of n feature vectors given only their Gram matrices (Gxy = X Yᵀ, n x n).

    With C the centring matrix and A = Xᵀ C / sqrt(n - 1), Σx = A Aᵀ; the non-zero eigenvalues
    of Σx Σy are the squared singular values of Axᵀ Ay = C Gxy C / (n - 1), so Tr(sqrt(Σx Σy))
    is its nuclear norm, and Tr(Σx) = Tr(C Gxx C) / (n - 1). Exact, and O(n³) once the Grams
    are known, so a face set can be resampled thousands of times (`paired_fid_difference`).
    """
    n = len(gxx)
    centre = lambda g: g - g.mean(axis=0) - g.mean(axis=1, keepdims=True) + g.mean()  # noqa: E731  C G C
    mean_gap = gxx.mean() + gyy.mean() - 2 * gxy.mean()  # ||mean_x - mean_y||²
    nuclear = np.linalg.svd(centre(gxy), compute_uv=False).sum()
    return float(mean_gap + (np.trace(centre(gxx)) + np.trace(centre(gyy)) - 2 * nuclear) / (n - 1))


def paired_fid_difference(method: np.ndarray, baseline: np.ndarray, reference: np.ndarray, rounds: int = 1000,
                          seed: int = 0) -> dict | None:
    """FID(method, reference) - FID(baseline, reference) and its standard error, for sets whose
    row i is the same face in each ([n, d] Inception features).

    FID is a property of a whole set, so it has no face-by-face spread; the standard error is
    the spread of the difference over `rounds` paired bootstrap resamples of the faces (one set
    of face indices, drawn with replacement, applied to all three sets). A gap inside about two
    of them is within what another draw of the same number of faces could give. None below 3
    faces or when the sets do not pair up.
    """
    sets = [np.asarray(f, np.float64) for f in (method, baseline, reference)]
    n = len(sets[2])
    if n < 3 or any(len(f) != n for f in sets):
        return None
    m, b, r = sets
    grams = {k: x @ y.T for k, (x, y) in {"mm": (m, m), "bb": (b, b), "rr": (r, r), "mr": (m, r), "br": (b, r)}.items()}

    def difference(i: np.ndarray) -> float:
        g = {k: v[np.ix_(i, i)] for k, v in grams.items()}
        return _fid_of_grams(g["mm"], g["rr"], g["mr"]) - _fid_of_grams(g["bb"], g["rr"], g["br"])

    rng = np.random.default_rng(seed)
    draws = [difference(rng.integers(0, n, n)) for _ in range(rounds)]
    return {"mean": difference(np.arange(n)), "se": float(np.std(draws, ddof=1)), "n": n}
