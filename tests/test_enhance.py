"""`enhance` on real photos: placement of pasted faces, odd and hostile files, the CLI."""

import os

import cv2
import numpy as np
import pytest
from conftest import FIXTURES, fifo_released_after
from PIL import Image, JpegImagePlugin

from tf_stacksr import enhance
from tf_stacksr.apps import enhance_lib, photo_files
from tf_stacksr.data import align, detect
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


def test_big_input_is_capped_on_decode(tmp_path, capsys, aligner):
    photo = cv2.resize(group_photo(), None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)  # 1264 x 448
    Image.fromarray(photo).save(tmp_path / "big.png")
    options = enhance_lib.EnhanceOptions(upscale=2, max_side=640, max_output_side=1000)
    summary = photo_files.enhance_files(str(tmp_path / "big.png"), str(tmp_path / "out"), BicubicUpscaler(64, 128),
                                        options, progress=False, aligner=aligner)
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


def test_batch_with_no_face_corrupt_rgba_exif_and_hostile_names(tmp_path, capsys, aligner, monkeypatch):
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

    options = enhance_lib.EnhanceOptions(upscale=2, save_faces=True, output_format="png")  # PNG: exact pixels below
    summary = photo_files.enhance_files(str(src), str(out), BicubicUpscaler(64, 128), options, progress=False,
                                        aligner=aligner)
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
    assert "up/escape.jpg.png" in written and "line_break.jpg.png" in written  # '..' parts and odd characters gone

    with Image.open(out / "rgba.png") as image:
        assert image.mode == "RGBA" and image.size == (250, 250)
        out_alpha = np.asarray(image)[..., 3]
    assert out_alpha[124, 124] == 255 and out_alpha[5, 5] == 0
    with Image.open(out / "sideways.jpg.png") as image:
        assert image.size == (250, 250)  # upright: the face was found only after applying EXIF
    assert (out / "sideways.jpg.face0.png").exists() and (out / "group.jpg.face2.png").exists()
    with Image.open(out / "no_face.jpg.png") as image:
        got = np.asarray(image)
    source = np.asarray(Image.open(src / "no_face.jpg").convert("RGB"))
    np.testing.assert_array_equal(got, cv2.resize(source, got.shape[1::-1], interpolation=cv2.INTER_CUBIC))

    # A second run keeps finished outputs and redoes nothing, not even loading a face detector.
    monkeypatch.setattr(photo_files, "make_aligner", lambda detector: pytest.fail("loaded a detector for nothing"))
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
                         "--only-largest", "--save-faces", "--quiet", "--format=png"]) == 0
    assert "1 files: 1 written, 1 faces" in capsys.readouterr().out
    with Image.open(out / "group.jpg.face0.png") as face:
        assert face.size == (64, 64)
    with Image.open(out / "group.jpg.png") as image:
        assert image.format == "PNG"
    assert enhance.main(["-i", str(src / "aligned_lr.png"), "-o", str(out / "aligned"), "--model", model_dir,
                         "--aligned", "--quiet"]) == 0
    with Image.open(out / "aligned" / "aligned_lr.png") as image:
        assert image.size == (64, 64)
    # Exit 1 only when nothing could be written; the summary says why.
    (src / "notes.jpg").write_bytes(b"not a photo")
    capsys.readouterr()
    assert enhance.main(["-i", str(src / "notes.jpg"), "-o", str(out / "bad"), "--model", model_dir, "--quiet"]) == 1
    assert "1 files: 0 written, 0 faces, 0 photos without faces, 0 already done, 1 skipped (not_an_image: 1)" in \
        capsys.readouterr().out
    assert enhance.main(["-i", str(src), "-o", str(out / "all"), "--model", model_dir, "--quiet", "--aligned"]) == 0
    assert "3 files: 1 written, 1 faces (run: 1), 0 photos without faces, 0 already done, 2 skipped" in \
        capsys.readouterr().out


