"""Pack prepared faces into a faces file that a trainer without TensorFlow reads.

  python tools/faces_to_npz.py --data=data/ffhq256,data/celeba256 --output=data/faces256.npz --hr_sizes=256

Writes the given split of each prepared folder (`python -m tf_stacksr.prepare`) as JPEG, with
the resize operators for training at each --hr_sizes (`tf_stacksr.data.portable`), for
`tools/train_l1_keras.py`, which trains with JAX or PyTorch and needs no TensorFlow.
"""

from __future__ import annotations

import os

from absl import app, flags

flags.DEFINE_list("data", None, "Prepared shard folders (python -m tf_stacksr.prepare) whose faces to pack.")
flags.DEFINE_string("split", "train", "Which split of each folder.")
flags.DEFINE_string("output", None, "The .npz to write.")
flags.DEFINE_list("hr_sizes", ["256"], "HR sizes the trainer may use (each at most the faces' size).")
flags.DEFINE_integer("scale", 4, "Super-resolution factor the operators are made for.")
flags.DEFINE_integer("quality", 95, "JPEG quality (4:4:4, no chroma subsampling).")
flags.DEFINE_integer("limit", 0, "At most this many faces per folder (0: all).")
flags.mark_flags_as_required(["data", "output"])
FLAGS = flags.FLAGS


def encoded_faces(folder: str, split: str, limit: int) -> tuple[list[bytes], int]:
    """JPEG bytes of the faces of one split, and their size in px."""
    import tensorflow as tf

    from tf_stacksr.data import records, shards

    files, _ = shards.split_files(folder, split)
    jpegs, sizes = [], set()
    for serialized in tf.data.TFRecordDataset(files):
        pixels = records.decode_face(records.parse_example(serialized)["image"])
        sizes.add(int(pixels.shape[0]))
        jpegs.append(tf.io.encode_jpeg(pixels, quality=FLAGS.quality, chroma_downsampling=False).numpy())
        if limit and len(jpegs) == limit:
            break
    if len(sizes) != 1:
        raise ValueError(f"--data={folder!r}: faces of sizes {sorted(sizes)}; expected one size per folder")
    return jpegs, sizes.pop()


def main(argv):
    del argv
    from tf_stacksr.data import portable

    jpegs, counts, sizes = [], {}, set()
    for folder in FLAGS.data:
        faces, size = encoded_faces(folder, FLAGS.split, FLAGS.limit)
        jpegs += faces
        counts[folder] = len(faces)
        sizes.add(size)
    if len(sizes) != 1:
        raise ValueError(f"--data: the folders hold faces of sizes {sorted(sizes)}; expected one size")
    face_size = sizes.pop()
    ops = portable.operators([int(s) for s in FLAGS.hr_sizes], FLAGS.scale, face_size)
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    portable.write_faces(FLAGS.output, jpegs, face_size, ops, counts)
    print(f"{FLAGS.output}: {len(jpegs)} faces of {face_size} px {counts}, "
          f"{os.path.getsize(FLAGS.output) / 2**20:.1f} MiB, operators {sorted(ops)}")


if __name__ == "__main__":
    app.run(main)
