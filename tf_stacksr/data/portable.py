"""Training faces and pairs without TensorFlow, for training on the JAX or PyTorch backend.

The generator is plain Keras 3, so it also trains under Keras's JAX or PyTorch backend
(`tools/train_l1_keras.py`), e.g. on an accelerator host where those are installed and
TensorFlow is not. What that needs from TensorFlow is the data:

- `write_faces` / `read_faces`: a "faces file", one .npz holding prepared faces as JPEG bytes
  (a flat uint8 buffer plus offsets; JPEG because PNG of 256 px faces is ~8x bigger) and the
  resize operators below (`tools/faces_to_npz.py` writes it from prepared shards).
- `operators`: TF's resizes of `pairs.downscale` (antialiased bicubic) and `pairs.upscale`
  (bicubic) as matrices. Both are separable and linear before their clip, so per channel
  resize(x) = M @ x @ M.T, with M read off TF by resizing one-hot images.
- `Pairs`: `pairs.make_pairs` in NumPy with those matrices, equal to it to float rounding.

Only `operators` needs TensorFlow (it runs where the faces file is written); reading and
pairing need NumPy and OpenCV alone.
"""

from __future__ import annotations

import concurrent.futures
import json

import cv2
import numpy as np


def resize_matrix(src: int, dst: int, *, antialias: bool) -> np.ndarray:
    """M [dst, src] with tf.image.resize(x, [dst, dst], bicubic) == M @ x @ M.T per channel (no clip)."""
    import tensorflow as tf

    basis = tf.eye(src, dtype=tf.float32)[None, :, None, :]  # [1, src, 1, src]: channel j is row j one-hot
    return tf.image.resize(basis, [dst, 1], method="bicubic", antialias=antialias).numpy()[0, :, 0, :]


def operators(hr_sizes: list[int], scale: int, face_size: int) -> dict[str, np.ndarray]:
    """The matrices `Pairs` needs to train at each HR size from faces of `face_size` px.

    'down_{src}_{dst}' (antialiased: face -> HR when smaller, HR -> every stage below it) and
    'up_{lr}_{hr}' (LR -> the blurry input A).
    """
    ops = {}
    for hr in hr_sizes:
        if hr > face_size or hr % scale:
            raise ValueError(f"hr_size={hr}: expected a multiple of the scale {scale}, at most the faces' {face_size} px")
        lr = hr // scale
        stages = [lr * 2**k for k in range(scale.bit_length() - 1)]  # lr .. hr/2
        wanted = [(face_size, hr, True)] if hr != face_size else []
        wanted += [(hr, s, True) for s in stages] + [(lr, hr, False)]
        for src, dst, antialias in wanted:
            ops[f"{'down' if antialias else 'up'}_{src}_{dst}"] = resize_matrix(src, dst, antialias=antialias)
    return ops


def write_faces(path: str, jpegs: list[bytes], face_size: int, ops: dict[str, np.ndarray], sources: dict[str, int]) -> None:
    """One faces file: JPEG-encoded square faces of `face_size` px, the operators, where they came from."""
    offsets = np.cumsum([0] + [len(b) for b in jpegs]).astype(np.int64)
    np.savez(path, jpeg=np.frombuffer(b"".join(jpegs), np.uint8), offsets=offsets, face_size=np.int64(face_size),
             sources=json.dumps(sources), **ops)


def read_faces(path: str, threads: int = 16) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """All faces of a faces file as uint8 RGB [N, S, S, 3], and its operators (float32)."""
    with np.load(path) as data:
        buffer, offsets, size = data["jpeg"], data["offsets"], int(data["face_size"])
        ops = {k: data[k].astype(np.float32) for k in data.files if k.startswith(("down_", "up_"))}

    def decode(i: int) -> np.ndarray:
        image = cv2.imdecode(buffer[offsets[i]:offsets[i + 1]], cv2.IMREAD_COLOR)
        if image is None or image.shape != (size, size, 3):
            raise ValueError(f"{path}: face {i} is not a {size}x{size} colour JPEG")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        faces = list(pool.map(decode, range(len(offsets) - 1)))
    if not faces:
        raise ValueError(f"{path}: holds no faces")
    return np.stack(faces), ops


class Pairs:
    """`pairs.make_pairs` for uint8 faces: -> (input A, (LR target, ..., HR target)), float32 [-1, 1].

    Faces larger than the HR size are first downscaled as `shards.load_record` does.
    """

    def __init__(self, ops: dict[str, np.ndarray], face_size: int, stage_sizes: tuple[int, ...]):
        self.ops, self.face_size, self.sizes = ops, face_size, tuple(int(s) for s in stage_sizes)
        needed = ([f"down_{face_size}_{self.sizes[-1]}"] if face_size != self.sizes[-1] else [])
        needed += [f"down_{self.sizes[-1]}_{s}" for s in self.sizes[:-1]] + [f"up_{self.sizes[0]}_{self.sizes[-1]}"]
        missing = [k for k in needed if k not in ops]
        if missing:
            raise ValueError(f"no resize operators {missing} for {face_size} px faces and stages {self.sizes}:"
                             f" write the faces file with this HR size (tools/faces_to_npz.py --hr_sizes)")

    def _resize(self, x: np.ndarray, kind: str, dst: int) -> np.ndarray:
        m = self.ops[f"{kind}_{x.shape[1]}_{dst}"]
        return np.clip(np.einsum("ih,bhwc,jw->bijc", m, x, m, optimize=True), -1.0, 1.0)

    def __call__(self, faces: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        hr = faces.astype(np.float32) / 127.5 - 1.0
        hr_size = self.sizes[-1]
        if self.face_size != hr_size:
            hr = self._resize(hr, "down", hr_size)
        lr = self._resize(hr, "down", self.sizes[0])
        lr = np.round(np.clip((lr + 1.0) * 127.5, 0.0, 255.0)) / 127.5 - 1.0  # the uint8 LR photo
        targets = [lr] + [self._resize(hr, "down", s) for s in self.sizes[1:-1]] + [hr]
        return self._resize(lr, "up", hr_size).astype(np.float32), tuple(t.astype(np.float32) for t in targets)
