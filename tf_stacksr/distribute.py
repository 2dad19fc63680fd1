"""The one place that decides the distribution strategy and the mixed-precision policy."""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_stacksr.config import Config


def make_strategy(cfg: Config) -> tf.distribute.Strategy:
    """`--strategy` as a tf.distribute strategy ('auto': mirrored over several GPUs, else one device)."""
    gpus = tf.config.list_logical_devices("GPU")
    name = cfg.strategy
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"--strategy={cfg.strategy!r}: expected auto, one_device, mirrored, multi_worker or tpu")


def apply_precision_policy(cfg: Config) -> None:
    """Set Keras' global dtype policy from `--mixed_precision` (before any model is built)."""
    keras.mixed_precision.set_global_policy(cfg.mixed_precision)


def wrap_optimizer(cfg: Config, optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """float16 needs dynamic loss scaling (bfloat16 has float32's range and does not)."""
    if cfg.mixed_precision == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
