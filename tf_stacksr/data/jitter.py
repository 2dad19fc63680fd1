"""Random sub-pixel shift and zoom, and random tighter framing, of training faces (off by default).

Aligned faces sit at the same place in every crop, so each training face yields one fixed LR
input per mirror side, seen again every epoch, and a generator can learn those exact inputs
by heart. A random shift of a fraction of a pixel moves the sampling grid of the HR -> LR
step, so the same face gives a new LR input every time, while a shift of a few pixels and a
few percent of zoom stand in for the alignment errors of real photos.

The face is resampled at twice its size (bicubic up, bilinear warp, antialiased bicubic down),
so the warp blurs the target far less than a bilinear warp at its own size would.

Other aligners frame faces differently (docs/serving.md, "Input faces"): the face box spans
0.7 of our crops, 0.5-0.67 of dlib's chips, less of FFHQ's. `crop` covers such a range: faces
prepared with a wider framing (a smaller `prepare --face_scale`) are cut to a random centred
square of between `crop_min` and all of their side, at the resolution they were prepared at,
before they are resized to the HR size, so a tighter framing is not an enlarged (blurred) one.

Every draw is stateless, keyed on the example's (seed, index), so a resumed run sees the same faces.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tf_stacksr.config import MIN_JITTER_CROP

_OVERSAMPLE = 2


@dataclasses.dataclass(frozen=True)
class Jitter:
    """Ranges of the per-example draws: shift in +-`shift` HR pixels per axis, zoom in 1 +- `zoom`,
    and a centred square of `crop_min` to 1 of the prepared face's side (log-uniform; 1: off)."""

    shift: float = 0.0
    zoom: float = 0.0
    crop_min: float = 1.0

    def __post_init__(self) -> None:
        if self.shift < 0:
            raise ValueError(f"--jitter_shift={self.shift!r}: expected a shift in HR pixels >= 0")
        if not 0 <= self.zoom < 0.5:
            raise ValueError(f"--jitter_zoom={self.zoom!r}: expected a zoom fraction in [0, 0.5)")
        if not MIN_JITTER_CROP <= self.crop_min <= 1:
            raise ValueError(f"--jitter_crop={self.crop_min!r}: expected a fraction of the side in"
                             f" [{MIN_JITTER_CROP}, 1]")

    @property
    def active(self) -> bool:
        """True when `apply` warps faces (shift or zoom)."""
        return self.shift > 0 or self.zoom > 0

    def crop_box(self, key: tf.Tensor) -> tf.Tensor | None:
        """[y1, x1, y2, x2] (fractions of the side) of the centred square to cut from one prepared
        face, drawn from the stateless key [2] int64; None when cropping is off."""
        if self.crop_min >= 1:
            return None
        key = tf.stack([tf.cast(key[0], tf.int64) * 7919 + 13, tf.cast(key[1], tf.int64)])
        u = tf.random.stateless_uniform([], seed=key)
        margin = (1.0 - tf.pow(tf.constant(self.crop_min, tf.float32), u)) / 2.0
        return tf.stack([margin, margin, 1.0 - margin, 1.0 - margin])

    def draw(self, key: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(dx, dy, zoom) for one example, from the stateless key [2] int64."""
        key = tf.stack([tf.cast(key[0], tf.int64) * 7907 + 11, tf.cast(key[1], tf.int64)])
        u = tf.random.stateless_uniform([3], seed=key, minval=-1.0, maxval=1.0)
        return u[0] * self.shift, u[1] * self.shift, 1.0 + u[2] * self.zoom


def warp(face: tf.Tensor, dx: tf.Tensor, dy: tf.Tensor, zoom: tf.Tensor) -> tf.Tensor:
    """Face [H, H, 3] in [-1, 1] moved by (dx, dy) HR pixels and zoomed about its centre.

    Output pixel (x, y) shows the input at ((x - c) / zoom + c - dx, (y - c) / zoom + c - dy);
    borders are filled by reflection, so no black edges enter the targets.
    """
    size = tf.shape(face)[0]
    big = _OVERSAMPLE * size
    up = tf.image.resize(face[None], [big, big], method="bicubic")
    centre = (tf.cast(big, tf.float32) - 1.0) / 2.0
    inv = 1.0 / zoom
    transform = tf.stack([inv, 0.0, centre - centre * inv - _OVERSAMPLE * dx,
                          0.0, inv, centre - centre * inv - _OVERSAMPLE * dy, 0.0, 0.0])
    moved = tf.raw_ops.ImageProjectiveTransformV3(
        images=up, transforms=transform[None], output_shape=tf.stack([big, big]), fill_value=0.0,
        interpolation="BILINEAR", fill_mode="REFLECT")
    down = tf.image.resize(moved, [size, size], method="bicubic", antialias=True)[0]
    return tf.clip_by_value(down, -1.0, 1.0)


def crop(face: tf.Tensor, box: tf.Tensor) -> tf.Tensor:
    """The square `box` of a float face [H, W, 3], resampled (bilinear) to [H, W]: its own
    resolution, so the resize to the HR size that follows sees as many pixels as the crop has."""
    size = tf.shape(face)[:2]
    return tf.image.crop_and_resize(face[None], box[None], [0], size, method="bilinear")[0]


def apply(face: tf.Tensor, options: Jitter, key: tf.Tensor) -> tf.Tensor:
    """`warp` with this example's draw; the face unchanged when jitter is off."""
    if not options.active:
        return face
    return warp(face, *options.draw(key))
