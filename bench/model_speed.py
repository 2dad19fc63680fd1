"""Speed of every shipped model as served: GFLOP per face, faces/s and ms per face of its SavedModel.

    nice python -m bench.model_speed [--models=celeba_16to64_psnr,...] [--batches=1,32] [--batch_branches=1,2]
                                     [--seconds=4] [--rounds=2] [--json=runs/bench/model_speed.json]

Per model (`tf_stacksr.models.zoo`, all shipped ones by default; any path `models.load` takes
works too), in one run:
- GFLOP per face, counted on the traced graph of `upscalers.stages_from_uint8` at batch 1 with
  the flip ensemble off and on (`bench.measure`: convolutions only; the on row runs the
  generator twice);
- faces/s at each --batches size through the SavedModel that `export_lib.export` writes with
  flip_ensemble on and with it off, for each --batch_branches (export's option: a batch cut into
  that many parts run side by side; 1 = every batch whole), to a temporary folder, called through its
  `serving_default` signature as `tf_stacksr.models.load` returns it (uint8 faces in and out,
  the conversions, bicubic pre-upscale and clipping included): the median of as many calls as
  fit in --seconds (at least 3) after one warm-up call, on the fixture faces downscaled as in
  training; every model is timed --rounds times, interleaved, and its fastest round kept, so a
  busy moment of a shared machine slows one round rather than one model;
- the achieved GFLOP/s as a share of the float32 2048^3 matmul rate, timed before every round
  and at the end (the best of these: a busy neighbour only lowers it, so the shares are
  conservative).
Prints a Markdown table; --json writes every number.
"""

from __future__ import annotations

import os
import tempfile

import tensorflow as tf
from absl import app, flags

from bench.device import cpu_name
from bench.measure import budget_seconds, graph_flops, lr_faces, matmul_gflops
from tf_stacksr import files, models
from tf_stacksr.models import zoo
from tf_stacksr.serving import export_lib, signatures
from tf_stacksr.serving.upscalers import stages_from_uint8

flags.DEFINE_list("models", None, "Models to time (default: every shipped model).")
flags.DEFINE_list("batches", ["1", "32"], "Faces per call to time.")
flags.DEFINE_list("batch_branches", [str(signatures.BATCH_BRANCHES)], "Exports to time per model and flip setting:"
                  " export --batch_branches values.")
flags.DEFINE_float("seconds", 4.0, "Time per (model, flip, batch) and round: calls = seconds / first call, 3 to 200.")
flags.DEFINE_integer("rounds", 2, "Interleaved rounds over every model; each one's fastest is kept.")
flags.DEFINE_string("json", None, "Also write every number to this JSON file.")


def face_flops(generator, lr_size: int, hr_size: int, flip: bool) -> int:
    """Conv FLOPs to super-resolve one face (the generator twice with the flip ensemble)."""
    run = tf.function(lambda lr: stages_from_uint8(generator, lr, hr_size, flip)[-1])
    return graph_flops(run.get_concrete_function(tf.TensorSpec([1, lr_size, lr_size, 3], tf.uint8)))


def flip_key(flip: bool) -> str:
    return "flip" if flip else "no_flip"


def variant_key(flip: bool, branches: int) -> str:
    return f"{flip_key(flip)}_b{branches}"


def exported(name: str, folder: str, branch_counts: list[int]) -> tuple[dict, dict]:
    """(the model's row: sizes and GFLOP per face, {variant key: upscaler of its SavedModel in
    `folder`}), a variant per flip setting and --batch_branches value."""
    cfg, generator = models.load_generator(name)
    row = {"model": name, "lr_size": cfg.lr_size, "hr_size": cfg.hr_size, "flip_default": bool(cfg.flip_ensemble),
           "gflop_per_face": {}, "seconds_per_call": {}}
    upscalers = {}
    for flip in (True, False):
        row["gflop_per_face"][flip_key(flip)] = face_flops(generator, cfg.lr_size, cfg.hr_size, flip) / 1e9
        for branches in branch_counts:
            key = variant_key(flip, branches)
            path = os.path.join(folder, name, key, "1")
            export_lib.export(name, path, flip_ensemble=flip, batch_branches=branches)
            upscalers[key] = models.load(path)
    return row, upscalers


def print_table(rows: list[dict], batches: list[int], branch_counts: list[int], matmul: float) -> None:
    b_small, b_large = min(batches), max(batches)
    print(f"| model | LR->HR | flip ensemble | batch branches | GFLOP/face | faces/s (batch {b_small}) |"
          f" ms/face (batch {b_small}) | faces/s (batch {b_large}) | of matmul (batch {b_small} / {b_large}) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        for flip in (True, False):
            gflop = row["gflop_per_face"][flip_key(flip)]
            label = ("on" if flip else "off") + (" (shipped)" if flip == row["flip_default"] else "")
            for branches in branch_counts:
                seconds = row["seconds_per_call"][variant_key(flip, branches)]
                rate = {b: b / seconds[b] for b in batches}
                share = " / ".join(f"{gflop * rate[b] / matmul:.0%}" for b in (b_small, b_large))
                print(f"| {row['model']} | {row['lr_size']}->{row['hr_size']} | {label} | {branches} | {gflop:.2f} |"
                      f" {rate[b_small]:.1f} | {1e3 * seconds[b_small] / b_small:.1f} | {rate[b_large]:.1f} | {share} |")


def main(argv) -> None:
    del argv
    args = flags.FLAGS
    names = args.models or list(zoo.entries())
    batches = sorted({int(b) for b in args.batches})
    branch_counts = sorted({int(b) for b in args.batch_branches})

    reference = []
    with tempfile.TemporaryDirectory() as tmp:
        served = [exported(name, tmp, branch_counts) for name in names]
        for _ in range(args.rounds):  # interleaved: a busy moment slows one round, not one model
            reference.append(matmul_gflops())
            for row, upscalers in served:
                faces = {b: lr_faces(row["lr_size"], row["hr_size"], b) for b in batches}
                for key, upscaler in upscalers.items():
                    best = row["seconds_per_call"].setdefault(key, {})
                    for b in batches:
                        seconds = budget_seconds(lambda: upscaler(faces[b]), args.seconds)  # noqa: B023
                        best[b] = min(best.get(b, float("inf")), seconds)
        reference.append(matmul_gflops())
    rows = [row for row, _ in served]
    matmul = max(reference)

    print(f"\ndevice: {cpu_name()} ({os.cpu_count()} cores visible)")
    print(f"float32 matmul 2048^3: {matmul:.1f} GFLOP/s (best of {', '.join(f'{r:.1f}' for r in reference)})\n")
    print_table(rows, batches, branch_counts, matmul)
    if args.json:
        files.write_json(args.json, {"device": cpu_name(), "cores": os.cpu_count(), "matmul_gflops": reference,
                                     "models": rows}, sort_keys=False)


if __name__ == "__main__":
    app.run(main)
