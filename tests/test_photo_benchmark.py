"""`evaluate photos`: the whole-photo benchmark. Its scores on methods whose answer is known (the
original photo back: perfect; a flat grey photo: hopeless), SFace identity on real faces, the
enhance adapter, and one end-to-end run on the LFW fixtures (slow: Inception, dlib, SFace)."""

import json
import math
import os

import cv2
import numpy as np
import pytest
from absl import app, flags
from conftest import FIXTURES

from tf_stacksr.evaluation import photo_bench, photo_inputs, photo_methods, photo_report
from tf_stacksr.metrics import sface

LFW = FIXTURES / "lfw"
BILL_1, BILL_2 = LFW / "Bill_Gates" / "Bill_Gates_0001.jpg", LFW / "Bill_Gates" / "Bill_Gates_0002.jpg"
FIDEL_1, FIDEL_2 = LFW / "Fidel_Castro" / "Fidel_Castro_0001.jpg", LFW / "Fidel_Castro" / "Fidel_Castro_0002.jpg"


@pytest.fixture(scope="module")
def judges():
    return photo_bench._Judges(identity_scores=True)


def reference(path, factors=(4,)):
    return photo_inputs.reference_photo(photo_inputs.read_photo(str(path)), factors)


def original_back(references):
    """A method factory whose method returns the original of whichever small input it gets."""

    def factory(factor):
        by_input = {photo_inputs.shrink(r, factor).tobytes(): r for r in references}
        return lambda small: by_input[small.tobytes()].copy()

    return factory


def grey(factor):
    return lambda small: np.full((small.shape[0] * factor, small.shape[1] * factor, 3), 128, np.uint8)


def zero_features(images):
    return np.zeros((len(images), 2048))


# ---- identity -----------------------------------------------------------------------------
def sface_embedding(path, judges):
    photo = reference(path)
    faces = judges.yunet(photo)
    assert faces, f"YuNet found no face in {path}"
    return judges.sface(sface.crop(photo, sface.arcface_matrix(faces[0].points))[None])[0]


def test_sface_same_face_is_one_different_people_below_threshold(judges):
    bill, bill_again, fidel = (sface_embedding(p, judges) for p in (BILL_1, BILL_1, FIDEL_1))
    assert sface.cosine(bill[None], bill_again[None])[0] == pytest.approx(1.0, abs=1e-5)
    assert sface.cosine(bill[None], fidel[None])[0] < sface.SAME_PERSON_COSINE
    assert sface.cosine(sface_embedding(FIDEL_2, judges)[None], sface_embedding(BILL_2, judges)[None])[0] \
        < sface.SAME_PERSON_COSINE


def test_sface_same_person_in_two_photos_scores_above_threshold(judges):
    bill, bill_2 = sface_embedding(BILL_1, judges), sface_embedding(BILL_2, judges)
    assert sface.cosine(bill[None], bill_2[None])[0] >= sface.SAME_PERSON_COSINE


def test_dlib_fallback_frame_puts_the_eyes_on_the_template(detected_face):
    photo, face = detected_face(str(BILL_1))
    matrix = sface.arcface_matrix_from_dlib(face.landmarks)
    from tf_stacksr.data import align

    right_of_image, left_of_image = align.eye_centres(face.landmarks)
    mapped = align.transform_points(matrix, np.stack([left_of_image, right_of_image]))
    np.testing.assert_allclose(mapped, sface.ARCFACE_TEMPLATE[:2], atol=0.6)


# ---- scores of known answers ---------------------------------------------------------------
def score(method, path, judges, factor=4):
    ref = reference(path)
    refs = judges.reference(ref, 0.2)
    assert refs, f"no face found in {path}"
    scores = photo_bench._MethodScores("m", zero_features)
    out, found = photo_bench._as_output("m", method(photo_inputs.shrink(ref, factor)), ref.shape)
    scores.add_photo(out, ref, refs, judges, 0.0, found)
    return scores.summary(None)


def test_the_original_back_scores_perfectly(judges):
    row = score(original_back([reference(BILL_1)])(4), BILL_1, judges)
    assert math.isinf(row["psnr_y"]) and row["ssim_y"] == pytest.approx(1.0)
    assert row["sface_cosine"] == pytest.approx(1.0, abs=1e-4) and row["sface_same_person_rate"] == 1.0
    assert row["dlib_distance"] == pytest.approx(0.0, abs=1e-6)
    assert row["recall"] is None  # a plain array says nothing about faces found


def test_a_flat_grey_photo_scores_low_and_bicubic_in_between(judges):
    flat, bicubic = score(grey(4), FIDEL_1, judges), score(photo_methods.bicubic(4), FIDEL_1, judges)
    assert flat["psnr_y"] < 20 and flat["psnr_y"] < bicubic["psnr_y"] - 10 and flat["ssim_y"] < bicubic["ssim_y"] - 0.15
    assert flat["sface_cosine"] < sface.SAME_PERSON_COSINE and flat["sface_same_person_rate"] == 0.0
    assert 25 < bicubic["psnr_y"] < 45 and bicubic["sface_cosine"] > flat["sface_cosine"] + 0.3


