"""Image grids written as PNG: what people look at to judge a model."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf


def _to_uint8(image) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    return np.clip(np.round((image.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def grid(columns: Sequence, size: int, pad: int = 2) -> np.ndarray:
    """Lay out columns of image batches side by side, one face per row.

    `columns` is a list of batches ([N, h, w, 3], uint8 or float in [-1, 1], any sizes);
    each image is resized with nearest neighbour to `size` so pixels stay visible.
    """
    n = len(columns[0])
    canvas = np.full((n * (size + pad) + pad, len(columns) * (size + pad) + pad, 3), 255, np.uint8)
    for c, batch in enumerate(columns):
        resized = tf.image.resize(_to_uint8(batch), [size, size], method="nearest").numpy().astype(np.uint8)
        for r in range(n):
            y, x = pad + r * (size + pad), pad + c * (size + pad)
            canvas[y:y + size, x:x + size] = resized[r]
    return canvas


def write_png(image: np.ndarray, path: str) -> None:
    tf.io.write_file(path, tf.io.encode_png(image))
