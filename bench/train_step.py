"""Train-step speed: images/s and achieved GFLOP/s, as a fraction of this machine's matmul GFLOP/s.

    nice python -m bench.train_step [--configs=16to64 --configs=32to128] [--widths=quickstart|paper|shipped]
                                    [--precision=float32] [--steps=8] [--batch=8] [--profile]
    nice python -m bench.train_step --configs=configs/celeba_16to64_gan.flags   # a whole training recipe

Everything is measured in one run, so the ratios hold even on a busy shared machine, with the
malloc settings that `python -m tf_stacksr.train` applies (`tf_stacksr.allocator`):
- matmul GFLOP/s: a float32 2048x2048 matmul in a tf.function, timed before and after each
  setting's train steps; each row's share is of the better of its two (a busy neighbour only
  lowers it, and on a shared host the rate drifts within a run);
- per config and per XLA setting: the full train step (generator, discriminators, both Adam
  updates) on one fixed in-memory batch, so JPEG decoding does not compete for the cores;
- step FLOPs are counted on the traced graph of the forward + backward pass (`Trainer._compute`):
  2 x multiply-adds of every Conv2D, Conv2DBackpropInput, Conv2DBackpropFilter and MatMul op
  that the outputs depend on (gradients nobody uses are pruned before running), from their
  static shapes. Normalisation, activations, losses and the optimiser update are
  not counted (the usual model-FLOPs convention), so GFLOP/s means useful convolution work.
- `--configs` also takes a training flagfile: its whole recipe (its generator, discriminators,
  identity term, teacher) is timed on the same fixed batch; `--widths` does not apply to it, and
  its `--init_from` is dropped (the weights do not change the time).
- `--profile` adds the share of step time per TensorFlow op type (from a profiler trace), to
  see what keeps the step below the matmul rate.
"""

from __future__ import annotations

import os
import tempfile

import tensorflow as tf
from absl import app, flags

from bench.device import cpu_name
from bench.measure import FACES, fixed_batch, graph_flops, matmul_gflops, median_seconds, op_time_shares
from tf_stacksr import allocator, config
from tf_stacksr.config import Config
from tf_stacksr.training.train_lib import Trainer

CONFIGS = {"16to64": dict(hr_size=64, scale=4), "32to128": dict(hr_size=128, scale=4)}
WIDTHS = {
    "quickstart": dict(unet_filters=32, unet_max_filters=128, up_filters=32, disc_filters=32),
    "paper": dict(unet_filters=64, unet_max_filters=512, up_filters=64, disc_filters=64),
    "shipped": "configs/base/shipped_generator.flags",  # the generator every shipped model has
}


def network_options(widths: str) -> dict:
    """The Config options of a --widths choice (a flagfile's generator options, read from it)."""
    chosen = WIDTHS[widths]
    if isinstance(chosen, dict):
        return chosen
    cfg = config.from_flagfile(os.path.join(os.path.dirname(__file__), os.pardir, chosen))
    return {k: getattr(cfg, k) for k in config.GENERATOR_FIELDS if k not in ("hr_size", "scale")}


def step_config(name: str, args, xla: bool) -> Config:
    """The Config of one timed setting: a model size at --widths, or a training flagfile's recipe."""
    common = dict(data_dir=FACES, model_dir=tempfile.mkdtemp(), batch_size=args.batch, strategy="one_device",
                  jit_compile=xla, mixed_precision=args.precision)
    if name.endswith(".flags"):
        if not os.path.isfile(name):
            raise app.UsageError(f"--configs: no flagfile {name}")
        return config.from_flagfile(name).replace(init_from="", **common)
    if name not in CONFIGS:
        raise app.UsageError(f"--configs: {name!r} is neither one of {sorted(CONFIGS)} nor a .flags file")
    return Config(**common, **CONFIGS[name], **network_options(args.widths))