# ---- pieces --------------------------------------------------------------------------------
def test_reference_is_cropped_to_every_factor_and_shrinks_exactly():
    photo = np.zeros((250, 203, 3), np.uint8)
    ref = photo_inputs.reference_photo(photo, (2, 4, 8))
    assert ref.shape == (248, 200, 3)
    assert photo_inputs.shrink(ref, 8).shape == (31, 25, 3)
    assert photo_inputs.reference_photo(photo, (3,)).shape == (249, 201, 3)


def test_jpeg_zero_is_no_jpeg_and_low_quality_changes_pixels():
    photo = reference(BILL_1)
    assert photo_inputs.jpeg(photo, 0) is photo
    compressed = photo_inputs.jpeg(photo, 10)
    assert compressed.shape == photo.shape and np.abs(compressed.astype(int) - photo).mean() > 1


def test_paired_difference_is_the_mean_and_standard_error_of_face_by_face_deltas():
    a, b = [30.0, 31.0, 33.0, float("inf")], [29.0, 31.5, 31.0, 35.0]  # the last face: a returned the original
    d = photo_bench.paired_difference(a, b)
    deltas = np.array([1.0, -0.5, 2.0])
    assert d["n"] == 3 and d["mean"] == pytest.approx(deltas.mean())
    assert d["se"] == pytest.approx(np.sqrt(((deltas - deltas.mean()) ** 2).sum() / 2 / 3))  # sample std / sqrt(n)
    assert photo_bench.paired_difference([1.0], [0.0]) is None and photo_bench.paired_difference([1.0, 2.0], [0.0]) is None


def test_enlarged_box_grows_and_stays_inside():
    assert photo_bench.enlarged_box((10, 20, 60, 70), 0.2, (100, 100, 3)) == (0, 10, 71, 81)
    assert photo_bench.enlarged_box((80, 80, 99, 99), 0.2, (100, 100, 3)) == (76, 76, 100, 100)


def test_recall_counts_each_reference_face_once():
    refs = [photo_bench.RefFace(None, (0, 0, 50, 50), None, "dlib", None),
            photo_bench.RefFace(None, (60, 0, 110, 50), None, "dlib", None)]
    inside_first = np.full((5, 2), 25.0)
    assert photo_bench.count_recalled(refs, []) == 0
    assert photo_bench.count_recalled(refs, [inside_first, inside_first]) == 1
    assert photo_bench.count_recalled(refs, [inside_first, inside_first + (60, 0)]) == 2


def test_a_method_of_the_wrong_size_is_named():
    with pytest.raises(ValueError, match="'half'.*expected uint8"):
        photo_bench._as_output("half", np.zeros((10, 10, 3), np.uint8), (20, 20, 3))


def test_unknown_methods_fail_and_missing_peers_are_skipped_with_a_note(monkeypatch):
    with pytest.raises(ValueError, match="unknown method 'sharpen'"):
        photo_bench._open_methods(photo_bench.PhotoBenchOptions(input=str(LFW), methods=("sharpen",)), None)
    opts = photo_bench.PhotoBenchOptions(input=str(LFW), methods=("bicubic", "realesrgan"))
    monkeypatch.setattr(photo_methods, "unavailable",
                        lambda name: "package ncnn is not installed" if name == "realesrgan" else None)
    names, notes = photo_bench._open_methods(opts, None)
    assert names == ["bicubic"] and notes == ["realesrgan skipped: package ncnn is not installed"]


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="--factors"):
        photo_bench.PhotoBenchOptions(input="x", factors=(1,))
    with pytest.raises(ValueError, match="--jpeg"):
        photo_bench.PhotoBenchOptions(input="x", jpeg=(101,))


def test_the_enhance_adapter_returns_the_photo_and_the_faces_it_found():
    from test_enhance import BicubicUpscaler

    photo = photo_inputs.shrink(reference(BILL_1, (2,)), 2)
    out = photo_methods.run_enhance(photo, 2, BicubicUpscaler(16, 64))
    assert isinstance(out, photo_methods.Upscaled) and out.image.shape == (250, 250, 3)
    assert out.image.dtype == np.uint8 and len(out.face_points) == 1 and out.face_points[0].shape == (5, 2)
    assert 60 < out.face_points[0][:, 0].mean() < 190  # the face is in the middle of the photo, in output pixels


@pytest.mark.parametrize("name, degradation", [("enhance", "auto"), ("enhance_realistic", "realistic"),
                                               ("enhance_bicubic", "bicubic")])
