"""Evaluate super-resolution methods on faces, or compute FID between two image sets.

  python -m tf_stacksr.evaluate --data=DIR --scale=4 --hr_size=64 \\
      --methods=bicubic,runs/x4,exported/x4 --output_dir=eval/x4
      -> results.md, results.json, comparison.png (see tf_stacksr.evaluation.eval_lib)
  python -m tf_stacksr.evaluate --data=PREPARED --framing=ours,dlib_chip_0.25,ffhq --methods=...
      the same faces cropped again from their photos in each framing (one row per framing and
      method, with each method's gains over bicubic; tf_stacksr.data.framing)
  python -m tf_stacksr.evaluate fid DIR_A DIR_B          prints FID (DIR or stats .npz)
  python -m tf_stacksr.evaluate fid --save_stats DIR OUT.npz   saves DIR's FID statistics
  python -m tf_stacksr.evaluate photos --input=DIR --factors=2,4,8 --jpeg=0,50 \\
      --methods=bicubic,enhance,realesrgan --output_dir=OUT
      whole photos shrunk by each factor (and JPEG-compressed), upscaled back by each method,
      scored on their faces (tf_stacksr.evaluation.photo_bench; docs/photos.md)
"""

from __future__ import annotations

from tf_stacksr import startup  # first: hides TensorFlow's start-up lines

import dataclasses
import shlex
import sys

from absl import app, flags

from tf_stacksr import config
from tf_stacksr.evaluation import photo_methods

FLAGS = flags.FLAGS

# --scale and --hr_size mean what they mean in training: declared from the same Config fields,
# and shared (not redeclared) when the training flags are already defined in this process.
for _field in dataclasses.fields(config.Config):
    if _field.name in ("scale", "hr_size") and _field.name not in FLAGS:
        flags.DEFINE_integer(_field.name, _field.default, _field.metadata["help"])
flags.DEFINE_string("data", "", "Faces: a folder of images (searched recursively; centre-cropped like training) or of prepared TFRecord shards (manifest.json).")
flags.DEFINE_string("eval_split", "test", "Split of prepared shards to evaluate (ignored for image folders; named apart from prepare's --split).")
flags.DEFINE_list("methods", ["bicubic"], "Comma-separated methods: 'bicubic' and/or models (training model_dir, packed model, SavedModel or shipped model name), each optionally LABEL=MODEL to name its row. Bicubic is always included. photos mode: "
                  f"{', '.join(photo_methods.REGISTRY)} (default {','.join(photo_methods.DEFAULT_METHODS)}; enhance_X: "
                  "enhance --degradation=X).")
flags.DEFINE_string("output_dir", "eval", "Where results.md, results.json and comparison.png are written.")
flags.DEFINE_integer("eval_batch_size", 32, "Images per batch (named apart from training's --batch_size).")
flags.DEFINE_integer("limit", None, "Evaluate only the first N faces (photos mode: photos) in sorted order.")
flags.DEFINE_integer("skip", 0, "Leave out the first N faces before --limit applies: e.g. choose a setting on faces the reported rows (--limit=N) never use.")
flags.DEFINE_integer("figure_faces", 6, "Faces (rows) in comparison.png.")
flags.DEFINE_bool("identity", True, "Score identity preservation with dlib's face descriptor and SFace.")
flags.DEFINE_list("framing", [], "Score every method on the faces of prepared --data cropped again from their photos in each "
                  "of these framings (tf_stacksr.data.framing; docs/serving.md): ours, dlib_chip_<padding> "
                  "(dlib.get_face_chip's, e.g. dlib_chip_0.25), ffhq. Empty: the faces as --data holds them.")
# photos mode. --input is also prepare's flag: either module may define it first.
flags.DEFINE_string("input", None, "photos mode: folder of photos (searched recursively).", allow_override=True)
flags.DEFINE_list("factors", ["2", "4", "8"], "photos mode: shrink factors, each an integer in [2, 16].")
flags.DEFINE_list("jpeg", ["0", "50"], "photos mode: JPEG qualities of the small input; 0 = no JPEG.")
flags.DEFINE_integer("figure_photos", 3, "photos mode: photos (rows) in comparison.png.")
flags.DEFINE_integer("figure_factor", 4, "photos mode: the factor comparison.png shows (at the first --jpeg quality).")
flags.DEFINE_bool("save_stats", False, "fid mode: save the FID statistics of the first path to the second (.npz) instead of comparing.")


