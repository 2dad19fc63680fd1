"""Export a trained generator for TF Serving: `python -m tf_stacksr.export --model_dir=runs/x --export_dir=models/stacksr/1`,
or as LiteRT (TFLite) files: `python -m tf_stacksr.export --format=tflite --model_dir=runs/x --export_dir=models/litert`.

Without --model_dir it exports the pretrained model shipped with the package (`tf_stacksr.models.zoo`).

Thin entry: flags -> `export_lib.export` (SavedModel) or `litert_export.export` (a float16 and an
int8 .tflite file and metadata.json). Signatures and metadata: `tf_stacksr.serving.signatures`;
serving how-to: docs/serving.md. With --gan_model and --alpha, exports the ESRGAN-style
weight interpolation (1 - alpha) * model_dir + alpha * gan_model.
"""

from __future__ import annotations

from tf_stacksr import startup  # first: hides TensorFlow's start-up lines

import json
import os

from absl import app, flags

from tf_stacksr.serving import signatures

flags.DEFINE_enum("format", "saved_model", ["saved_model", "tflite"], "What to write: a SavedModel for TF Serving, or"
                  " LiteRT (TFLite) files for phones and edge devices (float16 and int8).")
flags.DEFINE_string("model_dir", None, "Model to export: a training folder (config.json + checkpoints/), a packed model"
                    " folder, or a shipped model's name (default: the shipped pretrained model).")
flags.DEFINE_string("export_dir", None, "Required: the folder to create; for a SavedModel a version folder,"
                    " <model_base_path>/<integer version>, e.g. models/stacksr/1.")
flags.DEFINE_bool("all_stages", False, "Also add the 'all_stages' signature returning every stage's output (LR first).")
flags.DEFINE_string("gan_model", None, "Second model (GAN, same architecture) to blend in with --alpha (default with"
                    " --alpha and no --model_dir: the shipped GAN model, blended into the shipped PSNR model).")
flags.DEFINE_bool("flip_ensemble", None, "Average with the mirrored face's output (2x compute); default: the model's own setting.")
flags.DEFINE_float("alpha", None, "Interpolation weight of --gan_model: 0 = --model_dir only, 1 = --gan_model only.")
flags.DEFINE_integer("max_batch", signatures.MAX_BATCH, "Most faces (or encoded images) one request may hold; a"
                     " larger request fails with a message (TF Serving itself caps nothing).", lower_bound=1)
flags.DEFINE_integer("batch_branches", signatures.BATCH_BRANCHES, "Cut a request of at least this many faces into"
                     " as many parts that run side by side on TensorFlow's inter-op threads: faster on CPUs"
                     " (docs/benchmarks.md); 1 runs every batch whole (GPU serving).", lower_bound=1)
flags.DEFINE_bool("overwrite", False, "Replace an existing --export_dir (atomically).")
flags.DEFINE_string("calibration_data", None, "--format=tflite: aligned faces to calibrate the int8 file on, a folder"
                    " of face images or prepared shards (their train split); default: the model's training data if"
                    " present, else the int8 file is dynamic-range (int8 weights, float activations).")
flags.DEFINE_integer("calibration_faces", 200, "--format=tflite: how many faces of --calibration_data calibrate the"
                     " int8 file.", lower_bound=1)
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    # Checked here, not by absl's mark_flags_as_required: that would bind every parse of the
    # process-wide flags (other commands' in the same process too) to this command's needs.
    if not FLAGS.export_dir:
        raise app.UsageError("--export_dir is required: the version folder to create, e.g. models/stacksr/1")
    if FLAGS.format == "tflite":
        export_tflite()
        return
    for name in ("calibration_data", "calibration_faces"):
        if FLAGS[name].present:
            raise app.UsageError(f"--{name} is for --format=tflite only (a SavedModel is not quantized)")
    if not os.path.basename(os.path.normpath(FLAGS.export_dir)).isdigit():
        print(f"note: TF Serving only loads integer version folders; {FLAGS.export_dir} is not one (see docs/serving.md)")
    from tf_stacksr.serving import export_lib  # TensorFlow loads here, after the flags are checked

    try:
        metadata = export_lib.export(FLAGS.model_dir, FLAGS.export_dir, all_stages=FLAGS.all_stages,
                                     gan_model=FLAGS.gan_model, alpha=FLAGS.alpha,
                                     flip_ensemble=FLAGS.flip_ensemble, overwrite=FLAGS.overwrite,
                                     max_batch=FLAGS.max_batch, batch_branches=FLAGS.batch_branches)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        raise SystemExit(f"export failed: {err}") from err
    print(json.dumps({"export_dir": FLAGS.export_dir, **{k: metadata[k] for k in
                      ("lr_size", "hr_size", "max_batch", "signatures", "checkpoint", "alpha")}}, indent=1))


def export_tflite():
    for name in ("all_stages", "max_batch", "batch_branches"):
        if FLAGS[name].present:
            raise app.UsageError(f"--{name} is for --format=saved_model only (a LiteRT file has one signature, and its"
                                 " caller sets the batch size)")
    from tf_stacksr.serving import litert_export  # TensorFlow loads here, after the flags are checked

    try:
        metadata = litert_export.export(FLAGS.model_dir, FLAGS.export_dir, gan_model=FLAGS.gan_model, alpha=FLAGS.alpha,
                                        flip_ensemble=FLAGS.flip_ensemble, calibration_data=FLAGS.calibration_data,
                                        calibration_faces=FLAGS.calibration_faces, overwrite=FLAGS.overwrite)
    except (ValueError, FileNotFoundError, FileExistsError, ImportError) as err:
        raise SystemExit(f"export failed: {err}") from err
    print(json.dumps({"export_dir": FLAGS.export_dir, **{k: metadata[k] for k in ("lr_size", "hr_size", "checkpoint",
                                                                                   "alpha", "files")}}, indent=1))


if __name__ == "__main__":
    startup.run(main, [("model", ["model_dir", "gan_model", "alpha", "flip_ensemble"]),
                       ("output", ["format", "export_dir", "all_stages", "max_batch", "batch_branches", "overwrite"]),
                       ("tflite", ["calibration_data", "calibration_faces"])])
