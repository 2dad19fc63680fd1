"""tf.data input from prepared face shards (the output of `python -m tf_stacksr.prepare`).

Resume guarantee: as for photo folders, example i of a run is a pure function of (seed, i).
Shards are sequential files, so the order is built per epoch e = i div n (n = faces in the
train split): the shard files in a stateless permutation keyed on (seed, e), read by a
deterministic parallel interleave, then windows of SHUFFLE_WINDOW records each permuted by a
stateless shuffle keyed on (seed, e, window) (tf.data's `shuffle` would depend on the global
seed that Keras sets, and refuses a tensor seed once one is set). Resuming at step
s starts directly at epoch e and skips the i mod n records before (raw bytes, not decoded:
at most one epoch's reading), so a resumed run sees exactly the batches an uninterrupted run
would, and random flips are keyed on (seed, i) as well. With several input pipelines, every
pipeline reads the same record stream and keeps every P-th per-replica batch before decoding:
the global order does not depend on P, and only raw bytes are read twice.
Several shard folders are pooled: their train-split files form one list and n is their sum.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import tensorflow as tf

from tf_stacksr.data import batching, degrade, pairs, records
from tf_stacksr.data import jitter as jitter_lib
from tf_stacksr.data.prepare import MANIFEST

SHUFFLE_WINDOW = 1024
CYCLE_LENGTH = 16


def is_prepared(data_dir: str) -> bool:
    return os.path.isfile(os.path.join(data_dir, MANIFEST))


def read_manifest(data_dir: str) -> dict:
    with open(os.path.join(data_dir, MANIFEST)) as fh:
        return json.load(fh)


def split_files(data_dir: str, split: str) -> tuple[list[str], int]:
    """Shard paths of `split` that hold faces, and the number of faces in them."""
    manifest = read_manifest(data_dir)
    entry = manifest["splits"].get(split)
    if not entry or not entry["examples"]:
        present = ", ".join(f"{name}={value['examples']}" for name, value in manifest["splits"].items()) or "none"
        raise ValueError(f"--data_dir={data_dir!r}: the prepared shards hold no {split!r} faces (splits: {present})")
    files = [os.path.join(data_dir, s["file"]) for s in entry["shards"] if s["examples"]]
    return files, int(entry["examples"])


def pooled_split_files(data_dirs: str | Sequence[str], split: str) -> tuple[list[str], int]:
    """`split_files` of every folder, concatenated: one training set from several datasets."""
    files, n = [], 0
    for data_dir in [data_dirs] if isinstance(data_dirs, str) else data_dirs:  # one folder given as a string
        folder_files, folder_n = split_files(data_dir, split)
        files += folder_files
        n += folder_n
    return files, n


def resize_face(face: tf.Tensor, size: int, box: tf.Tensor | None = None) -> tf.Tensor:
    """uint8 face at its prepared size -> float [-1, 1] at `size` (antialiased bicubic if the sizes
    differ); `box` (`jitter.Jitter.crop_box`) first cuts a square of it at its own resolution."""
    image = pairs.uint8_to_float(face)
    if box is not None:
        image = jitter_lib.crop(image, box)
    image = tf.image.resize(image, [size, size], method="bicubic", antialias=True)
    return tf.clip_by_value(image, -1.0, 1.0)


def load_record(serialized: tf.Tensor, size: int, box: tf.Tensor | None = None) -> tf.Tensor:
    """Serialized example -> float [-1, 1] face at `size` (`resize_face`)."""
    return resize_face(records.decode_face(records.parse_example(serialized)["image"]), size, box)


def _epoch_records(files: tf.Tensor, seed: int, epoch: tf.Tensor) -> tf.data.Dataset:
    key = tf.stack([tf.cast(seed, tf.int64), epoch])
    order = tf.random.experimental.stateless_shuffle(tf.range(tf.size(files, out_type=tf.int64)), seed=key)
    ds = tf.data.Dataset.from_tensor_slices(tf.gather(files, order))
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=CYCLE_LENGTH, block_length=1,
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def shuffle_window(window: tf.Tensor, serialized: tf.Tensor) -> tf.data.Dataset:
        key = tf.stack([tf.cast(seed, tf.int64), epoch * 1_000_003 + window])
        return tf.data.Dataset.from_tensor_slices(tf.random.experimental.stateless_shuffle(serialized, seed=key))

    return ds.batch(SHUFFLE_WINDOW).enumerate().flat_map(shuffle_window)


def training_dataset(
    data_dirs: str | Sequence[str],
    stage_sizes: Sequence[int],
    *,
    global_batch_size: int,
    seed: int = 0,
    start_step: int = 0,
    input_context: tf.distribute.InputContext | None = None,
    split: str = "train",
    degradation: degrade.Degradation | None = None,
    jitter: jitter_lib.Jitter | None = None,
) -> tf.data.Dataset:
    """Infinite (inputs A, per-stage targets) batches from the shards (see the module docstring)."""
    files, n = pooled_split_files(data_dirs, split)
    files_t = tf.constant(files)
    hr_size = int(stage_sizes[-1])
    pipelines, pipeline_id, batch = batching.pipeline_slice(global_batch_size, input_context)
    start_index = start_step * (global_batch_size // batch) * batch
    first_epoch, offset = divmod(start_index, n)

    stream = tf.data.Dataset.range(first_epoch, tf.int64.max).flat_map(lambda e: _epoch_records(files_t, seed, e))
    stream = tf.data.Dataset.zip(tf.data.Dataset.range(start_index, tf.int64.max), stream.skip(offset))
    stream = stream.batch(batch, drop_remainder=True).shard(pipelines, pipeline_id).unbatch()

    def example(i: tf.Tensor, serialized: tf.Tensor):
        face = load_record(serialized, hr_size, batching.crop_box(jitter, seed, i))
        return batching.training_example(face, i, seed, stage_sizes, degradation, jitter)

    ds = stream.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def eval_dataset(
    data_dir: str, stage_sizes: Sequence[int], *, batch_size: int, limit: int | None = None, split: str = "test"
) -> tf.data.Dataset:
    """Fixed-order, unaugmented (inputs, targets) batches over one split (each face once)."""
    files, _ = split_files(data_dir, split)
    hr_size = int(stage_sizes[-1])

    def example(serialized):
        ex = pairs.make_pairs(load_record(serialized, hr_size), stage_sizes)
        return ex["inputs"], ex["targets"]

    ds = tf.data.TFRecordDataset(files)
    if limit is not None:
        ds = ds.take(limit)
    ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