def test_cli_without_model_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(zoo, "SHIPPED_DIR", str(tmp_path / "none"))
    with pytest.raises(SystemExit, match="no shipped models are installed to route faces among.*--model=PATH"):
        enhance.main(["-i", BILL, "-o", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="celeba_16to64_psnr.*neither an existing model path nor a shipped model"
                                         " \\(none are installed\\)"):
        enhance.main(["-i", BILL, "-o", str(tmp_path / "out"), "--alpha=0.5"])
    with pytest.raises(SystemExit, match="no such file"):
        enhance.main(["-i", str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="--output=.* is the input folder"):  # said before any model loads
        enhance.main(["-i", str(tmp_path), "-o", str(tmp_path)])
    with pytest.raises(SystemExit):
        enhance.main(["-i", BILL, "-o", str(tmp_path / "out"), "--format=gif"])
    assert "--format: invalid choice: 'gif'" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX fifos and /dev/null")
def test_only_regular_files_are_read(tmp_path, capsys, aligner):
    src = tmp_path / "in"
    src.mkdir()
    write_jpeg(src / "real.jpg", no_face_photo())
    os.symlink(src / "real.jpg", src / "link.jpg")  # a symlink to a regular file is a photo
    os.symlink("/dev/null", src / "device.jpg")  # /dev/zero would be read until memory ran out
    os.mkfifo(src / "pipe.jpg")  # reading it would wait forever for a writer
    with fifo_released_after(src / "pipe.jpg", 10):
        summary = photo_files.enhance_files(str(src), str(tmp_path / "out"), BicubicUpscaler(64, 128),
                                            enhance_lib.EnhanceOptions(upscale=2), progress=False, aligner=aligner)
    log = capsys.readouterr().out
    assert summary.files == 4 and summary.written == 2
    assert dict(summary.skipped) == {"not_a_regular_file": 2}
    assert "pipe.jpg: not_a_regular_file (a fifo" in log and "device.jpg: not_a_regular_file (a character device" in log
    # A single special file as --input is skipped the same way, not "no such file".
    single = photo_files.enhance_files(str(src / "device.jpg"), str(tmp_path / "out1"), BicubicUpscaler(64, 128),
                                       enhance_lib.EnhanceOptions(upscale=2), progress=False, aligner=aligner)
    assert dict(single.skipped) == {"not_a_regular_file": 1} and single.written == 0


def test_files_over_the_size_cap_are_not_read(tmp_path, capsys, aligner):
    src = tmp_path / "in"
    src.mkdir()
    write_jpeg(src / "small.jpg", no_face_photo())
    (src / "big.jpg").write_bytes(b"\xff" * (2**20 + 1))
    options = enhance_lib.EnhanceOptions(upscale=2, max_file_mb=1)
    summary = photo_files.enhance_files(str(src), str(tmp_path / "out"), BicubicUpscaler(64, 128), options,
                                        progress=False, aligner=aligner)
    assert summary.written == 1 and dict(summary.skipped) == {"too_large": 1}
    assert "big.jpg: too_large (1048577 bytes > --max-file-mb=1)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="--max-file-mb=0: expected"):
        enhance_lib.EnhanceOptions(max_file_mb=0)


def test_outputs_never_replace_or_reenter_the_inputs(tmp_path, capsys, aligner):
    s = tmp_path / "s"
    s.mkdir()
    Image.fromarray(no_face_photo()).save(s / "face.png")
    original = (s / "face.png").read_bytes()
    run = lambda i, o, **kw: photo_files.enhance_files(  # noqa: E731
        str(i), str(o), BicubicUpscaler(64, 128), enhance_lib.EnhanceOptions(upscale=2, **kw), progress=False,
        aligner=aligner)
    with pytest.raises(ValueError, match="--output=.* is the input folder"):
        run(s, s, overwrite=True)
    with pytest.raises(ValueError, match="--output=.* is the input folder"):
        run(s, s)
    with pytest.raises(ValueError, match="--output=.* is the folder of --input=.*face.png"):
        run(s / "face.png", s, overwrite=True)
    with pytest.raises(ValueError, match="--output=.*face.png: expected a folder"):
        run(s / "face.png", s / "face.png", overwrite=True)
    assert (s / "face.png").read_bytes() == original and os.listdir(s) == ["face.png"]

    # An output folder inside the input folder is left out of the walk, and the log says so.
    n = tmp_path / "n"
    n.mkdir()
    write_jpeg(n / "a.jpg", no_face_photo())
    first, second = run(n, n / "out"), run(n, n / "out")
    assert "is inside --input" in capsys.readouterr().out
    assert (first.files, first.written) == (1, 1) and (second.files, second.existing, second.written) == (1, 1, 0)
    assert not (n / "out" / "out").exists()

    # An output that would land on an input file is never written, even with --overwrite.
    x = tmp_path / "x"
    (x / "a" / "a").mkdir(parents=True)
    Image.fromarray(no_face_photo()).save(x / "a" / "p.png")
    Image.fromarray(no_face_photo()[:, ::-1]).save(x / "a" / "a" / "p.png")
    kept = (x / "a" / "p.png").read_bytes()
    summary = run(x / "a", x, overwrite=True)
    assert (x / "a" / "p.png").read_bytes() == kept
    assert dict(summary.skipped) == {"output_is_an_input": 1} and summary.written == 1


def test_output_names_are_unique_per_input_and_stable(tmp_path, capsys, aligner):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    write_jpeg(src / "plain.jpg", rgb(BILL, 0.5))
    write_jpeg(src / "plain_face0.jpg", no_face_photo())
    run = lambda **kw: photo_files.enhance_files(  # noqa: E731
        str(src), str(out), BicubicUpscaler(32, 128), enhance_lib.EnhanceOptions(upscale=2, save_faces=True, **kw),
        progress=False, aligner=aligner)
    first = run()
    assert (first.written, first.existing, first.faces) == (2, 0, 1)
    assert sorted(os.listdir(out)) == ["plain.jpg", "plain.jpg.face0.png", "plain_face0.jpg"]
    # A photo added later under the same stem gets its own output; nothing done before is redone.
    Image.fromarray(no_face_photo()).save(src / "plain.png")
    second = run()
    assert (second.written, second.existing) == (1, 2) and (out / "plain.png").exists()
    # Outputs that two inputs would share are refused for both, named, never "already done".
    Image.fromarray(no_face_photo()).save(src / "plain.jpg.png")
    third = run(output_format="png")
    assert dict(third.skipped) == {"output_name_clash": 2} and third.written == 1  # plain_face0.jpg.png
    log = capsys.readouterr().out
    assert "plain.jpg: output_name_clash (its output plain.jpg.png is also the output of" in log
    assert "plain.png" not in str(third.skipped_files)


def test_semi_transparent_pixels_keep_their_colour(tmp_path, aligner):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    plain = no_face_photo()
    ramp = np.linspace(1, 254, plain.shape[1]).round().astype(np.uint8)
    plain_alpha = np.broadcast_to(ramp, plain.shape[:2])
    Image.fromarray(np.dstack([plain, plain_alpha])).save(src / "plain.png")
    face = rgb(BILL, 0.5)
    Image.fromarray(np.dstack([face, np.full(face.shape[:2], 160, np.uint8)])).save(src / "face.png")
    summary = photo_files.enhance_files(str(src), str(out), BicubicUpscaler(32, 128),
                                        enhance_lib.EnhanceOptions(upscale=2), progress=False, aligner=aligner)
    assert summary.written == 2 and summary.faces == 1
    for name, pixels, alpha in (("plain.png", plain, plain_alpha), ("face.png", face, None)):
        with Image.open(out / name) as image:
            got = np.asarray(image)
        assert got.shape[2] == 4
        expected = cv2.resize(pixels, got.shape[1::-1], interpolation=cv2.INTER_CUBIC).astype(int)
        corner = np.s_[:6, :6]  # far from any face
        assert np.abs(got[corner][..., :3].astype(int) - expected[corner]).max() <= 1
        if alpha is not None:
            np.testing.assert_array_equal(got[..., :3], expected)
            resized = cv2.resize(alpha, got.shape[1::-1], interpolation=cv2.INTER_LINEAR)
            np.testing.assert_array_equal(got[..., 3], resized)


def test_outputs_keep_the_input_format(tmp_path, aligner):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    photo = no_face_photo()
    write_jpeg(src / "photo.jpg", photo)
    Image.fromarray(photo).save(src / "lossless.png")
    Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)])).save(src / "cutout.png")
    Image.fromarray(photo).convert("P").save(src / "anim.gif")
    run = lambda folder, **kw: photo_files.enhance_files(  # noqa: E731
        str(src), str(folder), BicubicUpscaler(64, 128), enhance_lib.EnhanceOptions(upscale=2, **kw), progress=False,
        aligner=aligner)
    assert run(out).written == 4
    assert sorted(os.listdir(out)) == ["anim.gif.png", "cutout.png", "lossless.png", "photo.jpg"]
    for name, fmt in (("lossless.png", "PNG"), ("anim.gif.png", "PNG"), ("cutout.png", "PNG")):
        with Image.open(out / name) as image:
            assert image.format == fmt

    assert run(tmp_path / "png", output_format="png").written == 4
    assert sorted(os.listdir(tmp_path / "png")) == ["anim.gif.png", "cutout.png", "lossless.png", "photo.jpg.png"]
    with Image.open(out / "photo.jpg") as image:
        assert image.format == "JPEG" and JpegImagePlugin.get_sampling(image) == 0  # 4:4:4, no chroma subsampling
        jpeg = np.asarray(image.convert("RGB")).astype(float)
    with Image.open(tmp_path / "png" / "photo.jpg.png") as image:
        png = np.asarray(image).astype(float)
    assert 10 * np.log10(255**2 / np.mean((jpeg - png) ** 2)) > 40  # quality 95: close to the lossless output
    assert os.path.getsize(out / "photo.jpg") < os.path.getsize(tmp_path / "png" / "photo.jpg.png") / 2
    assert run(tmp_path / "jpeg", output_format="jpeg").written == 4
    assert sorted(os.listdir(tmp_path / "jpeg")) == ["anim.gif.jpg", "cutout.png", "lossless.png.jpg", "photo.jpg"]
    with Image.open(tmp_path / "jpeg" / "cutout.png") as image:  # JPEG has no alpha: kept as PNG
        assert image.format == "PNG" and image.mode == "RGBA"
    with pytest.raises(ValueError, match="--format='gif': expected one of same, png, jpeg"):
        enhance_lib.EnhanceOptions(output_format="gif")


