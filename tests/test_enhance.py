"""`enhance` on real photos: placement of pasted faces, odd and hostile files, the CLI."""

import os

import cv2
import numpy as np
import pytest
from conftest import FIXTURES
from PIL import Image

from tf_stacksr import enhance
from tf_stacksr.apps import enhance_lib, photo_files
from tf_stacksr.data import align
from tf_stacksr.models import zoo

BILL = os.path.join(FIXTURES, "lfw", "Bill_Gates", "Bill_Gates_0001.jpg")
FIDEL = os.path.join(FIXTURES, "lfw", "Fidel_Castro", "Fidel_Castro_0001.jpg")
FFHQ = os.path.join(FIXTURES, "ffhq", "00001.jpg")


class BicubicUpscaler:
    """Stand-in for a perfect model: bicubic LR -> HR, brightened so pasted faces are recognisable."""

    def __init__(self, lr_size, hr_size, brighten=0):
        self.lr_size, self.hr_size, self.scale, self.brighten = lr_size, hr_size, hr_size // lr_size, brighten

    def __call__(self, lr):
        assert lr.dtype == np.uint8 and lr.shape[1:] == (self.lr_size, self.lr_size, 3)
        out = np.stack([cv2.resize(f, (self.hr_size, self.hr_size), interpolation=cv2.INTER_CUBIC) for f in lr])
        return np.clip(out.astype(int) + self.brighten, 0, 255).astype(np.uint8)


class MarkerUpscaler(BicubicUpscaler):
    """Returns grey faces with a magenta dot where an aligned face's eye centres belong."""

    def __call__(self, lr):
        canvas = np.full((self.hr_size, self.hr_size, 3), 128, np.uint8)
        template = align.canonical_landmarks(self.hr_size, 0.7)
        for eye in (template[0:2].mean(axis=0), template[2:4].mean(axis=0)):
            center = tuple(int(round(v * 16)) for v in eye)
            cv2.circle(canvas, center, 3 * 16, (255, 0, 255), -1, cv2.LINE_AA, shift=4)
        return np.repeat(canvas[None], len(lr), axis=0)


def rgb(path, factor=1.0):
    with Image.open(path) as image:
        image = image.convert("RGB")
        return np.asarray(image.resize((round(image.width * factor), round(image.height * factor)), Image.BICUBIC))


def group_photo():
    """Three real faces side by side, small (43-62 px boxes) as in a group photo."""
    parts = [rgb(BILL, 0.45), rgb(FIDEL, 0.45), rgb(FFHQ, 0.36)]
    height = max(p.shape[0] for p in parts)
    return np.concatenate([np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0)), mode="edge") for p in parts], axis=1)


def no_face_photo():
    return rgb(BILL)[190:, :]  # shoulders and tie


def nearest_error(found, expected):
    """Max landmark distance (px) between `expected` [5, 2] and the closest detected face."""
    return min(float(np.linalg.norm(f.landmarks - expected, axis=1).max()) for f in found)


def test_faces_land_where_they_were(aligner):
    photo = group_photo()
    truth = aligner.detect(photo)
    assert len(truth) == 3
    result = enhance_lib.enhance_photo(photo, BicubicUpscaler(64, 128, brighten=30),
                                       enhance_lib.EnhanceOptions(upscale=2), aligner)
    assert len(result.faces) == 3 and result.image.shape == (2 * photo.shape[0], 2 * photo.shape[1], 3)
    redetected = aligner.detect(result.image)
    assert len(redetected) == 3
    plain = cv2.resize(photo, result.image.shape[1::-1], interpolation=cv2.INTER_CUBIC).astype(int)
    for face in truth:
        expected = face.landmarks * 2 + 0.5  # x' = s x + (s - 1) / 2
        assert nearest_error(redetected, expected) < 3.0
        x, y = np.round(expected[4]).astype(int)  # nose: inside the pasted, brightened face
        assert result.image[y - 3:y + 4, x - 3:x + 4].astype(int).mean() - plain[y - 3:y + 4, x - 3:x + 4].mean() > 20
    far = np.s_[:4, :4]  # corner: untouched by any face
    assert np.abs(result.image[far].astype(int) - plain[far]).max() <= 1


