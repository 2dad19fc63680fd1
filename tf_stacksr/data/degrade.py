"""Optional realistic degradation for real-world LR faces (`--degradation=realistic`).

The paper trains on clean bicubic LR (`pairs.make_pairs`), and a model trained that way
sharpens noise and JPEG blocks of real photos. This mode makes the network input from a HR
face the way cameras and the web do, each step drawn per example:
- blur (lens, focus, small motion): with probability `blur_probability`, a random anisotropic
  Gaussian;
- the downscale to the LR size with one of the kernels photo tools use (`kernels`: area,
  antialiased bilinear, antialiased bicubic);
- sensor noise: with probability `noise_probability`, Gaussian noise of a random strength;
- JPEG at the LR size (a web thumbnail): with probability `jpeg_probability`, a random quality;
then uint8 quantisation. Some inputs are therefore clean, as some photos are. The targets stay
clean: the LR-stage target is the clean bicubic LR (so G1 learns to remove the damage), the
others are the HR face downscaled.

Every random choice is stateless, keyed on a per-example seed, so a resumed run degrades
example i exactly as the uninterrupted run did. Use it with
`pipeline.training_dataset(..., degradation=Degradation())`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import tensorflow as tf

from tf_stacksr.data import pairs

KERNEL_SIZE = 21
# Downscaling kernels, by name -> (tf.image.resize method, antialias).
KERNELS = {"area": ("area", False), "bilinear": ("bilinear", True), "bicubic": ("bicubic", True)}


@dataclasses.dataclass(frozen=True)
class Degradation:
    """Probabilities and ranges the per-example parameters are drawn from (uniformly)."""

    blur_probability: float = 0.7
    blur_sigma: tuple[float, float] = (0.2, 2.5)  # Gaussian sigma along each axis, in HR pixels
    kernels: tuple[str, ...] = ("area", "bilinear", "bicubic")  # the downscale, one drawn per example
    noise_probability: float = 0.5
    noise_sigma: tuple[float, float] = (1.0, 10.0)  # Gaussian noise std on the LR face, in uint8 levels
    jpeg_probability: float = 0.8
    jpeg_quality: tuple[int, int] = (30, 95)

    def __post_init__(self) -> None:
        for name in ("blur_sigma", "noise_sigma", "jpeg_quality"):
            lo, hi = getattr(self, name)
            if lo < 0 or hi < lo:
                raise ValueError(f"Degradation.{name}={(lo, hi)}: expected 0 <= low <= high")
        if self.jpeg_quality[1] > 100:
            raise ValueError(f"Degradation.jpeg_quality={self.jpeg_quality}: expected qualities in [0, 100]")
        for name in ("blur_probability", "noise_probability", "jpeg_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"Degradation.{name}={getattr(self, name)}: expected a probability in [0, 1]")
        unknown = [k for k in self.kernels if k not in KERNELS]
        if not self.kernels or unknown:
            raise ValueError(f"Degradation.kernels={self.kernels}: expected one or more of {', '.join(KERNELS)}")

    def make_pairs(self, hr: tf.Tensor, stage_sizes: Sequence[int], seed: tf.Tensor) -> dict[str, tf.Tensor]:
        """Like `pairs.make_pairs` for one HR face [H, H, 3] in [-1, 1], with a degraded input A."""
        clean = pairs.make_pairs(hr, stage_sizes)
        lr = degrade_lr(hr, int(stage_sizes[0]), self, seed)
        return {"inputs": pairs.upscale(lr, int(stage_sizes[-1])), "targets": clean["targets"]}


def _uniform(seed: tf.Tensor, salt: int, bounds: tuple[float, float]) -> tf.Tensor:
    key = tf.stack([tf.cast(seed[0], tf.int64) * 7919 + salt, tf.cast(seed[1], tf.int64)])
    return tf.random.stateless_uniform([], seed=key, minval=float(bounds[0]), maxval=float(bounds[1]) + 1e-6)


def gaussian_kernel(sigma_x: tf.Tensor, sigma_y: tf.Tensor, angle: tf.Tensor) -> tf.Tensor:
    """Normalised anisotropic Gaussian [KERNEL_SIZE, KERNEL_SIZE] rotated by `angle` (radians)."""
    r = tf.range(KERNEL_SIZE, dtype=tf.float32) - (KERNEL_SIZE - 1) / 2
    y, x = tf.meshgrid(r, r, indexing="ij")
    c, s = tf.cos(angle), tf.sin(angle)
    u, v = c * x + s * y, -s * x + c * y
    k = tf.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return k / tf.reduce_sum(k)


def _happens(seed: tf.Tensor, salt: int, probability: float) -> tf.Tensor:
    return _uniform(seed, salt, (0.0, 1.0)) < probability


def _blur(image: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """`image` [H, W, C] convolved with `kernel` [k, k] in each channel, edges mirrored. The
    channels run as a batch of one-channel images: on CPUs several times faster than a depthwise
    convolution, with the same sums."""
    pad = [[KERNEL_SIZE // 2] * 2, [KERNEL_SIZE // 2] * 2, [0, 0]]
    channels = tf.transpose(tf.pad(image, pad, mode="SYMMETRIC"), (2, 0, 1))[..., None]
    blurred = tf.nn.conv2d(channels, kernel[:, :, None, None], 1, "VALID")
    return tf.transpose(blurred[..., 0], (1, 2, 0))


def _downscale(images: tf.Tensor, size: int, kernel: str) -> tf.Tensor:
    method, antialias = KERNELS[kernel]
    return tf.clip_by_value(tf.image.resize(images, [size, size], method=method, antialias=antialias), -1.0, 1.0)


def degrade_lr(hr: tf.Tensor, lr_size: int, options: Degradation, seed: tf.Tensor) -> tf.Tensor:
    """HR face [H, H, 3] in [-1, 1] -> degraded, uint8-quantised LR face [lr, lr, 3] in [-1, 1]."""
    sx = tf.maximum(_uniform(seed, 1, options.blur_sigma), 1e-3)
    sy = tf.maximum(_uniform(seed, 2, options.blur_sigma), 1e-3)
    kernel = gaussian_kernel(sx, sy, _uniform(seed, 3, (0.0, math.pi)))
    image = tf.cond(_happens(seed, 7, options.blur_probability), lambda: _blur(hr, kernel), lambda: hr)
    choice = tf.minimum(tf.cast(_uniform(seed, 8, (0.0, len(options.kernels))), tf.int32), len(options.kernels) - 1)
    lr = tf.switch_case(choice, [lambda k=k: _downscale(image, lr_size, k) for k in options.kernels])
    lr.set_shape([lr_size, lr_size, 3])
    noise = tf.random.stateless_normal(tf.shape(lr), seed=tf.stack([tf.cast(seed[0], tf.int64) * 7919 + 4, tf.cast(seed[1], tf.int64)]))
    noisy = tf.clip_by_value(lr + noise * _uniform(seed, 5, options.noise_sigma) / 127.5, -1.0, 1.0)
    lr = pairs.float_to_uint8(tf.where(_happens(seed, 9, options.noise_probability), noisy, lr))
    quality = tf.cast(tf.round(_uniform(seed, 6, options.jpeg_quality)), tf.int32)
    lr = tf.cond(_happens(seed, 10, options.jpeg_probability), lambda: tf.image.adjust_jpeg_quality(lr, quality), lambda: lr)
    return pairs.uint8_to_float(lr)
