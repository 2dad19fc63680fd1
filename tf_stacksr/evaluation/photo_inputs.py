"""The whole-photo benchmark's inputs: photos read upright, cropped to a multiple of every factor,
shrunk as a photo sent or stored small is, and JPEG-compressed."""

from __future__ import annotations

import io
import math
import os
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps

from tf_stacksr import files


def reference_photo(photo: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """`photo` cropped at the bottom and right to a multiple of every factor."""
    m = math.lcm(*map(int, factors))
    h, w = (photo.shape[0] // m) * m, (photo.shape[1] // m) * m
    return np.ascontiguousarray(photo[:h, :w, :3])


def shrink(photo: np.ndarray, factor: int) -> np.ndarray:
    """Antialiased bicubic downscale by an integer factor (PIL, whose bicubic widens its kernel to the factor)."""
    h, w = photo.shape[:2]
    return np.asarray(Image.fromarray(photo).resize((w // factor, h // factor), Image.BICUBIC))


def jpeg(photo: np.ndarray, quality: int) -> np.ndarray:
    """The photo after a JPEG round trip at `quality` (PIL, 4:2:0 chroma as most cameras and apps)."""
    if not quality:
        return photo
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


def list_photos(folder: str, limit: int | None = None) -> list[str]:
    """The photos of `folder` (searched recursively), the first `limit` of them; ValueError if none."""
    paths = files.list_images(folder) if os.path.isdir(folder) else []
    if not paths:
        raise ValueError(f"--input={folder}: no images found (a folder of photos, searched recursively)")
    return paths[:limit] if limit else paths


def read_photo(path: str) -> np.ndarray:
    """RGB uint8, upright (EXIF orientation applied)."""
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
