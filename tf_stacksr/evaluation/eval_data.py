"""Where evaluation images come from: face sources for `evaluate`, image folders for `fid`.

A face source is a tf.data stream of (key, identity, HR face) elements, the HR face float
[-1, 1] at `hr_size` produced by the same loader training uses, so a model is scored on the
faces it was trained on: `folder_faces` (photo folders, `pipeline.load_face`) and
`shard_faces` (prepared TFRecord shards, `shards.load_record`), and `framed_faces` (the faces of
prepared shards cropped again from their photos in another framing, `data.framing`). A new
source is one more function returning a `FaceSource`; `open_faces` picks the source from what
the path holds.

Bad images are skipped, never fatal: the stream drops elements whose decoding fails (after
logging the error), and `SkipCounter` reports how many and which.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from tf_stacksr.data import (
    align,
    framing,
    photos,
    pipeline,
    prepare,
    records,
    shards,
    sources,
)
from tf_stacksr.metrics import fid


@dataclasses.dataclass
class FaceSource:
    description: str  # what was read and how, for reports
    size: int  # faces expected (before skips)
    dataset: tf.data.Dataset  # (key: string, identity: string, "" if unknown; hr: float32 [S, S, 3] in [-1, 1])
    keys: Sequence[str] | None = None  # every expected key, when known up front (names the skipped ones)


def _identity_file_labels(data_dir: str) -> dict[str, str] | None:
    """The identity file (`sources.IDENTITY_FILES`) in `data_dir` or its parent (CelebA's layout)."""
    for folder in (data_dir, os.path.dirname(os.path.abspath(data_dir))):
        for name in sources.IDENTITY_FILES:
            if os.path.isfile(os.path.join(folder, name)):
                return sources.read_identity_file(os.path.join(folder, name))
    return None


def folder_identities(data_dir: str, paths: Sequence[str]) -> list[str]:
    """Identity label per image ("" when unknown).

    From identity.txt next to the images or one level up (CelebA), else from sub-folder names
    when the images sit in two or more of them (LFW's <Person>/<Person>_000N.jpg), else none.
    """
    labels = _identity_file_labels(data_dir)
    if labels is not None:
        return [labels.get(os.path.basename(p), "") for p in paths]
    folders = [os.path.relpath(os.path.dirname(p), data_dir) for p in paths]
    if len(set(folders)) >= 2 and "." not in folders:
        return folders
    return [""] * len(paths)


def folder_faces(data_dir: str, hr_size: int, limit: int | None = None, skip: int = 0) -> FaceSource:
    """Face crops in a folder (recursive, sorted), centre-cropped and resized by `pipeline.load_face`."""
    if not os.path.isdir(data_dir):
        raise ValueError(f"--data={data_dir!r}: expected a folder of face images or of prepared shards, none found")
    paths = pipeline.list_images(data_dir)[skip:][:limit]
    _check_skip(skip, len(paths), data_dir)
    identities = folder_identities(data_dir, paths)
    ds = tf.data.Dataset.from_tensor_slices((paths, identities))
    ds = ds.map(lambda p, i: (p, i, pipeline.load_face(p, hr_size)), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return FaceSource(f"folder {data_dir} (centre-crop, load_face){_skipped(skip)}", len(paths), ds, paths)


def _check_skip(skip: int, remaining: int, data_dir: str) -> None:
    if skip and remaining <= 0:
        raise ValueError(f"--skip={skip} leaves no faces in --data={data_dir!r}: expected fewer than it holds")


def _skipped(skip: int) -> str:
    return f", after the first {skip} faces" if skip else ""


def shard_faces(data_dir: str, hr_size: int, limit: int | None = None, split: str = "test",
                skip: int = 0) -> FaceSource:
    """Aligned faces of one split of prepared shards, loaded by `shards.load_record` as training loads them."""
    files, size = shards.split_files(data_dir, split)
    ds = tf.data.TFRecordDataset(files).skip(skip)
    size = size - skip
    _check_skip(skip, size, data_dir)
    if limit is not None:
        ds, size = ds.take(limit), min(size, limit)

    def face(serialized):
        example = records.parse_example(serialized)
        return example["source"], example["identity"], shards.load_record(serialized, hr_size)

    ds = ds.map(face, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return FaceSource(f"prepared shards {data_dir}, split {split!r} (aligned, load_record){_skipped(skip)}", size, ds)


def _photo_root(data_dir: str) -> tuple[str, dict]:
    """The folder prepare read the photos of `data_dir` from, and prepare's options."""
    with open(os.path.join(data_dir, prepare.OPTIONS_FILE)) as fh:
        record = json.load(fh)
    root = record["input"]
    if not os.path.isdir(root):
        raise ValueError(f"--framing: the photos of --data={data_dir!r} were read from {root!r}, which is not a folder "
                         "here; framings are cropped again from the original photos")
    return root, record["options"]


def _photo_and_landmarks(root: str, options: dict, face: dict) -> tuple[np.ndarray, np.ndarray]:
    """The photo a prepared face came from, decoded as prepare decoded it, and dlib's 5 landmarks in it."""
    data = photos.read_photo_file(os.path.join(root, face["source"]))
    image, scale, _ = photos.decode_photo(data, min_side=options["min_side"], max_side=options["max_side"],
                                          max_pixels=options["max_pixels"])
    matrix = face["matrix"].reshape(2, 3).astype(np.float64)  # the upright original -> the prepared crop
    original = align.transform_points(align.invert_affine(matrix), face["landmarks"].reshape(5, 2))
    return image, scale * original + (scale - 1) / 2  # pixel centres, as decode_photo shrinks


def framed_faces(data_dir: str, framing_name: str, hr_size: int, limit: int | None = None, split: str = "test",
                 skip: int = 0) -> FaceSource:
    """The faces of one split of prepared shards, cropped again from their photos in a framing.

    Each prepared face records its photo (under prepare's --input folder) and dlib's 5 landmarks;
    the photo is cropped in `framing_name` (`data.framing`) at the prepared size and reduced to
    `hr_size` as `shards.load_record` reduces a prepared face, so framings differ in framing only
    (`ours` gives the prepared faces). Faces prepare skipped (none found, too small) are absent
    from every framing alike; a photo that cannot be read now is skipped and named.
    """
    chosen = framing.parse(framing_name)
    if not shards.is_prepared(data_dir):
        raise ValueError(f"--framing needs --data to be prepared shards (python -m tf_stacksr.prepare); {data_dir!r} is not")
    root, options = _photo_root(data_dir)
    framer = framing.Framer(chosen, options["face_scale"])
    files, _ = shards.split_files(data_dir, split)
    faces = []
    for serialized in tf.data.TFRecordDataset(files).skip(skip).take(-1 if limit is None else limit):
        example = records.parse_example(serialized)
        faces.append({k: example[k].numpy() for k in ("source", "identity", "landmarks", "matrix", "size")})
    _check_skip(skip, len(faces), data_dir)

    def crops():
        for face in faces:
            key = face["source"].decode()
            try:
                image, landmarks = _photo_and_landmarks(root, options, dict(face, source=key))
                crop, _ = framer.crop(image, landmarks, int(face["size"]))
            except (OSError, photos.Skip) as err:
                logging.warning("%s: %s; skipped", key, photos.describe(err))
                continue
            yield key, face["identity"], crop

    spec = (tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.string), tf.TensorSpec([None, None, 3], tf.uint8))
    ds = tf.data.Dataset.from_generator(crops, output_signature=spec)
    ds = ds.map(lambda k, i, c: (k, i, shards.resize_face(c, hr_size)))
    return FaceSource(f"prepared shards {data_dir}, split {split!r}, cropped again from {root} in framing "
                      f"{framer.framing.name}: {framer.framing.describe()}{_skipped(skip)}",
                      len(faces), ds, [f["source"].decode() for f in faces])


def open_faces(data: str, hr_size: int, limit: int | None = None, split: str = "test", skip: int = 0) -> FaceSource:
    """The face source for `--data`: prepared shards when it holds a manifest, else a folder of faces.

    `skip` leaves out the first faces (before `limit`), so that a setting can be chosen on faces
    that the reported rows do not use.
    """
    if skip < 0:
        raise ValueError(f"--skip={skip}: expected a number of faces >= 0")
    if shards.is_prepared(data):
        return shard_faces(data, hr_size, limit, split, skip)
    return folder_faces(data, hr_size, limit, skip)


class SkipCounter:
    """Tracks keys seen in a stream that drops bad elements, to report what was skipped."""

    def __init__(self, size: int, keys: Sequence[str] | None = None):
        self.size, self._keys, self.seen = size, keys, 0
        self._seen_keys: set[str] = set()

    def add(self, keys: np.ndarray) -> None:
        self.seen += len(keys)
        if self._keys is not None:
            self._seen_keys.update(k.decode() if isinstance(k, bytes) else str(k) for k in keys)

    @property
    def skipped(self) -> int:
        return self.size - self.seen

    def skipped_keys(self) -> list[str]:
        return [] if self._keys is None else [k for k in self._keys if k not in self._seen_keys]


def decode_image(path: tf.Tensor) -> tf.Tensor:
    """uint8 RGB [H, W, 3]; JPEGs decoded with the accurate IDCT, bit-identical to PIL (pytorch-fid's reader)."""
    raw = tf.io.read_file(path)
    image = tf.cond(
        tf.io.is_jpeg(raw),
        lambda: tf.io.decode_jpeg(raw, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(raw, channels=3, expand_animations=False))
    image.set_shape([None, None, 3])
    return image


def fid_image_batches(folder: str, batch_size: int) -> tuple[Iterator[tuple[np.ndarray, np.ndarray]], SkipCounter]:
    """Batches of (paths, 299x299 float images in [0, 255]) of every image under `folder`, any sizes."""
    if not os.path.isdir(folder):
        raise ValueError(f"{folder!r}: expected a folder of images or an .npz of FID statistics")
    paths = pipeline.list_images(folder)
    ds = tf.data.Dataset.from_tensor_slices(paths)
    ds = ds.map(lambda p: (p, fid.resize_for_inception(decode_image(p))), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.ignore_errors(log_warning=True).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    counter = SkipCounter(len(paths), paths)

    def batches():
        for keys, images in ds.as_numpy_iterator():
            counter.add(keys)
            yield keys, images

    return batches(), counter
