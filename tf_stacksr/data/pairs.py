"""HR face -> (LR, blurry input A, per-stage targets), as in the paper's Section 4.1.

The degradation lives here and nowhere else: training, evaluation and export all call these
functions, so a model is always scored on exactly the inputs it was trained on.
Convention: images are float32 in [-1, 1] inside models, uint8 at file and serving boundaries.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf


def uint8_to_float(images: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def float_to_uint8(images: tf.Tensor) -> tf.Tensor:
    """float [-1, 1] -> uint8, rounded and clipped (out-of-range outputs saturate)."""
    return tf.cast(tf.round(tf.clip_by_value((tf.cast(images, tf.float32) + 1.0) * 127.5, 0.0, 255.0)), tf.uint8)


def downscale(images: tf.Tensor, size: int) -> tf.Tensor:
    """Antialiased bicubic downscale of float [-1, 1] images (the paper's HR -> LR step)."""
    out = tf.image.resize(images, [size, size], method="bicubic", antialias=True)
    return tf.clip_by_value(out, -1.0, 1.0)


def bicubic_resize(images: tf.Tensor, size: int) -> tf.Tensor:
    """Bicubic resize to size x size, not antialiased: a fixed linear map of the pixels (the
    LiteRT export writes it as matrix products, `serving.litert_export.bicubic_matrix`)."""
    return tf.image.resize(images, [size, size], method="bicubic")


def upscale(images: tf.Tensor, size: int) -> tf.Tensor:
    """Bicubic upscale of float [-1, 1] images: LR -> the blurry network input A."""
    return tf.clip_by_value(bicubic_resize(images, size), -1.0, 1.0)


def quantize(images: tf.Tensor) -> tf.Tensor:
    """Round float [-1, 1] images to the 256 levels a real uint8 LR photo has."""
    return uint8_to_float(float_to_uint8(images))


def make_pairs(hr: tf.Tensor, stage_sizes: Sequence[int]) -> dict[str, tf.Tensor]:
    """Training example(s) from HR faces (float [-1, 1], [..., H, H, 3] with H = stage_sizes[-1]).

    Returns `inputs` (A: the uint8-quantised LR face bicubic-upscaled to H) and `targets`, a
    tuple of ground truths at every stage size (LR first; the LR target is the LR face itself,
    the paper's B for L_BB'; the last target is `hr`).
    """
    hr_size = int(stage_sizes[-1])
    lr = quantize(downscale(hr, int(stage_sizes[0])))
    targets = [lr] + [downscale(hr, int(s)) for s in stage_sizes[1:-1]] + [hr]
    return {"inputs": upscale(lr, hr_size), "targets": tuple(targets)}
