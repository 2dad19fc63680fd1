"""Enhance the faces in real photos: `tf-stacksr enhance -i PHOTO_OR_DIR -o OUT_DIR [--model=PATH]`.

Also `python -m tf_stacksr.enhance ...`. Thin entry: arguments -> `EnhanceOptions`, the models
(by default the shipped ones, each face routed to the one whose input fits its size:
`apps.routing`; else the one --model names: a training model_dir, packed model, exported
SavedModel or shipped name, optionally blended with a GAN model by --alpha) ->
`apps.photo_files.enhance_files`.
Writes OUT_DIR/<input name> in the input's own format (alpha kept; --format=png|jpeg, or a format
that cannot hold the photo, appends .png/.jpg: photo.jpg.png), and with --save-faces the
super-resolved aligned faces as <input name>.face<k>.png. The names are in `apps.photo_files`.
"""

from __future__ import annotations

import argparse
import os
import sys

from tf_stacksr import startup  # noqa: F401  first: hides TensorFlow's start-up lines (it loads later)
from tf_stacksr.apps import routing  # no TensorFlow: the zoo's list of models


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tf-stacksr enhance", description=__doc__.split("\n\n")[0])
    parser.add_argument("-i", "--input", required=True, help="a photo, or a folder of photos (searched recursively)")
    parser.add_argument("-o", "--output", required=True, help="output folder (created); names mirror the input's")
    parser.add_argument("--model", help="run this one model on every face, whatever its size (faces larger than its"
                                         " LR input are shrunk to it): training model_dir, packed model, exported"
                                         " SavedModel or shipped model name. Default: route each face by its size to"
                                         " the smallest shipped model input that holds it without shrinking it:"
                                         " each model's own (16, 32 or 64 px) or one it is also built for (the"
                                         " clean 32 px model up to 48 px; the 64 px models up to 128 px, from"
                                         " --upscale 2); larger faces stay bicubic")
    parser.add_argument("--alpha", type=float, help="blend in the GAN model by this weight in [0, 1]: 0 = most"
                                                    " faithful, 1 = sharpest (network interpolation); without"
                                                    " --model, the shipped 16->64 models are blended and run on"
                                                    " every face (no routing)")
    parser.add_argument("--gan-model", help="the GAN model --alpha blends in (default: the shipped GAN model)")
    parser.add_argument("--flip-ensemble", choices=("on", "off"), help="average each face's output with its"
                        " mirror image's (2x compute, slightly sharper and more faithful); default: the model's own"
                        " setting (on for the shipped PSNR model)")
    parser.add_argument("--degradation", choices=routing.DEGRADATIONS, default="auto",
                        help="without --model, which shipped models the faces are routed to: auto (default) reads"
                             " each photo's JPEG quality from its pixels and sends the faces of compressed photos to"
                             " the models trained for real photos, each from the quality where it beats the clean one"
                             " (docs/serving.md), the others to the clean ones; realistic: always those trained for"
                             " real photos (blurred, noisy, JPEG'd inputs; the clean model where a face size has none);"
                             " bicubic: only the clean ones (the paper's benchmark inputs)")
    parser.add_argument("--upscale", type=float, help="whole-photo enlargement (default: the model's scale, 4 for"
                                                      " the shipped models)")
    parser.add_argument("--aligned", action="store_true", help="inputs are aligned face crops, not photos")
    parser.add_argument("--save-faces", action="store_true", help="also write each super-resolved aligned face")
    parser.add_argument("--only-largest", action="store_true", help="enhance only the largest face of each photo")
    parser.add_argument("--face-scale", type=float, default=0.7,
                        help="face's fraction of the aligned crop; must match the training data (default 0.7)")
    parser.add_argument("--detector", choices=("yunet", "hog", "cnn"), default="yunet",
                        help="face detector: yunet (default; faces from ~10 px in photos of any size, with dlib's"
                             " landmarks), dlib's hog (frontal faces; misses about half of those under 30 px) or"
                             " dlib's cnn (also turned faces; photos up to 900 px are first enlarged 2-4x, as dlib"
                             " advises; about 100x slower than hog)")
    parser.add_argument("--max-side", type=int, default=4096, help="downscale larger inputs to this long side first")
    parser.add_argument("--detect-side", type=int, default=1600,
                        help="--detector=hog|cnn search a copy of the photo at most this long (their time and memory"
                             " grow with the pixel count; raise it to find small faces in big photos); yunet searches"
                             " the whole photo at every scale")
    parser.add_argument("--max-output-side", type=int, default=8192,
                        help="lower the upscale of photos whose output would exceed this long side")
    parser.add_argument("--format", dest="output_format", choices=("same", "png", "jpeg"), default="same",
                        help="output format: same (default) keeps the input's (JPEG at quality 95 without chroma"
                             " subsampling, PNG stays PNG; GIF, and alpha in JPEG or BMP, become PNG), or png or jpeg"
                             " for every output (appended to the name: photo.jpg.png)")
    parser.add_argument("--max-file-mb", type=int, default=256,
                        help="skip input files larger than this many MB without reading them (default 256)")
    parser.add_argument("--overwrite", action="store_true", help="redo inputs whose output already exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def load_upscaler(model: str | None, gan_model: str | None, alpha: float | None, flip_ensemble: bool | None = None,
                  degradation: str = "auto"):
    """The upscaler to run (the shipped models trained for `degradation`, routed by face size, when
    no model, GAN model or alpha is named); SystemExit with a clear message when they cannot be loaded."""
    try:
        if model is None and gan_model is None and alpha is None:
            return routing.Router(flip_ensemble=flip_ensemble, degradation=degradation)
        from tf_stacksr import models  # TensorFlow loads here, after the cheap checks

        return models.load(model, gan_model=gan_model, alpha=alpha, flip_ensemble=flip_ensemble)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"enhance: {err}") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not os.path.exists(args.input):
        raise SystemExit(f"enhance: --input={args.input}: no such file or folder")
    from tf_stacksr.apps import enhance_lib, photo_files

    try:
        options = enhance_lib.EnhanceOptions(
            upscale=args.upscale, aligned=args.aligned, only_largest=args.only_largest, save_faces=args.save_faces,
            face_scale=args.face_scale, detector=args.detector, max_side=args.max_side, detect_side=args.detect_side,
            max_output_side=args.max_output_side, overwrite=args.overwrite, max_file_mb=args.max_file_mb,
            output_format=args.output_format)
        photo_files.check_folders(args.input, args.output)  # before the model loads
    except ValueError as err:
        raise SystemExit(f"enhance: {err}") from None
    flip = None if args.flip_ensemble is None else args.flip_ensemble == "on"
    upscaler = load_upscaler(args.model, args.gan_model, args.alpha, flip, args.degradation)
    try:
        summary = photo_files.enhance_files(args.input, args.output, upscaler, options, progress=not args.quiet)
    except ValueError as err:
        raise SystemExit(f"enhance: {err}") from None
    print(f"enhance: {summary.line()} -> {args.output}")
    return 0 if summary.written or summary.existing or not summary.files else 1


if __name__ == "__main__":
    sys.exit(main())
