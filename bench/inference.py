"""Inference speed: faces/s of a trained generator (Keras and SavedModel) vs bicubic, and peak memory.

    nice python -m bench.inference [--model_dir=celeba_16to64_psnr] [--batch=32] [--repeats=10]

Both upscalers get the same uint8 LR faces (fixture faces, downscaled as in training) and
return uint8 HR faces, each through one tf.function, so the ratio compares like with like:
the generator paths are `serving.upscalers.GeneratorUpscaler` (uint8 -> [-1, 1] -> bicubic -> generator -> uint8)
and the SavedModel that `export_lib.export` writes of the same model (to a temporary folder),
run through its `serving_default` signature; the baseline is their first step alone
(uint8 -> bicubic -> uint8). Times are the median of `--repeats` batches after a warm-up.
Memory is the process's peak resident set size (`resource.getrusage`), read after setup and
after each upscaler's runs (the SavedModel's row includes exporting and loading it); since the
peak only grows, each row's increase is what that step needed on top.
"""

from __future__ import annotations

import os
import resource
import tempfile

import tensorflow as tf
from absl import app, flags

from bench.device import cpu_name
from bench.measure import faces_per_second, lr_faces
from tf_stacksr import models
from tf_stacksr.data import pairs
from tf_stacksr.serving import export_lib


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


flags.DEFINE_string("model_dir", "celeba_16to64_psnr",
                    "Any model tf_stacksr.models.load takes: a shipped name, packed folder or training --model_dir.")
flags.DEFINE_integer("batch", 32, "Faces per call.")
flags.DEFINE_integer("repeats", 10, "Timed calls (median reported).")


def main(argv) -> None:
    del argv
    args = flags.FLAGS

    upscaler = models.load(args.model_dir)
    faces = lr_faces(upscaler.lr_size, upscaler.hr_size, args.batch)
    bicubic = tf.function(lambda lr: pairs.float_to_uint8(pairs.upscale(pairs.uint8_to_float(lr), upscaler.hr_size)))
    setup_mib = peak_rss_mib()

    bicubic_rate = faces_per_second(lambda x: bicubic(tf.constant(x)).numpy(), faces, args.repeats)
    bicubic_mib = peak_rss_mib()
    model_rate = faces_per_second(upscaler, faces, args.repeats)
    model_mib = peak_rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        export_lib.export(args.model_dir, os.path.join(tmp, "1"))
        saved_rate = faces_per_second(models.load(os.path.join(tmp, "1")), faces, args.repeats)
    saved_mib = peak_rss_mib()

    cfg = upscaler.cfg
    print(f"\ndevice: {cpu_name()} ({os.cpu_count()} cores visible)")
    print(f"model: {args.model_dir} ({cfg.lr_size}->{cfg.hr_size}, unet {cfg.unet_filters}/{cfg.unet_max_filters}, "
          f"up {cfg.up_filters}, {cfg.blocks_text}x{cfg.res_convs} residual convs), batch {args.batch}")
    print(f"{'upscaler':22} {'faces/s':>9} {'peak RSS MiB':>13} {'(+ over previous)':>18}")
    print(f"{'setup (TF, inputs)':22} {'':>9} {setup_mib:13.0f}")
    print(f"{'bicubic resize':22} {bicubic_rate:9.1f} {bicubic_mib:13.0f} {bicubic_mib - setup_mib:+18.0f}")
    print(f"{'generator (Keras)':22} {model_rate:9.1f} {model_mib:13.0f} {model_mib - bicubic_mib:+18.0f}")
    print(f"{'SavedModel (exported)':22} {saved_rate:9.1f} {saved_mib:13.0f} {saved_mib - model_mib:+18.0f}")
    print(f"generator / bicubic speed: {model_rate / bicubic_rate:.4f} ({bicubic_rate / model_rate:.0f}x slower)")
    print(f"SavedModel / bicubic speed: {saved_rate / bicubic_rate:.4f} ({bicubic_rate / saved_rate:.0f}x slower)")
    print(f"SavedModel / generator speed: {saved_rate / model_rate:.2f}")


if __name__ == "__main__":
    app.run(main)
