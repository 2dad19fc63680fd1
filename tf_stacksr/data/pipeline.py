"""tf.data input for training and evaluation.

Training order is a pure function of (seed, global example index): example i of the run is
file perm_e[i mod n] of epoch e = i div n, flipped by a stateless coin keyed on (seed, i).
So resuming at step s needs no iterator state (start at index s * global_batch), distributed
input pipelines can split the global batches between them without overlap, and a resumed run
sees exactly the batches an uninterrupted run would.

`data_dir` may also be a folder written by `python -m tf_stacksr.prepare` (it holds a
manifest.json); see `shards` for how the same guarantees hold for sequential shards.
Several folders of one kind, comma-separated, are pooled into one training set (e.g. CelebA
plus FFHQ, for more identities); each face is one example, so a folder's share is its size.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from tf_stacksr import files
from tf_stacksr.config import data_folders
from tf_stacksr.data import batching, degrade, pairs, shards
from tf_stacksr.data import jitter as jitter_lib


def list_images(data_dir: str) -> list[str]:
    """Every image file TensorFlow decodes under `data_dir` (recursive, sorted); an error if none."""
    found = files.list_images(data_dir, files.TF_IMAGE_EXTENSIONS)
    if not found:
        raise ValueError(f"--data_dir={data_dir!r}: no image files ({', '.join(files.TF_IMAGE_EXTENSIONS)}) found")
    return found


def _folders_of_one_kind(data_dir: str) -> tuple[list[str], bool]:
    """The comma-separated folders of `data_dir`, and whether they are prepared shard folders."""
    folders = data_folders(data_dir)
    if not folders:
        raise ValueError("--data_dir is empty: expected a folder of face images or of prepared shards")
    prepared = [shards.is_prepared(f) for f in folders]
    if len(set(prepared)) > 1:
        kinds = ", ".join(f"{f} ({'prepared shards' if p else 'photo folder'})" for f, p in zip(folders, prepared))
        raise ValueError(f"--data_dir={data_dir!r} mixes prepared shard folders and photo folders: {kinds}; "
                         "expected one kind (prepare the photo folders with python -m tf_stacksr.prepare)")
    return folders, prepared[0]


def load_face(path: tf.Tensor, size: int, box: tf.Tensor | None = None) -> tf.Tensor:
    """Decode an already-cropped face, centre-crop it square and resize to `size`: float [-1, 1]
    (`shards.resize_face`, with its optional `box`)."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    side = tf.minimum(h, w)
    image = tf.image.crop_to_bounding_box(image, (h - side) // 2, (w - side) // 2, side, side)
    return shards.resize_face(image, size, box)


def _file_index(i: tf.Tensor, n: int, seed: int) -> tf.Tensor:
    epoch, pos = i // n, i % n
    perm = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
    return perm[pos]


def training_dataset(
    data_dir: str,
    stage_sizes: Sequence[int],
    *,
    global_batch_size: int,
    seed: int = 0,
    start_step: int = 0,
    input_context: tf.distribute.InputContext | None = None,
    degradation: degrade.Degradation | None = None,
    jitter: jitter_lib.Jitter | None = None,
) -> tf.data.Dataset:
    """Infinite batches of (inputs A, per-stage targets) for one input pipeline.

    With an `input_context` (from `strategy.distribute_datasets_from_function`) the pipeline
    yields per-replica batches and takes every P-th of them, P being the number of pipelines.
    A prepared shard folder is read from its train split (`shards.training_dataset`);
    comma-separated folders are pooled (see the module docstring).
    `degradation` (off by default) swaps the bicubic input for a realistic one (`degrade`);
    `jitter` (off by default) shifts and zooms each face at random first (`jitter`).
    """
    folders, prepared = _folders_of_one_kind(data_dir)
    if prepared:
        return shards.training_dataset(folders, stage_sizes, global_batch_size=global_batch_size, seed=seed,
                                       start_step=start_step, input_context=input_context, degradation=degradation,
                                       jitter=jitter)
    files = tf.constant([path for folder in folders for path in list_images(folder)])
    n = int(files.shape[0])
    hr_size = int(stage_sizes[-1])
    pipelines, pipeline_id, batch = batching.pipeline_slice(global_batch_size, input_context)
    first_batch = start_step * (global_batch_size // batch)

    def example(i: tf.Tensor):
        face = load_face(files[_file_index(i, n, seed)], hr_size, batching.crop_box(jitter, seed, i))
        return batching.training_example(face, i, seed, stage_sizes, degradation, jitter)

    ds = tf.data.Dataset.range(first_batch, tf.int64.max).shard(pipelines, pipeline_id)
    ds = ds.flat_map(lambda b: tf.data.Dataset.range(b * batch, (b + 1) * batch))
    ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def eval_dataset(data_dir: str, stage_sizes: Sequence[int], *, batch_size: int, limit: int | None = None) -> tf.data.Dataset:
    """Fixed-order, unaugmented (inputs, targets) batches over the folder (each file once).

    A prepared shard folder is read from its test split (`shards.eval_dataset`). Of several
    comma-separated folders only the first is read: validation stays on the main dataset.
    """
    data_dir = _folders_of_one_kind(data_dir)[0][0]
    if shards.is_prepared(data_dir):
        return shards.eval_dataset(data_dir, stage_sizes, batch_size=batch_size, limit=limit)
    files = list_images(data_dir)[:limit]
    hr_size = int(stage_sizes[-1])

    def example(path):
        ex = pairs.make_pairs(load_face(path, hr_size), stage_sizes)
        return ex["inputs"], ex["targets"]

    ds = tf.data.Dataset.from_tensor_slices(files).map(example, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
