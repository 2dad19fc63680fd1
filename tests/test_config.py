"""Config validation: bad values fail fast with a message naming the flag."""

import subprocess
import sys

import pytest
from absl import flags
from conftest import FIXTURES, REPO

from tf_stacksr import config as config_lib
from tf_stacksr.config import Config


@pytest.mark.parametrize("hr_size,scale,stages", [(64, 4, (16, 32, 64)), (128, 4, (32, 64, 128)),
                                                  (256, 4, (64, 128, 256)), (128, 8, (16, 32, 64, 128)),
                                                  (64, 2, (32, 64))])
def test_stage_sizes(hr_size, scale, stages):
    cfg = Config(hr_size=hr_size, scale=scale)
    assert cfg.stage_sizes == stages
    assert cfg.num_stages == len(stages)


@pytest.mark.parametrize("changes,flag", [
    (dict(scale=3), "--scale"), (dict(scale=1), "--scale"), (dict(scale=6), "--scale"),
    (dict(hr_size=100, scale=8), "--hr_size"), (dict(hr_size=88, scale=4), "--hr_size"), (dict(hr_size=8, scale=4), "--hr_size"),
    (dict(res_blocks=0), "--res_blocks"), (dict(res_kernel=2), "--res_kernel"),
    (dict(stage_res_blocks="6"), "--stage_res_blocks"), (dict(stage_res_blocks="6,0"), "--stage_res_blocks"),
    (dict(stage_res_blocks="6,two"), "--stage_res_blocks"), (dict(stage_res_blocks="2,2,2"), "--stage_res_blocks"),
    (dict(lambda_l1=-1.0), "--lambda_l1"), (dict(norm="layer"), "--norm"), (dict(degradation="jpeg"), "--degradation"),
    (dict(model_dir=""), "--model_dir"), (dict(identity_weight=-0.1), "--identity_weight"),
    (dict(identity_face_scale=2.0), "--identity_face_scale"),
    (dict(jitter_shift=-1.0), "--jitter_shift"), (dict(jitter_zoom=0.5), "--jitter_zoom"),
    (dict(diff_augment="color,flip"), "--diff_augment"),
    (dict(distill_weight=1.0), "--teacher"), (dict(teacher="celeba_16to64_psnr"), "--distill_weight"),
    (dict(teacher="celeba_16to64_psnr", distill_weight=-1.0), "--distill_weight"),
])
def test_bad_values_name_the_flag(changes, flag):
    with pytest.raises(ValueError, match=flag):
        Config(**changes)


def test_summary_says_what_a_run_trains():
    assert Config(model_dir="runs/q", batch_size=8, train_steps=1500).summary() == (
        "16->64 px (x4: 2 upsampling stages of 4x4 residual structures); losses L1 x100 + adversarial x1; "
        "batch 8; 1500 steps -> runs/q")
    psnr = Config(scale=8, hr_size=128, adv_weight=0, identity_weight=0.5, per_replica_batch_size=4).summary()
    assert psnr.startswith("16->128 px (x8: 3 upsampling stages")
    assert "L1 x100 + identity x0.5 (no adversarial term: PSNR-oriented); batch 4 per replica" in psnr
    assert "2 upsampling stages of 6/2x4 residual structures" in Config(stage_res_blocks="6,2").summary()


def test_data_dir_checked(tmp_path):
    with pytest.raises(ValueError, match="--data_dir"):
        Config().check_data_dir()
    with pytest.raises(ValueError, match="--data_dir"):
        Config(data_dir=str(tmp_path / "missing")).check_data_dir()
    Config(data_dir=str(FIXTURES)).check_data_dir()
    with pytest.raises(ValueError, match="missing_second.* is none"):
        Config(data_dir=f"{FIXTURES}, {tmp_path / 'missing_second'}").check_data_dir()
    Config(data_dir=f"{FIXTURES / 'celeba'},{FIXTURES / 'ffhq'}").check_data_dir()


def test_flags_round_trip_through_json(tmp_path):
    values = flags.FlagValues()
    config_lib.define_flags(values)
    values(["prog", "--scale=8", "--hr_size=128", "--residual=false", "--lambda_l1=10", "--norm=none"])
    cfg = config_lib.from_flags(values)
    assert (cfg.scale, cfg.hr_size, cfg.residual, cfg.lambda_l1, cfg.norm) == (8, 128, False, 10.0, "none")
    config_lib.save_json(cfg, tmp_path / "c.json")
    assert config_lib.load_json(tmp_path / "c.json") == cfg


@pytest.mark.parametrize("args,flag", [
    (["--scale=3"], "--scale"),  # the quick lane starts one training process, this one
    pytest.param(["--hr_size=60"], "--hr_size", marks=pytest.mark.slow),
    pytest.param(["--data_dir=/nonexistent/faces"], "--data_dir", marks=pytest.mark.slow),
])
def test_cli_fails_fast_naming_the_flag(tmp_path, args, flag):
    cmd = [sys.executable, "-m", "tf_stacksr.train", f"--model_dir={tmp_path}", f"--data_dir={FIXTURES}", *args]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert flag in result.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_from_flagfile_reads_nested_flagfiles_over_the_defaults(tmp_path):
    base = tmp_path / "base.flags"
    base.write_text("--unet_filters=16\n--batch_size=4\n")
    top = tmp_path / "top.flags"
    top.write_text(f"# a comment\n--flagfile={base}\n--batch_size=2\n--hr_size=128\n")
    cfg = config_lib.from_flagfile(str(top))
    assert (cfg.unet_filters, cfg.batch_size, cfg.hr_size) == (16, 2, 128)  # the later line wins, as in absl
    assert cfg.scale == Config().scale and cfg.res_blocks == Config().res_blocks  # unset: the defaults
