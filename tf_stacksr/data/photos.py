"""Photo bytes -> RGB uint8 array, converting every odd format and naming what it could not read.

Real photo collections hold zero-byte files, truncated downloads, files that are not images,
grayscale, alpha, palette, 16-bit and CMYK images, phone photos stored sideways with an EXIF
orientation, thumbnails and 100-megapixel scans. `decode_photo` turns each into a plain RGB
array and reports what it converted, or raises `Skip` with a short reason a batch job can
count and list. Reasons and their details are deterministic (no object addresses), so two runs
over the same files report the same.

Folders also hold things that are not files at all: a symlink to /dev/zero would be read until
memory runs out, a named pipe would block the reader forever. `read_photo_file` is the one rule
for reading a photo file (`prepare` and `enhance` both use it): regular files only (a symlink to
one is fine), at most `max_bytes`, anything else skipped with its reason.
"""

from __future__ import annotations

import io
import os
import re
import stat
import warnings

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Skip reasons (the keys of a manifest's "skipped" table).
EMPTY_FILE = "empty_file"
NOT_AN_IMAGE = "not_an_image"
TRUNCATED = "truncated_or_corrupt"
TOO_SMALL = "too_small"
TOO_LARGE = "too_large"
NOT_A_REGULAR_FILE = "not_a_regular_file"
# Default cap on a photo file's size (prepare's --max_file_mb, enhance's --max-file-mb).
MAX_FILE_MB = 256
# Conversions (the keys of a manifest's "converted" table).
EXIF_ROTATED = "exif_rotated"
GRAYSCALE = "grayscale"
ALPHA = "alpha_flattened"
PALETTE = "palette"
SIXTEEN_BIT = "16bit"
CMYK = "cmyk"
OTHER_MODE = "other_mode"
ANIMATED = "animated_first_frame"
DOWNSCALED = "downscaled_large"


class Skip(Exception):
    """An input that cannot become a training face; `reason` is a manifest key."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a fifo"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a special file"


def read_photo_file(path: str, max_bytes: int = MAX_FILE_MB * 2**20, flag: str = "") -> bytes:
    """The bytes of the regular file at `path` (symlinks followed); raises `Skip` for anything else.

    Devices, fifos, sockets and folders are `not_a_regular_file` and never opened for reading
    (opening some devices has side effects, a fifo blocks); files over `max_bytes` are
    `too_large` (`flag` names the option in the message). A file swapped or grown between the
    checks and the read is caught too: the opened descriptor is checked again and the read
    stops one byte past the cap. Other failures (missing file, no permission) raise OSError.
    """
    def check(info: os.stat_result) -> None:
        if not stat.S_ISREG(info.st_mode):
            raise Skip(NOT_A_REGULAR_FILE, f"{_file_kind(info.st_mode)}, not a regular file")
        if info.st_size > max_bytes:
            raise Skip(TOO_LARGE, f"{info.st_size} bytes > {flag or f'{max_bytes} bytes'}")

    check(os.stat(path))
    # O_NONBLOCK: should a fifo take the file's place after the check, opening it does not wait.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as fh:
        check(os.fstat(fd))
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise Skip(TOO_LARGE, f"grew past {flag or f'{max_bytes} bytes'} while being read")
    return data


_ADDRESS = re.compile(r"<([\w.]+) object at 0x[0-9a-fA-F]+>")


def describe(err: BaseException, limit: int = 200) -> str:
    """`err`'s message, the same on every run: object addresses (`<... at 0x7f...>`) removed."""
    return _ADDRESS.sub(r"<\1>", str(err))[:limit]


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Composite on white: the usual backdrop of cut-out portraits, and no hard black halo."""
    rgba = image.convert("RGBA")
    backdrop = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(backdrop, rgba).convert("RGB")


def flatten_on_white(rgba: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 4] -> uint8 [H, W, 3] composited on white, as `decode_photo` flattens alpha."""
    alpha = rgba[..., 3:].astype(np.float32) / 255.0
    return np.round(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)


def _to_rgb(image: Image.Image, sixteen_bit: bool, conversions: list[str], keep_alpha: bool = False) -> Image.Image:
    flatten = (lambda im: im.convert("RGBA")) if keep_alpha else _flatten_alpha
    mode = image.mode
    if sixteen_bit:
        conversions.append(SIXTEEN_BIT)
    if mode.startswith("I"):  # 16/32-bit integer grayscale: keep the top 8 bits of 16
        values = np.asarray(image).astype(np.int64)
        shift = 8 if values.max(initial=0) > 255 or mode.startswith("I;16") else 0
        if SIXTEEN_BIT not in conversions:
            conversions.append(SIXTEEN_BIT)
        conversions.append(GRAYSCALE)
        return Image.fromarray(np.clip(values >> shift, 0, 255).astype(np.uint8)).convert("RGB")
    if mode in ("P", "PA"):
        conversions.append(PALETTE)
        if mode == "PA" or "transparency" in image.info:
            conversions.append(ALPHA)
            return flatten(image)
        return image.convert("RGB")
    if mode in ("RGBA", "LA", "La", "RGBa"):
        if mode in ("LA", "La"):
            conversions.append(GRAYSCALE)
        conversions.append(ALPHA)
        return flatten(image)
    if mode in ("L", "1"):
        conversions.append(GRAYSCALE)
        return image.convert("RGB")
    if mode == "CMYK":
        conversions.append(CMYK)
        return image.convert("RGB")
    if mode == "F":
        conversions.append(OTHER_MODE)
        values = np.asarray(image, dtype=np.float64)
        top = 1.0 if values.max(initial=0) <= 1.0 else 255.0
        return Image.fromarray(np.clip(values / top * 255.0, 0, 255).astype(np.uint8)).convert("RGB")
    if mode != "RGB":
        conversions.append(OTHER_MODE)
        return image.convert("RGB")
    return image


def decode_photo(
    data: bytes, *, min_side: int = 32, max_side: int = 4096, max_pixels: int = 150_000_000, keep_alpha: bool = False
) -> tuple[np.ndarray, float, list[str]]:
    """Decode photo bytes to (RGB uint8 [H, W, 3], scale, conversions).

    The image is upright (EXIF orientation applied) and at most `max_side` on its long side;
    `scale` is its size over the upright original's (1.0 unless downscaled), so coordinates
    found in it map back to the original. Raises `Skip` for empty, unreadable, truncated,
    too small (short side < `min_side`) or too large (> `max_pixels`, refused before decoding).
    With `keep_alpha`, an image with alpha comes back as RGBA [H, W, 4] with its own colours
    (`alpha_flattened` is still reported; `flatten_on_white` flattens it as the default does).
    """
    if not data:
        raise Skip(EMPTY_FILE, "0 bytes")
    conversions: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise Skip(NOT_AN_IMAGE, "no image format Pillow can read") from None
        except Image.DecompressionBombError as err:  # a header beyond Pillow's own limit
            pixels = re.search(r"\((\d+) pixels\)", str(err))
            raise Skip(TOO_LARGE, f"{pixels.group(1)} pixels > Pillow's limit of {2 * Image.MAX_IMAGE_PIXELS}"
                       if pixels else describe(err)) from None
        except (SyntaxError, ValueError) as err:
            raise Skip(NOT_AN_IMAGE, describe(err)) from None
        width, height = image.size
        if width * height > max_pixels:
            raise Skip(TOO_LARGE, f"{width}x{height} > {max_pixels} pixels")
        if min(width, height) < min_side:
            raise Skip(TOO_SMALL, f"{width}x{height}, short side < {min_side}")
        if getattr(image, "n_frames", 1) > 1:
            conversions.append(ANIMATED)
        sixteen_bit = any(";16" in str(tile.args) for tile in getattr(image, "tile", []) if not image.mode.startswith("I"))
        if image.format == "JPEG" and max(width, height) > max_side:
            image.draft(None, (max_side, max_side))  # DCT-domain 1/2..1/8 decode: fast, low memory
        try:
            orientation = image.getexif().get(0x0112, 1)
            image.load()
            if orientation in (2, 3, 4, 5, 6, 7, 8):  # 1 is upright; 0, 9 and others are invalid: upright too
                image = ImageOps.exif_transpose(image)
                conversions.append(EXIF_ROTATED)
            image = _to_rgb(image, sixteen_bit, conversions, keep_alpha)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise Skip(TRUNCATED, describe(err)) from None
    upright_long = max(width, height)  # EXIF transposition swaps sides, never the long one
    pixels = np.asarray(image, dtype=np.uint8)
    long_side = max(pixels.shape[:2])
    if long_side > max_side:
        factor = max_side / long_side
        size = (max(1, round(pixels.shape[1] * factor)), max(1, round(pixels.shape[0] * factor)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    if max(pixels.shape[:2]) < upright_long:
        conversions.append(DOWNSCALED)
    return np.ascontiguousarray(pixels), max(pixels.shape[:2]) / upright_long, conversions
