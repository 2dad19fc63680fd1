"""The training flagfiles in configs/: each parses as `python -m tf_stacksr.train` parses it, starts
with the command that runs it, and the shipped models' files hold the values their weights were
trained with.

Files directly in configs/ are runs; configs/base/ holds the blocks they include with a nested
`--flagfile=configs/base/...` line (absl expands it in place, paths relative to the working
directory, which is the repository root for every documented command; later lines override
earlier ones, the command line overrides the file).
"""

from __future__ import annotations

import json
import pathlib
import re
import shlex

import pytest
from absl import flags

import tf_stacksr
from tf_stacksr import config as config_lib

REPO = pathlib.Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
RUN_FILES = sorted(CONFIGS.glob("*.flags"))
BASE_FILES = sorted((CONFIGS / "base").glob("*.flags"))
ALL_FILES = RUN_FILES + BASE_FILES

# Phase 2 of a recipe that resumes phase 1's checkpoints: it shares phase 1's model_dir.
RESUMES = {"celeba_16to64_gan_resume": "celeba_16to64_gan"}

_ARCH_16TO64 = dict(data_dir="data/celeba128", hr_size=64, scale=4, res_blocks=4, res_convs=4, res_kernel=3,
                    unet_filters=32, unet_max_filters=256, up_filters=64, norm="instance", residual=True,
                    degradation="bicubic", batch_size=16, per_replica_batch_size=0, beta1=0.5, bb_weight=1.0,
                    seed=0, keep_checkpoints=3, num_samples=8, strategy="auto", mixed_precision="float32",
                    jit_compile=True, identity_face_scale=0.7, flip_ensemble=False)

# The values the shipped 16->64 weights were trained with (tf_stacksr/weights/*/config.json of the
# packed models, and the git history of configs/ and docs/experiments/).
SHIPPED_16TO64 = {
    # The L1 model that the PSNR model's phase 2 starts from (one 7.5k-step schedule).
    "celeba_16to64_psnr": dict(
        _ARCH_16TO64, model_dir="runs/celeba_16to64_psnr", init_from="", adv_weight=0.0, lambda_l1=1.0,
        identity_weight=0.0, g_lr=5e-4, lr_decay_start=0.5, train_steps=7500, save_every=250, sample_every=1000,
        log_every=100, diff_augment="", jitter_shift=0.0, jitter_zoom=0.0),
    # celeba_16to64_psnr as shipped (packed from ckpt-2000 of runs/celeba_16to64_psnr_id).
    "celeba_16to64_psnr_id": dict(
        _ARCH_16TO64, model_dir="runs/celeba_16to64_psnr_id", init_from="runs/celeba_16to64_psnr", adv_weight=0.0,
        lambda_l1=1.0, identity_weight=0.05, g_lr=2e-4, lr_decay_start=0.3, train_steps=2000, save_every=250,
        sample_every=250, log_every=50, diff_augment="", jitter_shift=0.0, jitter_zoom=0.0),
    # The GAN's first phase: 7.5k steps from the shipped PSNR model.
    "celeba_16to64_gan": dict(
        _ARCH_16TO64, model_dir="runs/celeba_16to64_gan", init_from="celeba_16to64_psnr", disc_filters=64,
        adv_weight=1.0, lambda_l1=30.0, identity_weight=20.0, g_lr=1e-4, d_lr=4e-4, lr_decay_start=0.5,
        diff_augment="color,translation,cutout", jitter_shift=2.0, jitter_zoom=0.05, train_steps=7500,
        save_every=250, sample_every=500, log_every=50),
    # celeba_16to64_gan as shipped (packed from ckpt-10000): phase 1 resumed in its model_dir.
    "celeba_16to64_gan_resume": dict(
        _ARCH_16TO64, model_dir="runs/celeba_16to64_gan", init_from="celeba_16to64_psnr", disc_filters=64,
        adv_weight=3.0, lambda_l1=30.0, identity_weight=50.0, g_lr=1e-4, d_lr=4e-4, lr_decay_start=0.5,
        diff_augment="color,translation,cutout", jitter_shift=2.0, jitter_zoom=0.05, train_steps=10000,
        save_every=250, sample_every=500, log_every=50),
}