def _check_fid_weights() -> None:
    """Stop now, not after the first faces are scored, when the FID network's weights cannot be had."""
    from tf_stacksr.metrics import inception  # TensorFlow loads here

    try:
        inception.check_weights()
    except FileNotFoundError as err:
        raise SystemExit(f"evaluate: {err}") from None


def _check_framings() -> None:
    """Stop now, before anything loads, on a framing name `data.framing` does not know."""
    from tf_stacksr.data import framing

    try:
        for name in FLAGS.framing:
            framing.parse(name)
    except ValueError as err:
        raise app.UsageError(str(err)) from None


def _fid_command(args: list[str]) -> None:
    from tf_stacksr.evaluation import eval_lib

    if FLAGS.save_stats:
        stats = eval_lib.save_folder_stats(args[0], args[1], FLAGS.eval_batch_size)
        print(f"saved FID statistics of {args[0]} (n={stats.n}) to {args[1]}")
        return
    value, n_a, n_b = eval_lib.fid_between(args[0], args[1], FLAGS.eval_batch_size)
    print(f"FID: {value:.4f}  (n={n_a} vs n={n_b})")


def _int_list(name: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in getattr(FLAGS, name))
    except ValueError:
        raise app.UsageError(f"--{name}={','.join(getattr(FLAGS, name))}: expected comma-separated integers") from None


def _photos_command(args: list[str]) -> None:
    from tf_stacksr.evaluation import photo_bench, photo_report

    if args:
        raise app.UsageError(f"photos mode: unexpected arguments {args}; the photos folder is --input=DIR")
    if not FLAGS.input:
        raise app.UsageError("photos mode: --input is required: a folder of photos")
    methods = tuple(FLAGS.methods) if FLAGS["methods"].present else photo_methods.DEFAULT_METHODS
    try:
        opts = photo_bench.PhotoBenchOptions(
            input=FLAGS.input, factors=_int_list("factors"), jpeg=_int_list("jpeg"), methods=methods,
            output_dir=FLAGS.output_dir, limit=FLAGS.limit, figure_photos=FLAGS.figure_photos,
            figure_factor=FLAGS.figure_factor, identity=FLAGS.identity,
            command="python -m tf_stacksr.evaluate " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    except ValueError as err:
        raise app.UsageError(str(err)) from None
    print(photo_report.markdown(photo_bench.run(opts)))


def main(argv: list[str]) -> None:
    args = argv[1:]
    mode = args[0] if args and args[0] in ("fid", "photos") else None
    if args and mode is None:
        raise app.UsageError(f"unexpected arguments {args}; did you mean the 'fid' or 'photos' command?")
    if mode == "fid" and len(args) != 3:
        raise app.UsageError("fid mode: expected two paths: DIR_A DIR_B (folders or .npz), "
                             "or --save_stats DIR OUT.npz")
    if mode is None and not FLAGS.data:
        raise app.UsageError("--data is required: a folder of face images or of prepared shards")
    _check_framings()
    _check_fid_weights()
    import tensorflow as tf

    # Reference FID features are float32: keep TF32 (on by default on Ampere+ GPUs) out of the convolutions.
    tf.config.experimental.enable_tensor_float_32_execution(False)
    if mode == "fid":
        _fid_command(args[1:])
        return
    if mode == "photos":
        _photos_command(args[1:])
        return
    from tf_stacksr.evaluation import eval_lib, eval_report

    opts = eval_lib.EvalOptions(
        data=FLAGS.data, scale=FLAGS.scale, hr_size=FLAGS.hr_size, methods=tuple(FLAGS.methods),
        output_dir=FLAGS.output_dir, batch_size=FLAGS.eval_batch_size, limit=FLAGS.limit, skip=FLAGS.skip,
        split=FLAGS.eval_split, framings=tuple(FLAGS.framing),
        figure_faces=FLAGS.figure_faces, identity=FLAGS.identity,
        command="python -m tf_stacksr.evaluate " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    print(eval_report.markdown(eval_lib.evaluate(opts)))


if __name__ == "__main__":
    startup.run(main, [
        ("faces", ["data", "eval_split", "hr_size", "scale", "limit", "skip", "framing"]),
        ("methods and scores", ["methods", "identity", "eval_batch_size"]),
        ("output", ["output_dir", "figure_faces"]),
        ("fid mode (evaluate fid DIR_A DIR_B)", ["save_stats"]),
        ("photos mode (evaluate photos --input=DIR)", ["input", "factors", "jpeg", "figure_photos", "figure_factor"]),
    ])
