"""Does the tf.data pipeline keep the train step fed? Both rates measured in one run.

    python -m bench.data_pipeline --data_dir=/path/to/prepared_shards [--flagfile=configs/celeba_32to128.flags]

Prints examples/s of `pipeline.training_dataset` alone (decode, flip, pairs, batch; nothing
else running), examples/s of `Trainer.train_step` fed from one cached batch (so it measures the
step, not the input), and their ratio; the pipeline keeps the step fed when the ratio is well
above 1 (aim for >= 3 at 32->128). Defaults: the paper's 32->128 model, batch 16.
"""

from __future__ import annotations

import time

import tensorflow as tf
from absl import app, flags

from tf_stacksr import config as config_lib
from tf_stacksr.data import pipeline
from tf_stacksr.training import train_lib

config_lib.define_flags()
flags.DEFINE_integer("pipeline_batches", 200, "Batches timed from the input pipeline (after 20 warm-up batches).")
flags.DEFINE_integer("step_batches", 10, "Train steps timed (after 2 warm-up steps, which include tracing).")
FLAGS = flags.FLAGS


def pipeline_rate(cfg: config_lib.Config, batches: int) -> float:
    iterator = iter(pipeline.training_dataset(cfg.data_dir, cfg.stage_sizes, global_batch_size=cfg.batch_size, seed=cfg.seed))
    for _ in range(20):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        inputs, _ = next(iterator)
    inputs.numpy()
    return batches * cfg.batch_size / (time.perf_counter() - start)


def step_rate(cfg: config_lib.Config, steps: int) -> float:
    trainer = train_lib.Trainer(cfg)
    batch = next(iter(pipeline.training_dataset(cfg.data_dir, cfg.stage_sizes, global_batch_size=cfg.batch_size, seed=cfg.seed)))
    cached = trainer.strategy.distribute_datasets_from_function(
        lambda ctx: tf.data.Dataset.from_tensors(batch).repeat())
    iterator = iter(cached)
    for _ in range(2):
        trainer.train_step(iterator)
    start = time.perf_counter()
    for _ in range(steps):
        terms = trainer.train_step(iterator)
    float(terms["g_total"])
    return steps * cfg.batch_size / (time.perf_counter() - start)


def main(argv):
    del argv
    overrides = {"hr_size": 128, "scale": 4} if not FLAGS["hr_size"].present and not FLAGS["scale"].present else {}
    cfg = config_lib.from_flags(FLAGS).replace(model_dir="/tmp/bench_data_pipeline_unused", **overrides)
    cfg.check_data_dir()
    device = (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))[0].name
    data_rate = pipeline_rate(cfg, FLAGS.pipeline_batches)
    train_rate = step_rate(cfg, FLAGS.step_batches)
    print(f"config: {cfg.lr_size}->{cfg.hr_size}, batch {cfg.batch_size}, data {cfg.data_dir}, step on {device}")
    print(f"tf.data pipeline : {data_rate:9.1f} examples/s")
    print(f"train step       : {train_rate:9.1f} examples/s")
    print(f"ratio            : {data_rate / train_rate:9.2f}  (pipeline / step; >= 3 keeps the step fed)")


if __name__ == "__main__":
    app.run(main)
