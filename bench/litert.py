"""LiteRT (TFLite) files vs the SavedModel: file size, faces/s, and PSNR on aligned CelebA test faces.

    nice python -m bench.litert [--model_dir=celeba_16to64_psnr] [--data=data/celeba128] [--faces=300]

For each model (every shipped model, or the one given) it writes the SavedModel
(`export_lib.export`) and the two LiteRT files (`litert_export.export`, int8 calibrated on
--calibration_faces faces of the data's train split) to a temporary folder, then reports:
- the size of each file (MB, 10^6 bytes);
- faces/s at batch 1 and 32: the SavedModel's `serving_default` and each LiteRT file in the
  `ai-edge-litert` interpreter with --threads threads, all on the same uint8 LR faces in this
  process (median of --repeats calls after a warm-up);
- PSNR-Y (dB) of each against the HR truth on the first --faces test faces of --data (the
  aligned CelebA test split of docs/results.md, made by
  `python -m tf_stacksr.prepare --input=../shared/data/celeba --output=data/celeba128 --size=128`),
  LR made as evaluation makes it, and each LiteRT file's loss against the SavedModel.
A model whose HR size exceeds the prepared faces' size is skipped (its faces would be upsampled).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import tensorflow as tf
from absl import app, flags

from bench.device import cpu_name
from bench.measure import faces_per_second
from tf_stacksr import models
from tf_stacksr.data import pairs, shards
from tf_stacksr.evaluation import eval_data
from tf_stacksr.metrics import image as image_metrics
from tf_stacksr.models import zoo
from tf_stacksr.serving import export_lib, litert_export

flags.DEFINE_string("model_dir", None, "Any model tf_stacksr.models.load_generator takes (default: every shipped model).")
flags.DEFINE_string("data", "data/celeba128", "Prepared aligned faces (docs/results.md): the test split is scored,"
                    " the train split calibrates the int8 file.")
flags.DEFINE_integer("faces", 300, "Test faces scored.", lower_bound=1)
flags.DEFINE_integer("calibration_faces", 200, "Train faces the int8 file is calibrated on.", lower_bound=1)
flags.DEFINE_integer("threads", 2, "LiteRT interpreter threads.", lower_bound=1)
flags.DEFINE_integer("repeats", 5, "Timed calls per batch size (median reported).", lower_bound=1)
BATCHES = (1, 32)


def bench_model(model: str, cfg, args) -> list[tuple]:
    """(name, MB, faces/s at each of BATCHES, PSNR-Y) of the SavedModel, then each LiteRT file."""
    source = eval_data.open_faces(args.data, cfg.hr_size, limit=args.faces, split="test")
    hr = tf.constant(np.stack([face for _, _, face in source.dataset.as_numpy_iterator()]))
    lr = pairs.float_to_uint8(pairs.downscale(hr, cfg.lr_size)).numpy()
    truth = pairs.float_to_uint8(hr).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        saved_dir, litert_dir = os.path.join(tmp, "saved_model", "1"), os.path.join(tmp, "litert")
        export_lib.export(model, saved_dir)
        metadata = litert_export.export(model, litert_dir, calibration_data=args.data,
                                        calibration_faces=args.calibration_faces)
        upscalers = {"SavedModel": models.load(saved_dir)}
        sizes = {"SavedModel": sum(os.path.getsize(os.path.join(root, name))
                                   for root, _, names in os.walk(saved_dir) for name in names)}
        for variant in ("float16", "int8"):
            path = os.path.join(litert_dir, metadata["files"][variant]["file"])
            runner = litert_export.interpreter(path, num_threads=args.threads)
            upscalers[f"LiteRT {variant}"] = lambda faces, runner=runner: litert_export.run(runner, faces)
            sizes[f"LiteRT {variant}"] = os.path.getsize(path)
        rows = []
        for name, upscale in upscalers.items():
            rates = [faces_per_second(upscale, lr[:batch], args.repeats) for batch in BATCHES]
            sr = np.concatenate([upscale(lr[i: i + 32]) for i in range(0, len(lr), 32)])
            psnr = float(np.mean(image_metrics.image_metrics(sr, truth)["psnr_y"]))
            rows.append((name, sizes[name] / 1e6, *rates, psnr))
    return rows


def main(argv) -> None:
    del argv
    args = flags.FLAGS
    if not shards.is_prepared(args.data):
        raise app.UsageError(f"--data={args.data}: expected prepared faces (python -m tf_stacksr.prepare"
                             " --input=../shared/data/celeba --output=data/celeba128 --size=128)")
    prepared_size = int(shards.read_manifest(args.data)["options"]["size"])
    names = [args.model_dir] if args.model_dir else list(zoo.entries())
    print(f"device: {cpu_name()} ({os.cpu_count()} cores visible); LiteRT {args.threads} threads;"
          f" {args.faces} test faces of {args.data}, int8 calibrated on {args.calibration_faces} train faces")
    for name in names:
        cfg, _ = models.load_generator(name)
        if cfg.hr_size > prepared_size:
            print(f"\n{name}: skipped, HR {cfg.hr_size} px > the {prepared_size} px faces of --data")
            continue
        rows = bench_model(name, cfg, args)
        base = rows[0][-1]
        print(f"\n{name} ({cfg.lr_size}->{cfg.hr_size}, flip ensemble {'on' if cfg.flip_ensemble else 'off'})")
        print(f"{'':18} {'MB':>6} {'faces/s b1':>11} {'faces/s b32':>12} {'PSNR-Y':>7} {'loss':>6}")
        for row_name, mb, rate1, rate32, psnr in rows:
            print(f"{row_name:18} {mb:6.2f} {rate1:11.1f} {rate32:12.1f} {psnr:7.2f} {base - psnr:6.2f}")


if __name__ == "__main__":
    app.run(main)