def test_enhance_methods_route_with_their_degradation(name, degradation, monkeypatch):
    from tf_stacksr.apps import enhance_lib, routing

    made = []
    monkeypatch.setattr(routing, "Router", lambda degradation: made.append(degradation) or f"router {degradation}")
    monkeypatch.setattr(enhance_lib, "make_aligner", lambda detector: "aligner")
    photo_methods._router.cache_clear()
    try:
        method = photo_methods.build(name, 3)
    finally:
        photo_methods._router.cache_clear()  # no fake router left for later tests
    assert made == [degradation] and method.keywords == {"factor": 3, "upscaler": f"router {degradation}",
                                                         "aligner": "aligner"}


def test_photos_command_needs_an_input():
    from tf_stacksr import evaluate

    argv = flags.FLAGS(["evaluate", "photos"])
    try:
        with pytest.raises(app.UsageError, match="--input is required"):
            evaluate.main(argv)
    finally:
        flags.FLAGS.unparse_flags()


@pytest.mark.slow
@pytest.mark.skipif(photo_methods.unavailable("realesrgan") is not None, reason="the [peers] extra is not installed")
def test_realesrgan_peer_upscales_any_factor_in_tiles(monkeypatch):
    small = cv2.resize(reference(BILL_1), (20, 20), interpolation=cv2.INTER_AREA)
    monkeypatch.setattr(photo_methods.RealEsrgan, "TILE", 12)  # 4 tiles
    out = photo_methods.build("realesrgan", 2)(small)
    assert out.shape == (40, 40, 3) and out.dtype == np.uint8
    bicubic = photo_methods.bicubic(2)(small).astype(float)
    assert 10 * np.log10(255**2 / np.mean((out - bicubic) ** 2)) > 20


# ---- end to end ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("photo_bench")
    photos = sorted(LFW.glob("*/*.jpg"))
    factories = {"original": original_back([reference(p) for p in photos]), "grey": grey}
    opts = photo_bench.PhotoBenchOptions(input=str(LFW), factors=(4,), jpeg=(0,),
                                         methods=("bicubic", "enhance", "original", "grey"), output_dir=str(out),
                                         figure_photos=2, command="evaluate photos (test)")
    return out, photo_bench.run(opts, factories)


@pytest.mark.slow
def test_the_benchmark_writes_its_three_files(fixture_run):
    out, report = fixture_run
    assert sorted(os.listdir(out)) == sorted([photo_report.JSON_FILE, photo_report.MARKDOWN_FILE, photo_report.FIGURE_FILE])
    saved = json.loads((out / photo_report.JSON_FILE).read_text())
    assert saved["counts"]["photos"] == 4 and saved["counts"]["faces"] >= 4
    assert [r["method"] for r in saved["settings"][0]["rows"]] == ["bicubic", "enhance", "original", "grey"]
    text = (out / photo_report.MARKDOWN_FILE).read_text()
    assert "### x4, no JPEG" in text and "| original | ∞ | 1.0000 |" in text and "evaluate photos (test)" in text
    assert "grey − bicubic on the same faces (± 2 standard errors; FID's from resampling the faces): face PSNR-Y -" in text
    assert ", FID +" in text
    figure = cv2.imread(str(out / photo_report.FIGURE_FILE))
    assert figure.shape[0] > 2 * 240 and figure.shape[1] > 6 * 240  # 2 photos; input, 4 methods, original


@pytest.mark.slow
def test_the_benchmark_ranks_known_answers(fixture_run):
    _, report = fixture_run
    rows = {r["method"]: r for r in report["settings"][0]["rows"]}
    assert math.isinf(rows["original"]["psnr_y"]) and rows["original"]["fid"] == pytest.approx(0.0, abs=1e-3)
    assert rows["original"]["sface_cosine"] > 0.999 and rows["original"]["sface_same_person_rate"] == 1.0
    assert rows["grey"]["psnr_y"] < 20 < rows["bicubic"]["psnr_y"] and rows["grey"]["sface_same_person_rate"] < 0.5
    assert rows["grey"]["fid"] > rows["bicubic"]["fid"] > rows["original"]["fid"]
    assert rows["enhance"]["recall"] is not None and 0.0 <= rows["enhance"]["recall"] <= 1.0
    assert rows["bicubic"]["recall"] is None and rows["enhance"]["n_faces"] == report["counts"]["faces"]
    assert "difference" not in rows["bicubic"] and rows["grey"]["difference"]["from"] == "bicubic"
    assert rows["grey"]["difference"]["sface_cosine"]["mean"] == pytest.approx(
        rows["grey"]["sface_cosine"] - rows["bicubic"]["sface_cosine"])  # paired means differ as the means do
    assert rows["original"]["difference"]["psnr_y"] is None  # every PSNR infinite: nothing to pair
    fid_gap = rows["grey"]["difference"]["fid"]  # the whole-set FIDs' difference, with a resampled spread
    assert fid_gap["mean"] == pytest.approx(rows["grey"]["fid"] - rows["bicubic"]["fid"], rel=1e-6)
    assert fid_gap["se"] > 0 and fid_gap["n"] == report["counts"]["faces"]
