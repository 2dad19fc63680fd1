"""Files every part of the package reads or writes the same way.

- Which files are images (`IMAGE_EXTENSIONS`) and listing them under a folder (`list_images`).
  Reading a photo file (regular files only, with a size cap) is `data.photos.read_photo_file`.
- Atomic writes: a reader (TF Serving watching a base path, a user's next command, a resumed
  job) never sees a half-written file or model folder, and a failed write leaves the old one in
  place: `atomic_write` (one file), `atomic_folder` (a folder), `write_image`, `write_png`,
  `write_json`.

A killed writer cannot remove its hidden temporary file or folder, so each temporary name
carries its writer (machine and process id), and the next writer removes the leftovers of dead
ones: `atomic_folder` those of its own target, `atomic_write` those in its folder (once per
process and folder, so writing many files stays cheap). A writer on this machine is dead when
its process is gone; one on another machine (a shared disk) or of an older version's names,
when its leftover is untouched for STALE_AFTER_S. A live writer's temporaries are never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
import zlib
from typing import Any, Iterable, Iterator

import numpy as np

# Photo formats the package decodes (Pillow and OpenCV; `data.photos`).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# The subset TensorFlow's own decoders read (tf.io.decode_image has no TIFF).
TF_IMAGE_EXTENSIONS = tuple(e for e in IMAGE_EXTENSIONS if e not in (".tif", ".tiff"))


def package_file(package: str, relative: str, install_hint: str) -> str:
    """Path of a data file shipped inside an installed package, found without importing it (models
    are installed by pip, never downloaded); FileNotFoundError naming the install command if absent."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{relative}: package {package} is not installed ({install_hint})")
    path = os.path.join(list(spec.submodule_search_locations)[0], relative)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} missing (reinstall with {install_hint})")
    return path


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


# Leftovers whose writer cannot be asked (another machine, an older version's names) are removed
# once untouched this long: no write keeps a temporary unchanged for an hour.
STALE_AFTER_S = 3600
_RANDOM = "[a-z0-9_]{8}"  # tempfile's random part
_scanned_folders: set[str] = set()  # atomic_write's folders already cleaned by this process


def _writer_tag() -> str:
    """8 hex digits naming this machine and PID namespace (a container's pids are its own)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{zlib.crc32(f'{socket.gethostname()}|{namespace}'.encode()):08x}"


def _writer() -> str:
    return f"{_writer_tag()}-{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: alive
        return True
    return True


def _untouched_for(path: str) -> float:
    """Seconds since anything in `path` (a file or a whole folder) last changed."""
    newest = os.lstat(path).st_mtime
    for root, dirs, names in os.walk(path):
        for name in dirs + names:
            with contextlib.suppress(OSError):
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
    return time.time() - newest


def _is_stale(path: str, tag: str | None, pid: int | None) -> bool:
    """Whether the writer of temporary `path` is gone; tag/pid None for an older version's name."""
    with contextlib.suppress(OSError):
        if tag == _writer_tag():
            return not _pid_alive(pid)
        return _untouched_for(path) > STALE_AFTER_S
    return False  # vanished meanwhile, or unreadable: leave it


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def _remove_stale_folders(parent: str, base: str, target_exists: bool) -> None:
    """Remove dead writers' `.<base>.tmp-*` folders (and `.<base>.old-*` ones while `base` exists:
    without it, an old one may hold the only copy); never another target's."""
    current = re.compile(rf"\.{re.escape(base)}\.(tmp|old)-([0-9a-f]{{8}})-(\d+)-{_RANDOM}")
    legacy = re.compile(rf"\.{re.escape(base)}\.(tmp|old)-{_RANDOM}")
    with contextlib.suppress(OSError):
        for name in os.listdir(parent):
            match = current.fullmatch(name)
            tag, pid = (match.group(2), int(match.group(3))) if match else (None, None)
            match = match or legacy.fullmatch(name)
            if match and (match.group(1) == "tmp" or target_exists) and _is_stale(os.path.join(parent, name), tag, pid):
                _remove(os.path.join(parent, name))


def _remove_stale_files(folder: str) -> None:
    """Remove dead writers' `.tmp-*` files of `atomic_write` in `folder`, once per process and folder."""
    if folder in _scanned_folders:
        return
    _scanned_folders.add(folder)
    current = re.compile(rf"\.tmp-([0-9a-f]{{8}})-(\d+)-{_RANDOM}-.+")
    legacy = re.compile(rf"\.tmp-{_RANDOM}-.+")
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            if not name.startswith(".tmp-"):
                continue
            path = os.path.join(folder, name)
            if match := current.fullmatch(name):
                stale = _is_stale(path, match.group(1), int(match.group(2)))
            else:
                stale = bool(legacy.fullmatch(name)) and _is_stale(path, None, None)
            if stale and os.path.isfile(path):
                _remove(path)


@contextlib.contextmanager
def atomic_write(path: str) -> Iterator[str]:
    """Yield a temporary path beside `path` (same extension); on success it replaces `path`."""
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    _remove_stale_files(folder)
    handle, tmp = tempfile.mkstemp(prefix=f".tmp-{_writer()}-", suffix=f"-{name}", dir=folder)
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
    """Yield a hidden temporary folder next to `target`; on success it replaces `target`.

    First removes what dead writers of the same `target` left (module doc).
    """
    target = os.path.normpath(target)
    parent, base = os.path.dirname(os.path.abspath(target)), os.path.basename(target)
    os.makedirs(parent, exist_ok=True)
    _remove_stale_folders(parent, base, os.path.exists(target))
    tmp = tempfile.mkdtemp(prefix=f".{base}.tmp-{_writer()}-", dir=parent)
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide it from a server running as another user
        yield tmp
        if os.path.exists(target):
            old = tempfile.mkdtemp(prefix=f".{base}.old-{_writer()}-", dir=parent)
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


def write_text(path: str, text: str) -> None:
    """`text` to the file at `path`, atomically (its folder made if needed)."""
    with atomic_write(path) as tmp, open(tmp, "w") as fh:
        fh.write(text)


def write_json(path: str, value: Any, sort_keys: bool = True) -> None:
    """`value` as JSON at `path`, atomically (its folder made if needed); `sort_keys=False` keeps
    the dicts' own order (and allows keys of mixed types, e.g. factors beside names)."""
    with atomic_write(path) as tmp, open(tmp, "w") as fh:
        json.dump(value, fh, indent=1, sort_keys=sort_keys)