def test_paste_geometry_is_subpixel_on_a_rotated_face(aligner):
    photo = rgb(BILL, 0.5)
    rot = cv2.getRotationMatrix2D((photo.shape[1] / 2, photo.shape[0] / 2), 12, 1.0)
    photo = cv2.warpAffine(photo, rot, photo.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
    (face,) = aligner.detect(photo)
    result = enhance_lib.enhance_photo(photo, MarkerUpscaler(32, 128), enhance_lib.EnhanceOptions(upscale=3), aligner)
    image = result.image.astype(int)
    magenta = np.clip(np.minimum(image[..., 0], image[..., 2]) - image[..., 1] - 60, 0, None).astype(np.float64)
    count, labels = cv2.connectedComponents((magenta > 0).astype(np.uint8))
    assert count - 1 == 2  # background label + the two eye dots
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
    dots = [np.array([(xs * magenta)[labels == k].sum(), (ys * magenta)[labels == k].sum()]) / magenta[labels == k].sum()
            for k in (1, 2)]
    eyes = align.eye_centres(face.landmarks) * 3 + 1.0
    for eye in eyes:
        assert min(np.linalg.norm(dot - eye) for dot in dots) < 0.75  # measured 0.2-0.5
    roll = np.degrees(np.arctan2(*(eyes[0] - eyes[1])[::-1]))
    assert abs(abs(roll) - 12) < 4  # the face really was rotated


def test_detection_on_a_reduced_copy_maps_back(aligner):
    photo = group_photo()
    full = aligner.detect(photo)
    reduced = enhance_lib.detect_faces(aligner, cv2.resize(photo, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC), 400)
    assert len(reduced) == 3
    for face in full:
        assert nearest_error(reduced, face.landmarks * 2 + 0.5) < 4.0


def test_only_largest_and_output_cap(aligner):
    photo = group_photo()
    options = enhance_lib.EnhanceOptions(upscale=4, only_largest=True, max_output_side=800)
    result = enhance_lib.enhance_photo(photo, BicubicUpscaler(32, 128), options, aligner)
    assert len(result.faces) == 1
    assert max(result.image.shape[:2]) == 800
    assert any("upscale lowered" in note for note in result.notes)


def test_big_input_is_capped_on_decode(tmp_path, capsys):
    photo = cv2.resize(group_photo(), None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)  # 1264 x 448
    Image.fromarray(photo).save(tmp_path / "big.png")
    options = enhance_lib.EnhanceOptions(upscale=2, max_side=640, max_output_side=1000)
    summary = photo_files.enhance_files(str(tmp_path / "big.png"), str(tmp_path / "out"), BicubicUpscaler(64, 128),
                                        options, progress=False)
    assert summary.faces == 3
    assert "downscaled_large" in capsys.readouterr().out
    with Image.open(tmp_path / "out" / "big.png") as image:
        assert image.size == (1000, round(round(448 * 640 / 1264) * 1000 / 640))  # decoded 640 x 227, then x 1.5625


def test_aligned_inputs_must_be_square():
    with pytest.raises(enhance_lib.photos.Skip, match="not_square"):
        enhance_lib.enhance_photo(np.zeros([20, 16, 3], np.uint8), BicubicUpscaler(16, 64),
                                  enhance_lib.EnhanceOptions(aligned=True))


def write_jpeg(path, image, **kwargs):
    Image.fromarray(image).save(path, format="JPEG", quality=95, **kwargs)


def test_batch_with_no_face_corrupt_rgba_exif_and_hostile_names(tmp_path, capsys):
    src, out, outside = tmp_path / "in", tmp_path / "out", tmp_path / "outside"
    (src / "sub").mkdir(parents=True)
    outside.mkdir()
    write_jpeg(src / "group.jpg", group_photo())
    write_jpeg(src / "no_face.jpg", no_face_photo())
    (src / "empty.jpg").write_bytes(b"")
    (src / "notes.png").write_bytes(b"this is not an image")
    data = (src / "group.jpg").read_bytes()
    (src / "truncated.jpg").write_bytes(data[: len(data) // 3])
    # RGBA: transparent outside a disc around the face.
    bill = rgb(BILL, 0.5)
    alpha = np.zeros(bill.shape[:2], np.uint8)
    cv2.circle(alpha, (62, 62), 50, 255, -1)
    Image.fromarray(np.dstack([bill, alpha])).save(src / "rgba.png")
    # Stored sideways with an EXIF orientation tag (6: rotate 90 degrees clockwise to view).
    exif = Image.Exif()
    exif[0x0112] = 6
    write_jpeg(src / "sideways.jpg", np.ascontiguousarray(np.rot90(rgb(FIDEL, 0.5), 1)), exif=exif)
    # Hostile names: Windows-style traversal, a control character, and a subfolder whose
    # output folder is a symlink out of the output directory.
    write_jpeg(src / "up\\..\\..\\..\\escape.jpg", no_face_photo())
    write_jpeg(src / "line\nbreak.jpg", group_photo()[:, :110])
    write_jpeg(src / "sub" / "photo.jpg", no_face_photo())
    out.mkdir()
    os.symlink(outside, out / "sub")

    options = enhance_lib.EnhanceOptions(upscale=2, save_faces=True)
    summary = photo_files.enhance_files(str(src), str(out), BicubicUpscaler(64, 128), options, progress=False)
    log = capsys.readouterr().out

    assert summary.files == 10 and summary.written == 6
    assert summary.faces == 3 + 1 + 1 + 1 and summary.without_faces == 2
    assert dict(summary.skipped) == {"empty_file": 1, "not_an_image": 1, "truncated_or_corrupt": 1,
                                     "unsafe_output_path": 1}
    for name in ("empty.jpg", "notes.png", "truncated.jpg", "photo.jpg"):
        assert f"{name}: " in log or name in log
    assert "no face found" in log
    assert os.listdir(outside) == [] and not (tmp_path / "escape.png").exists()
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert "up/escape.png" in written and "line_break.png" in written  # '..' parts and odd characters gone

    with Image.open(out / "rgba.png") as image:
        assert image.mode == "RGBA" and image.size == (250, 250)
        out_alpha = np.asarray(image)[..., 3]
    assert out_alpha[124, 124] == 255 and out_alpha[5, 5] == 0
    with Image.open(out / "sideways.png") as image:
        assert image.size == (250, 250)  # upright: the face was found only after applying EXIF
    assert (out / "sideways_face0.png").exists() and (out / "group_face2.png").exists()
    with Image.open(out / "no_face.png") as image:
        got = np.asarray(image)
    source = np.asarray(Image.open(src / "no_face.jpg").convert("RGB"))
    np.testing.assert_array_equal(got, cv2.resize(source, got.shape[1::-1], interpolation=cv2.INTER_CUBIC))

    # A second run keeps finished outputs and redoes nothing.
    again = photo_files.enhance_files(str(src), str(out), BicubicUpscaler(64, 128), options, progress=False)
    assert again.existing == 6 and again.written == 0


def test_safe_relative_name():
    assert photo_files.safe_relative_name("../../etc/passwd.jpg") == os.path.join("etc", "passwd.jpg")
    assert photo_files.safe_relative_name("/abs/x.jpg") == os.path.join("abs", "x.jpg")
    assert photo_files.safe_relative_name("..\\..\\x.jpg") == "x.jpg"
    assert photo_files.safe_relative_name(".hidden.png") == "_hidden.png"
    assert photo_files.safe_relative_name("..") == "unnamed"


def test_cli_with_a_trained_model_dir(tiny_run, tmp_path, capsys):
    model_dir = tiny_run()
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    write_jpeg(src / "group.jpg", group_photo())
    Image.fromarray(rgb(FFHQ, 16 / 256)).save(src / "aligned_lr.png")
    assert enhance.main(["-i", str(src / "group.jpg"), "-o", str(out), "--model", model_dir,
                         "--only-largest", "--save-faces", "--quiet"]) == 0
    assert "1 files: 1 written, 1 faces" in capsys.readouterr().out
    with Image.open(out / "group_face0.png") as face:
        assert face.size == (64, 64)
    assert enhance.main(["-i", str(src / "aligned_lr.png"), "-o", str(out / "aligned"), "--model", model_dir,
                         "--aligned", "--quiet"]) == 0
    with Image.open(out / "aligned" / "aligned_lr.png") as image:
        assert image.size == (64, 64)


def test_cli_without_model_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "SHIPPED_DIR", str(tmp_path / "none"))
    with pytest.raises(SystemExit, match="no shipped models are installed to route faces among.*--model=PATH"):
        enhance.main(["-i", BILL, "-o", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="celeba_16to64_psnr.*neither an existing model path nor a shipped model"
                                         " \\(none are installed\\)"):
        enhance.main(["-i", BILL, "-o", str(tmp_path / "out"), "--alpha=0.5"])
    with pytest.raises(SystemExit, match="no such file"):
        enhance.main(["-i", str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "out")])
