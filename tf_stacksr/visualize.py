"""Image grids written as PNG: what people look at to judge a model (training samples,
evaluation comparison figures)."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

HEADER = 22  # height of the title strip, in pixels


def _to_uint8(image) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    return np.clip(np.round((image.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def grid(columns: Sequence, size: int, titles: Sequence[str] | None = None, pad: int = 2) -> np.ndarray:
    """Lay out columns of image batches side by side, one face per row (uint8 RGB).

    `columns` is a list of batches ([N, h, w, 3], uint8 or float in [-1, 1], any sizes); each
    image is enlarged with nearest neighbour to `size`, so LR pixels stay visible and no method
    is smoothed for display. `titles` (one per column) go in a strip on top, cut to fit.
    """
    rows = min(len(c) for c in columns)
    top = HEADER if titles else 0
    canvas = np.full((top + rows * (size + pad) + pad, len(columns) * (size + pad) + pad, 3), 255, np.uint8)
    for c, batch in enumerate(columns):
        x = pad + c * (size + pad)
        for r in range(rows):
            y = top + pad + r * (size + pad)
            canvas[y:y + size, x:x + size] = cv2.resize(_to_uint8(batch[r]), (size, size), interpolation=cv2.INTER_NEAREST)
        if titles:
            label = titles[c] if len(titles[c]) <= size // 8 else titles[c][: size // 8 - 1] + "~"
            cv2.putText(canvas, label, (x + 2, HEADER - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas

