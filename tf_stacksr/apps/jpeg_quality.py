"""How hard a photo was JPEG-compressed, read from its pixels.

JPEG stores each 8x8 block of the luma as DCT coefficients rounded to multiples of a
quantisation table; decoding keeps them there, up to the small rounding of the colour
conversion. So the luma of a decoded JPEG, cut into the same 8x8 grid and transformed again,
has coefficients that sit on that table's multiples, while those of a photo that was never
compressed (or only lightly) do not. `estimate_quality` tries the tables of the standard IJG
encoder (libjpeg, Pillow, OpenCV, TensorFlow and most web tools) at every quality and returns
the quality whose table the coefficients fit; None when none fits (not JPEG'd, compressed so
lightly that the steps are lost in the rounding, resized or cropped off the 8x8 grid after
compression, or an encoder with other tables).

It works on the decoded pixels, so it needs no file: arrays, PNG copies of JPEGs and frames of a
pipeline are read alike. `enhance` uses it to send the faces of compressed photos to the models
trained for compressed inputs (`routing`).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import fft

# The luminance quantisation table of the JPEG standard (ITU T.81 Annex K.1), the IJG encoder's
# table at quality 50, rows of the 8x8 block.
LUMA_TABLE_Q50 = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
], dtype=np.float64)
MIN_COEFFICIENTS = 32  # nonzero quantised coefficients needed to judge a table
MIN_FIT = 0.5  # mean cos(2 pi c / step) over them; ~0 off the grid, ~1 on it
MAX_BLOCKS = 512  # the most textured blocks judged (flat ones keep no coefficients to judge by)
SAMPLED_BLOCKS = 8 * MAX_BLOCKS  # ... of about this many, evenly spread over a large photo


def ijg_luma_table(quality: int) -> np.ndarray:
    """The IJG encoder's luma table at `quality` (1-100; libjpeg's `jpeg_quality_scaling`, baseline)."""
    if not 1 <= quality <= 100:
        raise ValueError(f"quality={quality}: expected 1-100")
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((LUMA_TABLE_Q50 * scale + 50) // 100, 1, 255)


# The tables estimate_quality tries, qualities 1-99 in order.
_TABLES = [ijg_luma_table(quality).astype(np.float32) for quality in range(1, 100)]


def luma_dct_blocks(rgb: np.ndarray, max_blocks: int | None = None) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> the DCT coefficients [N, 8, 8] of its luma in JPEG's 8x8 grid.

    Luma and level shift as JPEG's encoder takes them (BT.601 full range, rounded to integers,
    minus 128); the orthonormal 2-D DCT-II is JPEG's forward DCT. The grid starts at the top-left
    pixel; partial blocks at the right and bottom edges are left out. `max_blocks`: transform at
    most about this many, evenly spread over the photo.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {rgb.shape}")
    luma = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2YCrCb)[..., 0]
    h, w = (luma.shape[0] // 8) * 8, (luma.shape[1] // 8) * 8
    blocks = luma[:h, :w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    if max_blocks and len(blocks) > max_blocks:
        blocks = blocks[:: -(-len(blocks) // max_blocks)]
    return fft.dctn(blocks.astype(np.float32) - 128.0, type=2, norm="ortho", axes=(1, 2))


def table_fit(coefficients: np.ndarray, table: np.ndarray) -> tuple[float, int]:
    """How well DCT blocks [N, 8, 8] sit on the multiples of `table`: (mean cos(2 pi c / step), count)
    over the coefficients at least half a step from zero (the ones JPEG kept)."""
    kept = np.abs(coefficients) >= table / 2
    count = int(kept.sum())
    if count == 0:
        return 0.0, 0
    phase = np.broadcast_to(coefficients / table, coefficients.shape)[kept]
    return float(np.cos(2 * np.pi * phase).mean()), count


def estimate_quality(rgb: np.ndarray) -> int | None:
    """The IJG JPEG quality (1-99) that `rgb` (uint8 [H, W, 3]) was last compressed at; None if none fits.

    Of the qualities whose table the coefficients fit (mean cosine >= MIN_FIT over at least
    MIN_COEFFICIENTS kept coefficients, in the MAX_BLOCKS most textured of SAMPLED_BLOCKS blocks),
    the one with the best fit. Quality 100 (every step 1) leaves nothing to tell from rounding,
    so such photos, like those never compressed, read as None.
    """
    coefficients = luma_dct_blocks(rgb, SAMPLED_BLOCKS)
    if len(coefficients) == 0:
        return None
    if len(coefficients) > MAX_BLOCKS:
        texture = np.abs(coefficients).sum(axis=(1, 2)) - np.abs(coefficients[:, 0, 0])
        coefficients = coefficients[np.argpartition(texture, -MAX_BLOCKS)[-MAX_BLOCKS:]]
    best, best_fit = None, MIN_FIT
    for quality, table in enumerate(_TABLES, start=1):
        fit, count = table_fit(coefficients, table)
        if count >= MIN_COEFFICIENTS and fit > best_fit:
            best, best_fit = quality, fit
    return best
