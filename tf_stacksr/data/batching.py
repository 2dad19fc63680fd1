"""What every training source (photo folders, prepared shards) shares: how the global batch is
split between input pipelines, and how a decoded face becomes a training example."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from tf_stacksr.data import jitter as jitter_lib
from tf_stacksr.data import pairs


def pipeline_slice(global_batch_size: int, input_context: tf.distribute.InputContext | None) -> tuple[int, int, int]:
    """(number of input pipelines, this pipeline's id, per-replica batch) for one pipeline."""
    if input_context is None:
        return 1, 0, global_batch_size
    return (input_context.num_input_pipelines, input_context.input_pipeline_id,
            input_context.get_per_replica_batch_size(global_batch_size))


def example_key(seed: int, index: tf.Tensor) -> tf.Tensor:
    """The stateless key [2] int64 every random draw of training example `index` derives from."""
    return tf.stack([tf.cast(seed, tf.int64), index])


def crop_box(jitter: jitter_lib.Jitter | None, seed: int, index: tf.Tensor) -> tf.Tensor | None:
    """The square example `index`'s prepared face is cut to before its resize (`Jitter.crop_box`), or None."""
    return jitter.crop_box(example_key(seed, index)) if jitter is not None else None


def training_example(face: tf.Tensor, index: tf.Tensor, seed: int, stage_sizes: Sequence[int], degradation=None,
                     jitter: jitter_lib.Jitter | None = None):
    """Flip example `index` by a coin keyed on (seed, index), then make its (inputs, targets).

    `jitter` (a `jitter.Jitter`, or None) shifts and zooms the HR face first; `degradation` (a
    `degrade.Degradation`, or None for the paper's bicubic input) makes its input. Both draw
    from the same key, so a resumed run reproduces every example exactly.
    """
    key = example_key(seed, index)
    face = tf.image.stateless_random_flip_left_right(face, seed=key)
    if jitter is not None:
        face = jitter_lib.apply(face, jitter, key)
    ex = pairs.make_pairs(face, stage_sizes) if degradation is None else degradation.make_pairs(face, stage_sizes, key)
    return ex["inputs"], ex["targets"]