def time_train_step(trainer: Trainer, batch, steps: int) -> float:
    """Median seconds per full train step (after two warm-up steps)."""
    ds = tf.data.Dataset.from_tensors(batch).repeat()
    iterator = iter(trainer.strategy.experimental_distribute_dataset(ds))
    allocator.keep_freed_memory()  # again: TensorFlow's generator dataset behind this iterator resets M_TRIM_THRESHOLD
    return median_seconds(lambda: trainer.train_step(iterator)["g_total"].numpy(), steps, warmup=2)


def step_flops(trainer: Trainer, batch) -> int:
    """Conv/matmul FLOPs of one forward + backward pass, counting only ops that actually run."""
    return graph_flops(trainer._compute.get_concrete_function(*batch))  # the step's own graph


def profile_op_shares(trainer: Trainer, batch, steps: int = 3) -> list[tuple[str, float]]:
    """Share of traced op time per TF op type over `steps` train steps (top 12)."""
    ds = tf.data.Dataset.from_tensors(batch).repeat()
    iterator = iter(trainer.strategy.experimental_distribute_dataset(ds))
    return op_time_shares(lambda: trainer.train_step(iterator)["g_total"].numpy(), steps)


flags.DEFINE_integer("steps", 8, "Timed steps per setting (median reported).")
flags.DEFINE_integer("batch", 8, "Global batch size.")
flags.DEFINE_enum("widths", "quickstart", sorted(WIDTHS), "Network widths (shipped: the shipped models' generator, with 3x3 residual convs).")
flags.DEFINE_multi_string("configs", list(CONFIGS), f"What to time (repeat the flag): a model size ({', '.join(CONFIGS)}) "
                          "at --widths, or a training flagfile (path ending in .flags), its whole recipe.")
flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"], "Precision policy.")
flags.DEFINE_bool("profile", False, "Also print op-type time shares (first config, no XLA).")


def main(argv) -> None:
    del argv
    args = flags.FLAGS
    allocator.keep_freed_memory()  # as every command does at start-up

    reference = [matmul_gflops()]  # reference[i] and reference[i + 1] bracket row i
    rows, shares = [], []
    for name in args.configs:
        for xla in (False, True):
            cfg = step_config(name, args, xla)
            trainer = Trainer(cfg)
            batch = fixed_batch(cfg)
            flops = step_flops(trainer, batch)
            seconds = time_train_step(trainer, batch, args.steps)
            rows.append((name, xla, seconds, args.batch / seconds, flops / 1e9, flops / seconds / 1e9))
            if args.profile and not xla and not shares:
                shares = profile_op_shares(trainer, batch)
                profiled = name
            reference.append(matmul_gflops())

    print(f"\ndevice: {cpu_name()} ({os.cpu_count()} cores visible), widths={args.widths}, batch={args.batch}, "
          f"precision={args.precision}")
    print(f"float32 matmul 2048^3: {max(reference):.1f} GFLOP/s at best, {min(reference):.1f} at worst in this run")
    width = max(8, *map(len, args.configs))
    print(f"{'config':{width}} {'XLA':5} {'ms/step':>8} {'img/s':>7} {'GFLOP/step':>10} {'GFLOP/s':>8} {'matmul':>7} {'of matmul':>9}")
    for i, (name, xla, seconds, ips, gflop, rate) in enumerate(rows):
        matmul = max(reference[i], reference[i + 1])
        print(f"{name:{width}} {str(xla):5} {seconds * 1e3:8.1f} {ips:7.1f} {gflop:10.2f} {rate:8.1f} {matmul:7.1f} "
              f"{rate / matmul:9.1%}")
    for name in args.configs:
        plain, jit = [r for r in rows if r[0] == name]
        print(f"{name}: XLA speedup {plain[2] / jit[2]:.2f}x")
    if args.profile:
        print(f"\nop-type share of traced op time ({profiled}, no XLA):")
        for op_type, share in shares:
            print(f"  {op_type:32} {share:6.1%}")


if __name__ == "__main__":
    app.run(main)