# Flagfile -> the shipped model its run packs into, and the options that may differ from the
# config.json shipped with it (where the run writes, pack-time options, options its trainer ignores).
SHIPPED_FROM = {
    "celeba_16to64_psnr_id": ("celeba_16to64_psnr", {"model_dir", "flip_ensemble"}),
    "celeba_16to64_gan_resume": ("celeba_16to64_gan", {"model_dir", "flip_ensemble"}),
    "celeba_32to128_psnr": ("celeba_32to128_psnr", {"flip_ensemble"}),
    "celeba_16to64_realistic": ("celeba_16to64_realistic", {"flip_ensemble"}),
    "celeba_16to64_fast": ("celeba_16to64_fast", set()),
    "celeba_32to128_realistic": ("celeba_32to128_realistic", set()),
    "ffhq_celeba_64to256_realistic": ("ffhq_celeba_64to256_realistic", set()),
    # tools/train_l1_keras.py reads a faces file and runs for --minutes, not --data_dir/--train_steps.
    "ffhq_celeba_64to256_psnr": ("ffhq_celeba_64to256_psnr", {"data_dir", "train_steps", "save_every", "sample_every"}),
}

# How a step runs, not what it learns: the shipped weights were trained without XLA; the flagfiles
# compile their step with it, which moves the losses by under 1% and the scores not at all
# (docs/benchmarks.md, "Train step").
HOW_IT_RUNS = {"jit_compile"}

# Header phrases about how this project was developed rather than about the file.
_NOT_FOR_USERS = re.compile(r"shipped until|shipped before|kept because|\brows? \d|\blent\b|\bsessions?\b|"
                            r"\bissue \d|\.carry\b|this machine|development machine", re.IGNORECASE)


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch):
    """Nested --flagfile paths are relative to the working directory: the repository root."""
    monkeypatch.chdir(REPO)


def flag_values(*args: str) -> flags.FlagValues:
    values = flags.FlagValues()
    config_lib.define_flags(values)
    values(["prog", *args])
    return values


def parse(path: pathlib.Path, *overrides: str) -> config_lib.Config:
    """What `python -m tf_stacksr.train --flagfile=configs/... [overrides]` trains (validated)."""
    return config_lib.from_flags(flag_values(f"--flagfile={path.relative_to(REPO)}", *overrides))


def header(path: pathlib.Path) -> list[str]:
    lines = path.read_text().splitlines()
    end = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    return lines[:end]


