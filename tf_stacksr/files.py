"""Files every part of the package reads or writes the same way.

- Which files are images (`IMAGE_EXTENSIONS`) and listing them under a folder (`list_images`).
  Reading a photo file (regular files only, with a size cap) is `data.photos.read_photo_file`.
- Atomic writes: a reader (TF Serving watching a base path, a user's next command, a resumed
  job) never sees a half-written file or model folder, and a failed write leaves the old one in
  place: `atomic_write` (one file), `atomic_folder` (a folder), `write_image`, `write_png`,
  `write_json`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import Any, Iterable, Iterator

import numpy as np

# Photo formats the package decodes (Pillow and OpenCV; `data.photos`).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# The subset TensorFlow's own decoders read (tf.io.decode_image has no TIFF).
TF_IMAGE_EXTENSIONS = tuple(e for e in IMAGE_EXTENSIONS if e not in (".tif", ".tiff"))


def list_images(folder: str, extensions: tuple[str, ...] = IMAGE_EXTENSIONS, exclude: Iterable[str] = ()) -> list[str]:
    """Every image file under `folder` (recursive), sorted so the order is reproducible.

    Hidden files and folders (.DS_Store, macOS ._ resource forks, .git) are not images, and the
    folders in `exclude` (compared after resolving symlinks) are not searched. Names are listed
    whatever they are (a fifo or a device named x.jpg too): reading decides what is a photo.
    """
    skip = {os.path.realpath(p) for p in exclude}
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs
                   if not d.startswith(".") and not (skip and os.path.realpath(os.path.join(root, d)) in skip)]
        found.extend(os.path.join(root, n) for n in names if not n.startswith(".") and n.lower().endswith(extensions))
    return sorted(found)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str) -> Iterator[str]:
    """Yield a temporary path beside `path` (same extension); on success it replaces `path`."""
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{name}", dir=folder)
    os.close(handle)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide it from other users
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_folder(target: str) -> Iterator[str]:
    """Yield a hidden temporary folder next to `target`; on success it replaces `target`."""
    target = os.path.normpath(target)
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.tmp-", dir=parent)
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide it from a server running as another user
        yield tmp
        if os.path.exists(target):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.old-", dir=parent)
            os.rename(target, os.path.join(old, "folder"))
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_image(path: str, image: np.ndarray, image_format: str = "PNG", **params: Any) -> None:
    """uint8 RGB, RGBA or grey `image` -> `path` in a Pillow format (PNG, JPEG, ...), atomically;
    `params` go to Pillow's save (quality=95, ...)."""
    from PIL import Image

    with atomic_write(path) as tmp:
        Image.fromarray(np.asarray(image, np.uint8)).save(tmp, format=image_format, **params)


def write_png(path: str, image: np.ndarray) -> None:
    """uint8 RGB, RGBA or grey `image` -> PNG at `path`, atomically."""
    write_image(path, image, "PNG")


def write_json(path: str, value: Any) -> None:
    with atomic_write(path) as tmp, open(tmp, "w") as fh:
        json.dump(value, fh, indent=1, sort_keys=True)