def test_cnn_detector_finds_the_face_of_a_small_photo(aligner):
    # A 64 px LFW photo (face ~28 px): dlib's CNN needs faces of ~80 px, so the photo is doubled
    # twice first; doubled once (as before) it found no face where HOG found one.
    small = rgb(FIDEL, 64 / 250)
    assert len(aligner.detect(small)) == 1
    options = enhance_lib.EnhanceOptions(detector="cnn", upscale=1)
    result = enhance_lib.enhance_photo(small, BicubicUpscaler(16, 64), options)
    assert len(result.faces) == 1
    assert [detect.cnn_upsample((h, h)) for h in (64, 450, 451, 900, 901, 1600)] == [2, 2, 1, 1, 0, 0]


def test_detect_side_flag_lets_dlib_find_a_small_face_in_a_big_photo(tmp_path, monkeypatch):
    """dlib's detectors search a copy of at most --detect-side: a small face in a big photo is lost
    on the default 1600 px copy and found when the flag allows the whole photo."""
    face = cv2.resize(group_photo(), None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)  # faces 86-124 px
    canvas = np.full((2400, 3200, 3), 128, np.uint8)
    canvas[1000:1000 + face.shape[0], 1500:1500 + face.shape[1]] = face
    Image.fromarray(canvas).save(tmp_path / "big.png")
    seen = {}

    def run(*extra):
        monkeypatch.setattr(photo_files, "enhance_files",
                            lambda path, out, upscaler, options, **kw: seen.update(side=options.detect_side)
                            or photo_files.Summary(files=1, written=1))
        monkeypatch.setattr(enhance, "load_upscaler", lambda *a, **k: BicubicUpscaler(16, 64))
        assert enhance.main(["-i", str(tmp_path / "big.png"), "-o", str(tmp_path / "out"), "--detector=hog", "--quiet",
                             *extra]) == 0
        return seen["side"]

    assert run() == 1600 and run("--detect-side=3200") == 3200
    hog = align.FaceAligner("hog")
    found = [len(enhance_lib.detect_faces(hog, canvas, side)) for side in (1600, 3200)]
    assert found[0] < found[1], found
