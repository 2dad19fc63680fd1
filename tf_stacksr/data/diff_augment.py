"""Differentiable augmentation of what the discriminators see (DiffAugment; off by default).

With a few thousand training faces a PatchGAN learns the real crops by heart and its
gradient stops telling the generator anything general. DiffAugment (Zhao et al., NeurIPS
2020) transforms both the real and the generated batch with random, differentiable
operations before every discriminator call, so the discriminator cannot memorise and the
generator still gets gradients through the transform. Our discriminators are conditional
(they see [condition, image]), so one draw per example transforms the condition and the
image alike: a translated image next to an untranslated condition would be a new, easy cue.

Policies follow the reference implementation: `color` (brightness, saturation, contrast),
`translation` (up to 1/8 of the side, zero fill) and `cutout` (a zeroed square of half the side).
Every draw is stateless, keyed on (seed, step, replica, call) by `draw_key`, so a run resumed
after a stop repeats the transforms of an uninterrupted run, as the data stream does.
"""

from __future__ import annotations

import tensorflow as tf

POLICIES = ("color", "translation", "cutout")
_TRANSLATION_RATIO = 0.125
_CUTOUT_RATIO = 0.5


def parse_policy(text: str) -> tuple[str, ...]:
    """`"color,translation"` -> ("color", "translation"); "" -> () (off)."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in POLICIES]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"--diff_augment={text!r}: expected a comma-separated subset of "
                         f"{', '.join(POLICIES)} without repeats, or empty for off")
    return names


def translate(x: tf.Tensor, dy: tf.Tensor, dx: tf.Tensor) -> tf.Tensor:
    """x [B, H, W, C] moved by integer (dy, dx) [B] pixels; uncovered pixels are 0."""
    shape = tf.shape(x)
    b, h, w = shape[0], shape[1], shape[2]
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    rows = tf.clip_by_value(tf.range(h)[None, :] - dy[:, None] + 1, 0, h + 1)  # [B, H]
    cols = tf.clip_by_value(tf.range(w)[None, :] - dx[:, None] + 1, 0, w + 1)  # [B, W]
    batch = tf.broadcast_to(tf.range(b)[:, None, None], [b, h, w])
    index = tf.stack([batch,
                      tf.broadcast_to(rows[:, :, None], [b, h, w]),
                      tf.broadcast_to(cols[:, None, :], [b, h, w])], axis=-1)
    return tf.gather_nd(padded, index)


def cutout(x: tf.Tensor, cy: tf.Tensor, cx: tf.Tensor, size: int) -> tf.Tensor:
    """x [B, H, W, C] with the size x size square whose corner is (cy - size // 2, cx - size // 2) zeroed."""
    shape = tf.shape(x)
    top, left = (cy - size // 2)[:, None, None], (cx - size // 2)[:, None, None]
    ys = tf.range(shape[1])[None, :, None]
    xs = tf.range(shape[2])[None, None, :]
    inside = (ys >= top) & (ys < top + size) & (xs >= left) & (xs < left + size)
    return x * tf.cast(~inside, x.dtype)[..., None]


def color(x: tf.Tensor, brightness: tf.Tensor, saturation: tf.Tensor, contrast: tf.Tensor,
          groups: int = 1) -> tf.Tensor:
    """x [B, H, W, 3 * groups]: add `brightness`, scale the distance from grey by `saturation`
    and from each image's mean by `contrast` ([B] each); every RGB group gets the same factors."""
    per_example = lambda v: tf.reshape(tf.cast(v, x.dtype), [-1, 1, 1, 1, 1])
    rgb = tf.reshape(x, tf.concat([tf.shape(x)[:3], [groups, 3]], axis=0))
    rgb = rgb + per_example(brightness)
    grey = tf.reduce_mean(rgb, axis=-1, keepdims=True)
    rgb = (rgb - grey) * per_example(saturation) + grey
    mean = tf.reduce_mean(rgb, axis=[1, 2, 4], keepdims=True)
    rgb = (rgb - mean) * per_example(contrast) + mean
    return tf.reshape(rgb, tf.shape(x))


def draw_key(seed: int, step, replica, call: int) -> tf.Tensor:
    """The stateless key [2] int64 of one discriminator call: `call` numbers the calls of a step."""
    key = tf.constant([seed, 0], tf.int64)
    for data in (step, replica, call):
        key = tf.random.experimental.stateless_fold_in(key, tf.cast(data, tf.int64))
    return key


def augment(images: list[tf.Tensor], policy: tuple[str, ...], key: tf.Tensor) -> list[tf.Tensor]:
    """The same random transform per example applied to every [B, H, W, 3] tensor of `images`.

    `key` ([2] integer, e.g. from `draw_key`) fixes the draws: the same key, the same transforms.
    """
    if not policy:
        return images
    x = tf.concat(images, axis=-1)
    b, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]

    def draw(index, low, high, dtype=tf.float32):  # each draw has its own sub-key, whatever the policy
        sub_key = tf.random.experimental.stateless_fold_in(key, index)
        return tf.random.stateless_uniform([b], sub_key, low, high, dtype=dtype)

    if "color" in policy:
        x = color(x, draw(0, -0.5, 0.5), draw(1, 0.0, 2.0), draw(2, 0.5, 1.5), groups=len(images))
    if "translation" in policy:
        sy, sx = int(h * _TRANSLATION_RATIO + 0.5), int(w * _TRANSLATION_RATIO + 0.5)
        x = translate(x, draw(3, -sy, sy + 1, tf.int32), draw(4, -sx, sx + 1, tf.int32))
    if "cutout" in policy:
        size = int(h * _CUTOUT_RATIO + 0.5)
        x = cutout(x, draw(5, 0, h + 1 - size % 2, tf.int32), draw(6, 0, w + 1 - size % 2, tf.int32), size)
    return tf.split(x, len(images), axis=-1)
