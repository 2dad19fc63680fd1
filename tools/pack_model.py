"""Pack a trained generator for shipping (int8 kernels, ~4x smaller than float32; `tf_stacksr.models.packed`).

  python tools/pack_model.py --model_dir=runs/celeba_16to64_psnr --output=tf_stacksr/weights/celeba_16to64_psnr

Prints the packed size and how far the packed model's output moves from the float one on
real test faces (--data, prepared shards or an image folder) or, without --data, random inputs.

With --blend_with and --alpha it packs the weight average (1 - alpha) * model_dir + alpha *
blend_with of two generators of one architecture (`tf_stacksr.models.interpolate_generators`): the
network interpolation that export and enhance do at run time, or a "model soup" of two
fine-tunes of one parent model. Either input may be a training folder or a packed model.
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import app, flags

flags.DEFINE_string("model_dir", None, "Training folder (config.json + checkpoints/) or packed model to pack.")
flags.DEFINE_string("blend_with", None, "Optional second generator (training folder or packed model) averaged in by --alpha.")
flags.DEFINE_float("alpha", None, "Weight of --blend_with in the average, in [0, 1]; needs --blend_with.")
flags.DEFINE_string("output", None, "Packed model folder to write (replaced if it exists).")
flags.DEFINE_string("data", None, "Optional faces to measure the packing error on (prepared shards or a folder).")
flags.DEFINE_bool("flip_ensemble", None, "Ship the model with its flip ensemble on or off (Config.flip_ensemble); default: as trained (off).")
flags.DEFINE_integer("limit", 200, "Faces used from --data.")
flags.mark_flags_as_required(["model_dir", "output"])
FLAGS = flags.FLAGS


def _source(model: str) -> dict:
    """Where a model's weights came from: its run folder and checkpoint (a packed model's own record)."""
    from tf_stacksr import models
    from tf_stacksr.models import layout

    if layout.is_packed(model):
        with open(layout.config_path(model)) as fh:
            return json.load(fh).get("packed_from", {"model_dir": os.path.basename(os.path.normpath(model))})
    return {"model_dir": os.path.basename(os.path.normpath(model)),
            "checkpoint": os.path.basename(models.weights_file(model))}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    import tensorflow as tf

    from tf_stacksr import models
    from tf_stacksr.data import pairs
    from tf_stacksr.evaluation import eval_data
    from tf_stacksr.metrics.image import psnr
    from tf_stacksr.models import packed
    from tf_stacksr.serving.upscalers import GeneratorUpscaler

    if FLAGS.alpha is not None and not FLAGS.blend_with:
        raise app.UsageError("--alpha needs --blend_with")
    cfg, generator = models.load_generator(FLAGS.model_dir, gan_model=FLAGS.blend_with, alpha=FLAGS.alpha,
                                           flip_ensemble=FLAGS.flip_ensemble)
    source = _source(FLAGS.model_dir)
    if FLAGS.blend_with:
        source = {"blend": [source, _source(FLAGS.blend_with)], "alpha": FLAGS.alpha}
    path = packed.pack(cfg, generator, FLAGS.output, source=source)
    size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    float_model = GeneratorUpscaler(cfg, generator, "float32")
    packed_model = models.load(path)
    if FLAGS.data:
        faces = eval_data.open_faces(FLAGS.data, cfg.hr_size, FLAGS.limit).dataset.map(lambda key, ident, hr: hr)
        hr_float = tf.stack(list(faces))  # the evaluation's HR -> LR protocol (eval_lib)
        hr = pairs.float_to_uint8(hr_float).numpy()
        lr = pairs.float_to_uint8(pairs.downscale(hr_float, cfg.lr_size)).numpy()
    else:
        lr = np.random.default_rng(0).integers(0, 256, (16, cfg.lr_size, cfg.lr_size, 3), dtype=np.uint8)
        hr = None
    a, b = float_model(lr), packed_model(lr)
    report = {"output": path, "bytes": size, "parameters": generator.count_params(), "source": source,
              "max_abs_diff_grey_levels": int(np.abs(a.astype(int) - b.astype(int)).max()),
              "psnr_packed_vs_float_db": float(np.mean(psnr(a, b)))}
    if hr is not None:
        report.update(faces=len(hr), psnr_float_db=float(np.mean(psnr(a, hr))), psnr_packed_db=float(np.mean(psnr(b, hr))))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    app.run(main)
