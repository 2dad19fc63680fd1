"""The one place that decides the distribution strategy, the batch split and the precision policy.

Also holds the multi-worker file rules (as in TensorFlow's multi-worker Keras tutorial): every
worker must take part in saving a checkpoint, but only the chief writes into `--model_dir`;
the other workers write to a `workertemp_<task id>` folder that they delete right after, so
no two processes ever write the same file. Every worker resumes from the chief's checkpoints.
"""

from __future__ import annotations

import os
import shutil

import keras
import tensorflow as tf

from tf_stacksr.config import Config
from tf_stacksr.models import layout


def make_strategy(cfg: Config) -> tf.distribute.Strategy:
    """`--strategy` as a tf.distribute strategy ('auto': mirrored over several GPUs, else one device).

    'multi_worker' reads the cluster and this process's role from the TF_CONFIG environment
    variable; it must be created before TensorFlow initialises its devices (so before the
    device listing below).
    """
    name = cfg.strategy
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy=multi_worker: expected the TF_CONFIG environment variable "
                             "(cluster spec and this worker's task); see docs/distributed.md")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"--strategy={cfg.strategy!r}: expected auto, one_device, mirrored, multi_worker or tpu")


def global_batch_size(cfg: Config, strategy: tf.distribute.Strategy) -> int:
    """The batch of one optimisation step, summed over every replica of every worker.

    `--per_replica_batch_size` (when > 0) times the replicas in sync, else `--batch_size`,
    which must then split evenly between the replicas.
    """
    replicas = strategy.num_replicas_in_sync
    if cfg.per_replica_batch_size > 0:
        return cfg.per_replica_batch_size * replicas
    if cfg.batch_size % replicas:
        raise ValueError(f"--batch_size={cfg.batch_size}: expected a multiple of the {replicas} replicas "
                         "(or set --per_replica_batch_size)")
    return cfg.batch_size


def apply_precision_policy(cfg: Config) -> None:
    """Set Keras' global dtype policy from `--mixed_precision` (before any model is built)."""
    keras.mixed_precision.set_global_policy(cfg.mixed_precision)


def wrap_optimizer(cfg: Config, optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """float16 needs dynamic loss scaling (bfloat16 has float32's range and does not).

    The LossScaleOptimizer skips any step whose gradients are not finite and halves its scale,
    so one overflow does not corrupt the weights.
    """
    if cfg.mixed_precision == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


# ---- multi-worker file rules -----------------------------------------------------------------
def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the one process that owns `--model_dir` (always true on a single worker)."""
    return strategy.extended.should_checkpoint


def chief_checkpoint_dir(model_dir: str) -> str:
    """Where the run's checkpoints live; every worker restores from here."""
    return layout.checkpoint_dir(model_dir)


def worker_temp_dir(model_dir: str, strategy: tf.distribute.Strategy) -> str | None:
    """The throw-away folder of a non-chief worker (None for the chief)."""
    if is_chief(strategy):
        return None
    return os.path.join(model_dir, f"workertemp_{strategy.cluster_resolver.task_id}")


def checkpoint_write_dir(model_dir: str, strategy: tf.distribute.Strategy) -> str:
    """Where this worker's CheckpointManager writes: the chief's folder, or its temp folder."""
    temp = worker_temp_dir(model_dir, strategy)
    return chief_checkpoint_dir(model_dir) if temp is None else layout.checkpoint_dir(temp)


def remove_worker_temp_dir(model_dir: str, strategy: tf.distribute.Strategy) -> None:
    """A non-chief worker deletes what it wrote; a no-op on the chief."""
    temp = worker_temp_dir(model_dir, strategy)
    if temp is not None:
        shutil.rmtree(temp, ignore_errors=True)
