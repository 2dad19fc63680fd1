"""Is the super-resolved face still the same person? dlib's 128-d face descriptor says.

dlib's ResNet descriptor (`dlib_face_recognition_resnet_model_v1.dat`, 99.38% on LFW) maps a
face to a point where two photos of one person lie closer than 0.6 (its published threshold).
Protocol, identical for the ground truth and every method so that only the pixels differ:
1. every face image (64-256 px) is resized to 256x256 (bicubic), where the HOG face detector
   and the 5-landmark predictor work reliably;
2. the face box is detected on the GROUND TRUTH (largest face; if none, the whole image) and
   reused for the SR images of that face, which are pixel-aligned with it, so a method that
   smears a face is not also penalised by a failed detection;
3. the 5 landmarks are predicted on each image itself, and the descriptor is computed on
   dlib's standard aligned 150x150 chip.
Scores: mean SR-vs-ground-truth distance, the share below 0.6 ("same person"), and for
labelled sets a verification accuracy on balanced same/different-identity pairs of SR images.
"""

from __future__ import annotations

import os
from typing import Sequence

import cv2
import numpy as np

from tf_stacksr.data import align

SAME_PERSON_THRESHOLD = 0.6
WORK_SIZE = 256
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"


class FaceIdentity:
    """dlib face detector, 5-landmark predictor and 128-d descriptor network."""

    def __init__(self, models_dir: str | None = None):
        import dlib  # imported here: only identity scoring needs it

        self._dlib = dlib
        if models_dir is None:
            paths = [align.model_path(f) for f in (align.LANDMARKS_MODEL, DESCRIPTOR_FILE)]
        else:
            paths = [os.path.join(models_dir, f) for f in (align.LANDMARKS_MODEL, DESCRIPTOR_FILE)]
            for path in paths:
                if not os.path.isfile(path):
                    raise FileNotFoundError(f"{path}: dlib model file missing (expected in --models_dir)")
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(paths[0])
        self._descriptor = dlib.face_recognition_model_v1(paths[1])

    @staticmethod
    def _working_copy(image: np.ndarray) -> np.ndarray:
        image = np.ascontiguousarray(image, dtype=np.uint8)
        if image.shape[:2] == (WORK_SIZE, WORK_SIZE):
            return image
        return cv2.resize(image, (WORK_SIZE, WORK_SIZE), interpolation=cv2.INTER_CUBIC)

    def face_boxes(self, images: Sequence[np.ndarray]) -> tuple[list, int]:
        """Largest detected face per uint8 RGB image (in 256x256 coordinates); whole image where none is found.

        Returns the boxes and how many images fell back to the whole image.
        """
        boxes, missed = [], 0
        for image in images:
            found = self._detector(self._working_copy(image), 0)
            if len(found):
                boxes.append(max(found, key=lambda r: r.area()))
            else:
                boxes.append(self._dlib.rectangle(0, 0, WORK_SIZE - 1, WORK_SIZE - 1))
                missed += 1
        return boxes, missed

    def landmarks(self, image: np.ndarray, box) -> np.ndarray:
        """dlib's 5 landmarks [5, 2] of a uint8 RGB face, searched inside `box` (256x256 coordinates),
        in the image's own pixel coordinates."""
        shape = self._landmarks(self._working_copy(image), box)
        points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], np.float64)
        return (points + 0.5) * (np.array(image.shape[1::-1]) / WORK_SIZE) - 0.5

    def descriptors(self, images: Sequence[np.ndarray], boxes: Sequence) -> np.ndarray:
        """float64 [N, 128] descriptors of uint8 RGB faces, landmarks searched inside `boxes`."""
        if len(images) != len(boxes):
            raise ValueError(f"{len(images)} images but {len(boxes)} face boxes")
        out = np.empty((len(images), 128), np.float64)
        for k, (image, box) in enumerate(zip(images, boxes)):
            work = self._working_copy(image)
            out[k] = self._descriptor.compute_face_descriptor(work, self._landmarks(work, box))
        return out


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Euclidean distances of two [N, 128] descriptor arrays."""
    return np.linalg.norm(np.asarray(a) - np.asarray(b), axis=-1)


def verification_pairs(labels: Sequence, max_pairs: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced same/different-identity index pairs (i, j, same) from per-image identity labels.

    Up to `max_pairs` same-identity pairs (a seeded sample when there are more) and as many
    different-identity pairs drawn at random, so accuracy 0.5 is chance. Images whose label is
    None are left out. Empty arrays when no identity has two images.
    """
    rng = np.random.default_rng(seed)
    labelled = [(k, lab) for k, lab in enumerate(labels) if lab is not None]
    by_identity: dict = {}
    for k, lab in labelled:
        by_identity.setdefault(lab, []).append(k)
    same = np.array([(a, b) for members in by_identity.values() for i, a in enumerate(members) for b in members[i + 1:]],
                    dtype=np.int64).reshape(-1, 2)
    if len(same) == 0 or len(by_identity) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, bool)
    if len(same) > max_pairs:
        same = same[rng.choice(len(same), max_pairs, replace=False)]
    index = np.array([k for k, _ in labelled])
    identity = {k: lab for k, lab in labelled}
    different = []
    while len(different) < len(same):
        a, b = rng.choice(index, 2, replace=False)
        if identity[a] != identity[b]:
            different.append((a, b))
    pairs = np.concatenate([same, np.array(different, np.int64)])
    is_same = np.concatenate([np.ones(len(same), bool), np.zeros(len(different), bool)])
    return pairs[:, 0], pairs[:, 1], is_same


def verification_accuracy(descriptors: np.ndarray, i: np.ndarray, j: np.ndarray, same: np.ndarray) -> float:
    """Share of pairs classified correctly by distance < 0.6 (NaN when there are no pairs)."""
    if len(same) == 0:
        return float("nan")
    predicted_same = distances(descriptors[i], descriptors[j]) < SAME_PERSON_THRESHOLD
    return float(np.mean(predicted_same == same))
