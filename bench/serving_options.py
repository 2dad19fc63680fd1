"""Cheap inference-speed settings, each measured as faces/s relative to the served model, in one run.

    nice python -m bench.serving_options [--model=celeba_16to64_psnr] [--batches=1,32] [--seconds=4]
                                         [--rounds=2] [--profile]

Nothing here retrains or changes what a model computes; every variant's SR faces are compared with
the served one (largest difference in grey levels, printed). The reference is the SavedModel that
`export_lib.export` writes of --model (its own flip ensemble setting), through `serving_default`
as `tf_stacksr.models.load` returns it. In this process, on the same fixture faces:
- keras: the Keras generator through `GeneratorUpscaler` (the same graph, not exported, each batch
  run whole: the export cuts batches into its --batch_branches parts);
- xla: `stages_from_uint8` with all but its bicubic pre-upscale (ResizeBicubic has no XLA
  kernel) in a tf.function with jit_compile=True;
- pre/post only: everything the served graph does around the generator (uint8 -> [-1, 1], the
  bicubic pre-upscale, with the flip ensemble the mirroring and averaging, rounding and clipping
  to uint8) without the generator: its time over the reference's is what they cost;
- flip in one batch: with the flip ensemble, the face and its mirror image as one batch of 2N
  through one generator call instead of two calls of N.
In child processes (TensorFlow's thread pools and oneDNN are fixed when it starts), the
reference SavedModel again, under each of SETTINGS: intra-/inter-op thread counts and oneDNN on
or off; their rates are relative to a child with the defaults.
Every variant is timed --rounds times, interleaved, and its best round kept, so a busy moment of
a shared machine lowers one round, not one variant. Each round: the median of as many calls as
fit in --seconds (at least 3). --profile adds the share of op time per op type of the reference
at the largest batch (which ops run fused, what the non-conv ops cost).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf
from absl import app, flags

from bench.device import cpu_name
from bench.measure import budget_seconds, lr_faces, op_time_shares
from tf_stacksr import models
from tf_stacksr.data import pairs
from tf_stacksr.networks import run_stages
from tf_stacksr.serving import export_lib

# Child-process settings: name -> (environment, intra-op threads, inter-op threads); 0 = TF's default.
SETTINGS = {
    "default threads": ({}, 0, 0),
    "intra 2, inter 1": ({}, 2, 1),
    "intra 1, inter 2": ({}, 1, 2),
    "intra 1, inter 1": ({}, 1, 1),
    "oneDNN off": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, 0, 0),
}

flags.DEFINE_string("model", "celeba_16to64_psnr", "Model to export and time (any name or path models.load takes).")
flags.DEFINE_list("batches", ["1", "32"], "Faces per call.")
flags.DEFINE_float("seconds", 4.0, "Time per variant, batch and round: calls = seconds / first call, 3 to 200.")
flags.DEFINE_integer("rounds", 2, "Interleaved rounds; each variant's best is kept.")
flags.DEFINE_bool("profile", False, "Also print the reference's op-type time shares at the largest batch.")
flags.DEFINE_string("child", None, "Internal: time --saved_model under this SETTINGS entry and print JSON.")
flags.DEFINE_string("saved_model", None, "Internal: the exported model a --child times.")


def seconds_per_call(upscale, faces, budget: float) -> float:
    return budget_seconds(lambda: upscale(faces), budget)


def variants(cfg, generator, served) -> dict:
    """Name -> uint8 faces -> uint8 SR faces, for every in-process variant (see the module doc)."""
    hr, flip = cfg.hr_size, bool(cfg.flip_ensemble)
    spec = [tf.TensorSpec([None, cfg.lr_size, cfg.lr_size, 3], tf.uint8)]

    def one_batch_flip(lr):
        blurry = pairs.upscale(pairs.uint8_to_float(lr), hr)
        both = generator(tf.concat([blurry, tf.reverse(blurry, axis=[2])], axis=0), training=False)[-1]
        plain, mirrored = tf.split(tf.cast(both, tf.float32), 2)
        return pairs.float_to_uint8((plain + tf.reverse(mirrored, axis=[2])) / 2.0)

    def pre_post_only(lr):
        blurry = pairs.upscale(pairs.uint8_to_float(lr), hr)
        if flip:
            blurry = (blurry + tf.reverse(tf.reverse(blurry, axis=[2]), axis=[2])) / 2.0
        return pairs.float_to_uint8(blurry)

    def from_blurry(blurry):  # stages_from_uint8 after its bicubic pre-upscale (which XLA cannot compile)
        return pairs.float_to_uint8(run_stages(generator, blurry, flip)[-1])

    compiled = tf.function(from_blurry, jit_compile=True)
    xla = tf.function(lambda lr: compiled(pairs.upscale(pairs.uint8_to_float(lr), hr)), input_signature=spec)
    pre_post = tf.function(pre_post_only, input_signature=spec)
    found = {
        "served (SavedModel)": served,
        "keras": models.load(flags.FLAGS.model),
        "xla": lambda x: xla(tf.constant(x)).numpy(),
        "pre/post only": lambda x: pre_post(tf.constant(x)).numpy(),
    }
    if flip:
        batched = tf.function(one_batch_flip, input_signature=spec)
        found["flip in one batch"] = lambda x: batched(tf.constant(x)).numpy()
    return found


def child(setting: str, path: str, batches: list[int], budget: float) -> None:
    _, intra, inter = SETTINGS[setting]
    if intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    upscaler = models.load(path)
    rates = {b: b / seconds_per_call(upscaler, lr_faces(upscaler.lr_size, upscaler.hr_size, b), budget)
             for b in batches}
    print("RESULT " + json.dumps(rates))


def run_child(setting: str, path: str, args) -> dict[int, float]:
    env_extra, _, _ = SETTINGS[setting]
    command = [sys.executable, "-m", "bench.serving_options", f"--child={setting}", f"--saved_model={path}",
               f"--batches={','.join(args.batches)}", f"--seconds={args.seconds}"]
    done = subprocess.run(command, env={**os.environ, **env_extra}, capture_output=True, text=True, check=True)
    line = next(s for s in done.stdout.splitlines() if s.startswith("RESULT "))
    return {int(k): v for k, v in json.loads(line[len("RESULT "):]).items()}


def main(argv) -> None:
    del argv
    args = flags.FLAGS
    batches = sorted({int(b) for b in args.batches})
    if args.child:
        child(args.child, args.saved_model, batches, args.seconds)
        return

    cfg, generator = models.load_generator(args.model)
    faces = {b: lr_faces(cfg.lr_size, cfg.hr_size, b) for b in batches}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "1")
        export_lib.export(args.model, path)
        served = models.load(path)
        found = variants(cfg, generator, served)
        reference = served(faces[batches[-1]]).astype(int)
        differences = {name: int(np.abs(np.asarray(fn(faces[batches[-1]])).astype(int) - reference).max())
                       for name, fn in found.items() if name != "pre/post only"}
        best: dict[str, dict[int, float]] = {}
        for _ in range(args.rounds):
            for name, fn in found.items():
                for b in batches:
                    rate = b / seconds_per_call(fn, faces[b], args.seconds)
                    best.setdefault(name, {})[b] = max(best.get(name, {}).get(b, 0.0), rate)
            for setting in SETTINGS:
                for b, rate in run_child(setting, path, args).items():
                    best.setdefault(setting, {})[b] = max(best.get(setting, {}).get(b, 0.0), rate)
        shares = op_time_shares(lambda: served(faces[batches[-1]])) if args.profile else []

    print(f"\ndevice: {cpu_name()} ({os.cpu_count()} cores visible); model {args.model}"
          f" ({cfg.lr_size}->{cfg.hr_size}, flip ensemble {'on' if cfg.flip_ensemble else 'off'}),"
          f" best of {args.rounds} rounds\n")
    print("| variant | " + " | ".join(f"faces/s (batch {b}) | vs reference" for b in batches) + " | max diff (grey levels) |")
    print("|---|" + "---|---|" * len(batches) + "---|")
    for name in [*found, *SETTINGS]:
        base = best["served (SavedModel)"] if name in found else best["default threads"]
        cells = " | ".join(f"{best[name][b]:.1f} | {best[name][b] / base[b]:.2f}x" for b in batches)
        diff = differences.get(name, "n/a" if name in found else "same model")
        if name == "pre/post only":  # a part of the reference: its share of the reference's time
            cells = " | ".join(f"{best[name][b]:.1f} | {base[b] / best[name][b]:.1%} of its time" for b in batches)
        print(f"| {name} | {cells} | {diff} |")
    print("\n(in-process variants relative to the served SavedModel; thread and oneDNN settings, run in child"
          " processes, relative to the child with default settings)")
    if shares:
        print(f"\nop-type share of op time, served model, batch {batches[-1]}:")
        for op_type, share in shares:
            print(f"  {op_type:36} {share:6.1%}")


if __name__ == "__main__":
    app.run(main)
