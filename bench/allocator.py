"""Train-step time with glibc's malloc defaults and with `tf_stacksr.allocator`'s settings.

    nice python -m bench.allocator [--configs=quickstart,celeba_16to64_psnr,celeba_16to64_gan] [--rounds=1] [--steps=6]

Every command of the library applies the settings at start-up (`tf_stacksr.startup`); they are
process-wide, so each measurement is a fresh process. Per round and config, one process runs with
the defaults and one with the settings (which goes first alternates between rounds); each builds the
Trainer of the config's recipe (`recipe`), runs two warm-up steps, then times `--steps` full train
steps on one fixed in-memory batch of fixture faces (`bench.measure.fixed_batch`). It reports the
median ms per step, kernel CPU seconds and minor page faults per step, and the process's peak
resident memory. Nothing else runs in those processes first: a large matmul before the first step
raises glibc's dynamic thresholds by itself and would hide the difference.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile

import numpy as np
from absl import app, flags

from bench.measure import FACES
from tf_stacksr import config as config_lib
from tf_stacksr.config import Config
from tf_stacksr.models import layout, zoo

QUICKSTART = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "quickstart.flags")
MODES = ("defaults", "settings")

flags.DEFINE_list("configs", ["quickstart", zoo.PSNR_MODEL, zoo.GAN_MODEL],
                  "Train steps to time: `quickstart` (configs/quickstart.flags) or shipped model names (the recipe "
                  "in their config.json).")
flags.DEFINE_integer("rounds", 1, "Paired rounds (each: every config, both malloc modes).")
flags.DEFINE_integer("steps", 6, "Timed steps per process (median reported).")
flags.DEFINE_string("child", None, "Internal: time CONFIG,MODE in this process and print JSON.")


def recipe(name: str) -> Config:
    """The training config of `name`, set to train on the fixture faces on one device."""
    if name == "quickstart":
        cfg = config_lib.from_flagfile(QUICKSTART)
    else:
        cfg = config_lib.load_json(layout.config_path(zoo.resolve(name)))
    return cfg.replace(data_dir=FACES, model_dir=tempfile.mkdtemp(), strategy="one_device", init_from="", teacher="")


def time_in_this_process(config: str, mode: str, steps: int) -> dict:
    if mode == "settings":
        from tf_stacksr import allocator

        assert allocator.keep_freed_memory(), "glibc's mallopt is not available here"
    import tensorflow as tf

    from bench.measure import fixed_batch, median_seconds
    from tf_stacksr.training.train_lib import Trainer

    cfg = recipe(config)
    trainer = Trainer(cfg)
    batch = fixed_batch(cfg)
    iterator = iter(trainer.strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch).repeat()))
    step = lambda: trainer.train_step(iterator)["g_total"].numpy()  # noqa: E731
    step(), step()
    before = resource.getrusage(resource.RUSAGE_SELF)
    seconds = median_seconds(step, steps, warmup=0)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"config": config, "mode": mode, "ms_per_step": 1e3 * seconds,
            "system_s_per_step": (after.ru_stime - before.ru_stime) / steps,
            "minor_faults_per_step": (after.ru_minflt - before.ru_minflt) / steps,
            "peak_rss_mib": after.ru_maxrss / 1024}


def run_child(config: str, mode: str, steps: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.allocator", f"--child={config},{mode}", f"--steps={steps}"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv) -> None:
    del argv
    args = flags.FLAGS
    if args.child:
        config, mode = args.child.split(",")
        print(json.dumps(time_in_this_process(config, mode, args.steps)))
        return
    known = ["quickstart", *zoo.shipped()]
    unknown = [c for c in args.configs if c not in known]
    if unknown:
        raise app.UsageError(f"--configs: unknown {', '.join(unknown)}; expected some of {', '.join(known)}")
    results = []
    for r in range(args.rounds):
        for config in args.configs:
            for mode in (MODES if r % 2 == 0 else MODES[::-1]):
                results.append(run_child(config, mode, args.steps))
                print(json.dumps(results[-1]), flush=True)
    print("\n| train step | malloc | ms/step | kernel CPU s/step | minor page faults/step | peak RSS MiB | speed-up |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for config in args.configs:
        rows = {m: [x for x in results if x["config"] == config and x["mode"] == m] for m in MODES}
        ms = {m: float(np.median([x["ms_per_step"] for x in rows[m]])) for m in MODES}
        for m in MODES:
            sys_s = np.median([x["system_s_per_step"] for x in rows[m]])
            faults = np.median([x["minor_faults_per_step"] for x in rows[m]])
            rss = np.median([x["peak_rss_mib"] for x in rows[m]])
            speedup = f"{ms['defaults'] / ms[m]:.2f}x" if m == "settings" else ""
            print(f"| {config} | {m} | {ms[m]:.0f} | {sys_s:.2f} | {faults:,.0f} | {rss:,.0f} | {speedup} |")


if __name__ == "__main__":
    app.run(main)
