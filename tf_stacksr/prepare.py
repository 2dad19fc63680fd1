"""Prepare aligned face shards: `python -m tf_stacksr.prepare --input=DIR|tfds:NAME --output=DIR --size=128`.

Thin entry: flags -> `PrepareOptions` -> `tf_stacksr.data.prepare.prepare`. Re-run the same
command after an interruption to resume. See docs/data.md.
"""

from __future__ import annotations

import dataclasses
import json

from absl import app, flags

from tf_stacksr.data import prepare as prepare_lib

_HELP = {
    "size": "Side of the aligned square crop in pixels (the HR size, e.g. 64, 128, 256).",
    "face_scale": "Fraction of the crop side the face box spans (paper: about 0.7).",
    "detector": "Face detector: hog (fast) or cnn (dlib mmod; slower, finds more faces).",
    "upsample": "dlib upsampling passes before detection; -1 = 1 for photos up to 800 px, else 0.",
    "all_faces": "Write every face of a photo instead of only the largest.",
    "min_side": "Skip photos whose short side is below this (too_small).",
    "max_side": "Downscale photos whose long side exceeds this before detection (downscaled_large).",
    "max_pixels": "Skip photos with more pixels than this without decoding them (too_large).",
    "max_upscale": "Skip faces that would need more than this enlargement to fill the crop (face_too_small).",
    "image_format": "Encoding of the faces in the shards: png (lossless) or jpeg (quality 95).",
    "shard_size": "Source photos per shard (the unit of resume).",
    "split": "auto | folder (train/ test/ subfolders) | identity (no person in two splits) | random | none.",
    "test_fraction": "Fraction of photos in the test split for identity/random splits.",
    "seed": "Seed of the identity/random split.",
    "labels": "auto | file (identity.txt-style) | folder (LFW: person folders) | none.",
    "identity_file": "'<file> <identity>' lines; default: identity.txt or identity_CelebA.txt in --input.",
    "tfds_data_dir": "TFDS data_dir for --input=tfds:NAME (the dataset must already be prepared there).",
    "dump_png": "Also write every aligned face as PNG under OUTPUT/png/<split>/ for inspection.",
    "workers": "Worker processes; 0 = every core.",
}

flags.DEFINE_string("input", None, "Folder of photos (recursive) or tfds:celeb_a / tfds:lfw.")
flags.DEFINE_string("output", None, "Folder for the shards and manifest.json (created; reused to resume).")
for _field in dataclasses.fields(prepare_lib.PrepareOptions):
    _default = _field.default
    if isinstance(_default, bool):
        flags.DEFINE_bool(_field.name, _default, _HELP[_field.name])
    elif isinstance(_default, int):
        flags.DEFINE_integer(_field.name, _default, _HELP[_field.name])
    elif isinstance(_default, float):
        flags.DEFINE_float(_field.name, _default, _HELP[_field.name])
    else:
        flags.DEFINE_string(_field.name, _default, _HELP[_field.name])
flags.mark_flags_as_required(["input", "output"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    options = prepare_lib.PrepareOptions(**{f.name: FLAGS[f.name].value for f in dataclasses.fields(prepare_lib.PrepareOptions)})
    manifest = prepare_lib.prepare(FLAGS.input, FLAGS.output, options)
    print(json.dumps({"counts": manifest["counts"], "splits": {k: {"examples": v["examples"], "identities": v["identities"]}
                                                              for k, v in manifest["splits"].items()},
                      "identities_in_several_splits": manifest["identities_in_several_splits"]}, indent=1))


if __name__ == "__main__":
    app.run(main)
