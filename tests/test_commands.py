"""What a user sees first: `--help` lists each command's own flags by what they are for and exits 0,
and no command prints TensorFlow's start-up lines (`tf_stacksr.startup`)."""

import dataclasses
import os
import re
import subprocess
import sys

import pytest
from conftest import REPO

from tf_stacksr import config, startup

# What TensorFlow 2.21 prints while it loads on a CPU machine, as a reviewer found it.
START_UP_NOISE = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795928373.585899   11720 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results due to floating-point round-off errors from different computation orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.
I0000 00:00:1795928373.586196   11720 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
I0000 00:00:1795928373.632558   11720 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 AVX512F AVX512_VNNI FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
2025-09-17 14:44:05.176998: E external/local_xla/xla/stream_executor/cuda/cuda_fft.cc:467] Unable to register cuFFT factory: Attempting to register factory for plugin cuFFT when one has already been registered
E0000 00:00:1795928428.000728   12360 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
"""
NOISE_MARKERS = ("absl::InitializeLog", "oneDNN custom operations", "cudart_stub", "cuInit", "cpu_feature_guard",
                 "To enable the following instructions", "Unable to register")
COMMAND_FLAGS = {  # flags each command's --help must list
    "train": ["--data_dir", "--hr_size", "--res_blocks", "--lambda_l1", "--batch_size", "--model_dir", "--strategy"],
    "evaluate": ["--data", "--methods", "--hr_size", "--scale", "--output_dir", "--limit"],
    "export": ["--model_dir", "--export_dir", "--alpha", "--[no]flip_ensemble", "--batch_branches"],
    "prepare": ["--input", "--output", "--size", "--face_scale", "--split", "--workers"],
}


def run_command(*args, env_changes=None, timeout=120):
    env = {k: v for k, v in os.environ.items() if k != startup.LOG_LEVEL_VARIABLE}  # the command's own default
    env.update(env_changes or {})
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


# ---- --help ------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", sorted(COMMAND_FLAGS))
def test_help_lists_the_commands_own_flags_by_group_and_exits_0(command):
    result = run_command(f"tf_stacksr.{command}", "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    for flag in COMMAND_FLAGS[command]:
        assert re.search(rf"^  {re.escape(flag)}: ", text, re.M), (flag, text)
    for foreign in ("--tpu", "--test_srcdir", "--verbosity", "--helpfull:", "--only_check_args"):
        assert foreign not in text
    assert "\nother:" not in text, "a flag of the command is in no group"
    assert len(re.findall(r"^\S.*:$", text, re.M)) >= 2  # group headings


def test_train_help_groups_follow_config_and_h_works_through_the_console_script():
    result = run_command("tf_stacksr.cli", "train", "-h")
    assert result.returncode == 0, result.stderr[-2000:]
    headings = re.findall(r"^(\S.*):$", result.stdout, re.M)
    assert headings == [group for group, _ in config.flag_groups(config.Config)]
    assert "--[no]residual: " in result.stdout and "(default: true)" in result.stdout  # kept on one line


def test_every_training_option_has_a_help_group():
    ungrouped = [f.name for f in dataclasses.fields(config.Config) if not f.metadata.get("group")]
    assert not ungrouped
    groups = [group for group, _ in config.flag_groups(config.Config)]
    assert {"data", "generator", "optimisation", "bookkeeping"} <= set(groups)


# ---- TensorFlow's start-up lines ---------------------------------------------------------------

def test_start_up_lines_are_filtered_by_level_and_the_rest_kept(monkeypatch):
    monkeypatch.setattr(startup, "_has_nvidia_device", lambda: False)
    other = "/x/module.py:3: UserWarning: something real\n  warnings.warn(...)\nTraceback (most recent call last):\n"
    kept = startup.filter_startup_lines(START_UP_NOISE + other, level=2)
    assert kept == other
    assert not any(marker in kept for marker in NOISE_MARKERS)
    real_error = "E0000 00:00:1795928428.000728   12360 op_kernel.cc:1] a real error\n"
    assert startup.filter_startup_lines(real_error, level=2) == real_error
    assert startup.filter_startup_lines(real_error, level=3) == ""
    warning = START_UP_NOISE.splitlines(keepends=True)[1].replace("I0000", "W0000")
    assert startup.filter_startup_lines(warning, level=1) == warning
    no_gpu = START_UP_NOISE.splitlines(keepends=True)[-1]
    assert startup.filter_startup_lines(no_gpu, level=2) == ""
    monkeypatch.setattr(startup, "_has_nvidia_device", lambda: True)  # there, CUDA failing matters
    assert startup.filter_startup_lines(no_gpu, level=2) == no_gpu


@pytest.mark.slow
def test_commands_print_no_tensorflow_start_up_lines(tmp_path):
    """A command that loads TensorFlow (export of a model that does not exist): only its own error."""
    args = ("tf_stacksr.export", f"--model_dir={tmp_path / 'missing'}", f"--export_dir={tmp_path / 'out' / '1'}")
    result = run_command(*args)
    assert result.returncode != 0 and "export failed" in result.stderr
    noise = [line for line in result.stderr.splitlines() if any(m in line for m in NOISE_MARKERS)]
    assert not noise, noise


def test_a_user_who_sets_the_level_keeps_control(monkeypatch):
    monkeypatch.setenv(startup.LOG_LEVEL_VARIABLE, "0")
    assert startup.min_log_level() == 0
    startup.quiet_tensorflow()
    assert os.environ[startup.LOG_LEVEL_VARIABLE] == "0"
    monkeypatch.delenv(startup.LOG_LEVEL_VARIABLE)
    startup.quiet_tensorflow()
    assert os.environ[startup.LOG_LEVEL_VARIABLE] == startup.DEFAULT_LOG_LEVEL
