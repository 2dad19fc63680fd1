"""Prepare aligned face shards: `python -m tf_stacksr.prepare --input=DIR|tfds:NAME --output=DIR --size=128`.

Thin entry: flags -> `PrepareOptions` -> `tf_stacksr.data.prepare.prepare`. Re-run the same
command after an interruption to resume. See docs/data.md.
"""

from __future__ import annotations

from tf_stacksr import startup  # first: hides TensorFlow's start-up lines

import json

from absl import app, flags

from tf_stacksr import config as config_lib
from tf_stacksr.data import prepare as prepare_lib

flags.DEFINE_string("input", None, "Required: a folder of photos (recursive) or tfds:celeb_a / tfds:lfw.")
flags.DEFINE_string("output", None, "Required: the folder for the shards and manifest.json (created; reused to resume).")
config_lib.define_flags_for(prepare_lib.PrepareOptions)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    # Checked here, not by absl's mark_flags_as_required (see export.py).
    for name in ("input", "output"):
        if not FLAGS[name].value:
            raise app.UsageError(f"--{name} is required: {FLAGS[name].help.removeprefix('Required: ')}")
    options = config_lib.options_from_flags(prepare_lib.PrepareOptions)
    manifest = prepare_lib.prepare(FLAGS.input, FLAGS.output, options)
    print(json.dumps({"counts": manifest["counts"], "splits": {k: {"examples": v["examples"], "identities": v["identities"]}
                                                              for k, v in manifest["splits"].items()},
                      "identities_in_several_splits": manifest["identities_in_several_splits"]}, indent=1))


if __name__ == "__main__":
    startup.run(main, [
        ("input and output", ["input", "output", "workers"]),
        ("faces: detection, alignment, skips", ["size", "face_scale", "detector", "upsample", "all_faces", "min_side",
                                                "max_side", "max_pixels", "max_file_mb", "max_upscale"]),
        ("shards, splits and labels", ["image_format", "shard_size", "split", "test_fraction", "seed", "labels",
                                       "identity_file", "tfds_data_dir", "dump_png"]),
    ])