def flag_lines(path: pathlib.Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def includes(path: pathlib.Path) -> list[str]:
    return [line for line in flag_lines(path) if line.startswith("--flagfile=")]


def test_there_are_run_and_base_files():
    names = {p.stem for p in RUN_FILES}
    assert set(SHIPPED_16TO64) | set(SHIPPED_FROM) <= names
    assert BASE_FILES


@pytest.mark.parametrize("path", RUN_FILES, ids=lambda p: p.stem)
def test_parses_and_validates(path):
    cfg = parse(path)
    assert isinstance(cfg, config_lib.Config)
    cfg.validate()
    assert cfg.data_dir, "a run file names its data"


@pytest.mark.parametrize("path", RUN_FILES, ids=lambda p: p.stem)
def test_first_line_is_the_command_that_runs_it(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# "), f"{path.name}: the first line must be a comment holding its command"
    words = shlex.split(first[2:])
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):  # environment, e.g. KERAS_BACKEND=jax
        words.pop(0)
    assert words[:1] == ["python"], f"{path.name}: {first!r} is not a python command line"
    if words[1:3] == ["-m", "tf_stacksr.train"]:
        args = words[3:]
    else:
        script = words[1]
        assert script.startswith("tools/") and (REPO / script).is_file(), f"{path.name}: no script {script!r}"
        args = words[2:]
    assert f"--flagfile=configs/{path.name}" in args, f"{path.name}: its command runs another file: {first!r}"


@pytest.mark.parametrize("path", RUN_FILES, ids=lambda p: p.stem)
def test_one_run_folder_per_recipe(path):
    cfg = parse(path)
    assert cfg.model_dir == f"runs/{RESUMES.get(path.stem, path.stem)}"


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_layout_header_then_includes_then_flags(path):
    lines = path.read_text().splitlines()
    body = lines[len(header(path)):]
    assert header(path), f"{path.name}: no header comment"
    assert all(line.startswith("--") for line in body), f"{path.name}: after the header, only --flag lines"
    names = [line.split("=", 1)[0] for line in body]
    n_includes = len(includes(path))
    assert names[:n_includes] == ["--flagfile"] * n_includes, f"{path.name}: includes come first"
    own = names[n_includes:]
    assert len(own) == len(set(own)), f"{path.name}: a flag set twice"


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_includes_are_base_or_phase_files(path):
    for line in includes(path):
        target = REPO / line.split("=", 1)[1]
        assert target.is_file(), f"{path.name}: {line} names no file"
        assert target.parent in (CONFIGS, CONFIGS / "base"), f"{path.name}: {line} is outside configs/"
        if target.parent == CONFIGS:  # a run file only includes the phase it continues
            assert RESUMES.get(path.stem) == target.stem, f"{path.name}: includes the run file {target.name}"


@pytest.mark.parametrize("path", [p for p in ALL_FILES if includes(p)], ids=lambda p: str(p.relative_to(CONFIGS)))
def test_overrides_change_what_they_override(path):
    """A flag set both in a file and in what it includes must change the value (no dead copies)."""
    included = flag_values(*includes(path))
    full = flag_values(f"--flagfile={path.relative_to(REPO)}")
    for line in flag_lines(path)[len(includes(path)):]:
        name = line[2:].split("=", 1)[0]
        if included[name].present:
            assert full[name].value != included[name].value, f"{path.name}: {line} repeats the included value"


def test_every_base_file_is_included():
    included = {REPO / line.split("=", 1)[1] for path in ALL_FILES for line in includes(path)}
    assert set(BASE_FILES) <= included, f"unused base files: {sorted(set(BASE_FILES) - included)}"


@pytest.mark.parametrize("path", BASE_FILES, ids=lambda p: p.name)
def test_base_files_are_blocks_not_runs(path):
    assert not flag_values(f"--flagfile={path.relative_to(REPO)}")["model_dir"].present
    assert "python -m tf_stacksr.train" not in path.read_text().splitlines()[0]


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_header_speaks_to_a_user(path):
    for line in header(path):
        assert not _NOT_FOR_USERS.search(line), f"{path.name}: {line!r}"


@pytest.mark.parametrize("name", sorted(SHIPPED_16TO64))
def test_shipped_16to64_phases_hold_the_recorded_values(name):
    cfg = parse(CONFIGS / f"{name}.flags").to_dict()
    expected = SHIPPED_16TO64[name]
    assert {k: cfg[k] for k in expected} == expected


def test_gan_resume_is_phase_1_with_three_changes():
    phase1 = parse(CONFIGS / "celeba_16to64_gan.flags").to_dict()
    phase2 = parse(CONFIGS / "celeba_16to64_gan_resume.flags").to_dict()
    changed = {k: (phase1[k], phase2[k]) for k in phase1 if phase1[k] != phase2[k]}
    assert changed == {"train_steps": (7500, 10000), "adv_weight": (1.0, 3.0), "identity_weight": (20.0, 50.0)}
    assert phase2["model_dir"] == phase1["model_dir"]  # resumes phase 1's checkpoints


def test_phases_chain():
    l1 = parse(CONFIGS / "celeba_16to64_psnr.flags")
    psnr = parse(CONFIGS / "celeba_16to64_psnr_id.flags")
    gan = parse(CONFIGS / "celeba_16to64_gan.flags")
    assert psnr.init_from == l1.model_dir
    assert gan.init_from == "celeba_16to64_psnr"  # the shipped (packed) product of celeba_16to64_psnr_id
    for field in ("hr_size", "scale", "res_blocks", "res_convs", "res_kernel", "unet_filters", "unet_max_filters",
                  "up_filters", "norm", "residual"):  # --init_from needs the same generator
        assert getattr(l1, field) == getattr(psnr, field) == getattr(gan, field), field


def test_command_line_overrides_nested_files():
    cfg = parse(CONFIGS / "celeba_16to64_gan_resume.flags", "--adv_weight=2", "--model_dir=runs/other")
    assert (cfg.adv_weight, cfg.identity_weight, cfg.train_steps, cfg.model_dir) == (2.0, 50.0, 10000, "runs/other")


def _shipped_config(model: str) -> dict:
    path = pathlib.Path(tf_stacksr.__file__).parent / "weights" / model / "config.json"
    if not path.is_file():
        pytest.skip(f"no shipped {model}/config.json at {path}")
    return json.loads(path.read_text())


@pytest.mark.parametrize("name", sorted(SHIPPED_FROM))
def test_matches_the_shipped_config(name):
    model, may_differ = SHIPPED_FROM[name]
    shipped = _shipped_config(model)
    cfg = parse(CONFIGS / f"{name}.flags").to_dict()
    differ = {k: (cfg[k], shipped[k]) for k in cfg if k in shipped and k not in may_differ | HOW_IT_RUNS and cfg[k] != shipped[k]}
    assert not differ, f"{name}.flags vs the shipped {model}: (flagfile, shipped) {differ}"


def test_ffhq_header_packs_the_faces_it_trains_on():
    lines = header(CONFIGS / "ffhq_celeba_64to256_psnr.flags")
    train = shlex.split(lines[0][2:])
    faces = next(w.split("=", 1)[1] for w in train if w.startswith("--faces="))
    assert "--minutes=7.8" in train  # the shipped run's time budget
    packs = [shlex.split(line[2:]) for line in lines if line.startswith("# python tools/faces_to_npz.py ")]
    assert len(packs) == 1 and f"--output={faces}" in packs[0], "the header packs the --faces file it trains on"
    assert "--data=data/ffhq256,data/celeba256" in packs[0]
