"""The TFRecord schema of prepared faces: the one place that writes or parses it.

One `tf.train.Example` per aligned face:
  image      bytes    the aligned face, PNG (lossless, so the HR ground truth carries no
                      JPEG artefacts) or JPEG, `size` x `size` RGB uint8
  source     bytes    the photo it came from, relative to the input root (TFDS: split/index)
  identity   bytes    identity label ("" when the source has none)
  landmarks  float[10] the 5 detected landmarks mapped into the crop (x0, y0, x1, y1, ...)
  matrix     float[6]  the 2x3 similarity image -> crop (row-major) that produced the crop
  score      float    detector confidence
  size       int64    crop side in pixels

Shards are written under a temporary name and renamed when complete (`os.replace` is atomic
on one filesystem), so a reader never sees half a shard.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import tensorflow as tf

from tf_stacksr import files

FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "source": tf.io.FixedLenFeature([], tf.string),
    "identity": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "landmarks": tf.io.FixedLenFeature([10], tf.float32),
    "matrix": tf.io.FixedLenFeature([6], tf.float32),
    "score": tf.io.FixedLenFeature([], tf.float32),
    "size": tf.io.FixedLenFeature([], tf.int64),
}


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _floats(values: Iterable[float]) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def encode_example(
    image_bytes: bytes,
    *,
    source: str,
    identity: str,
    landmarks: np.ndarray,
    matrix: np.ndarray,
    score: float,
    size: int,
) -> bytes:
    """Serialized `tf.train.Example` of one aligned face (see the module docstring)."""
    feature = {
        "image": _bytes(image_bytes),
        "source": _bytes(source.encode("utf-8")),
        "identity": _bytes(identity.encode("utf-8")),
        "landmarks": _floats(np.asarray(landmarks, np.float32).reshape(10)),
        "matrix": _floats(np.asarray(matrix, np.float32).reshape(6)),
        "score": _floats([score]),
        "size": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(size)])),
    }
    # deterministic: map fields in key order, so the same faces give byte-identical shards.
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def write_shard(path: str, serialized_examples: Iterable[bytes]) -> int:
    """Write a complete shard atomically (temporary name, then rename); returns the count."""
    count = 0
    with files.atomic_write(path) as tmp, tf.io.TFRecordWriter(tmp) as writer:
        for record in serialized_examples:
            writer.write(record)
            count += 1
    return count


def parse_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parse one serialized example into the schema's tensors (image still encoded)."""
    return tf.io.parse_single_example(serialized, FEATURES)


def decode_face(encoded: tf.Tensor) -> tf.Tensor:
    """Encoded PNG/JPEG face bytes -> uint8 [H, W, 3]."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def read_shard(path: str) -> list[dict[str, np.ndarray]]:
    """Every example of a shard as numpy values (for inspection and tests; eager)."""
    out = []
    for serialized in tf.data.TFRecordDataset(path):
        parsed = parse_example(serialized)
        example = {k: v.numpy() for k, v in parsed.items()}
        example["pixels"] = decode_face(parsed["image"]).numpy()
        out.append(example)
    return out
