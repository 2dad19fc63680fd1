"""Training: it learns, it resumes exactly after a kill, and it stops on non-finite losses."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES, REPO, TINY, as_flags, tiny_config

from tf_stacksr import config as config_lib
from tf_stacksr.models import packed, runs
from tf_stacksr.training import train_lib

TINY_FLAGS = as_flags(dict(TINY, lr_decay_start=1.0, data_dir=FIXTURES / "celeba"))


def run_train(model_dir, *flags, timeout=300):
    env = {**os.environ, "TF_DETERMINISTIC_OPS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [sys.executable, "-m", "tf_stacksr.train", f"--model_dir={model_dir}", *TINY_FLAGS, *flags]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


def checkpoint_values(model_dir, step):
    """Every saved tensor (networks, optimiser moments, step) except the save counter."""
    reader = tf.train.load_checkpoint(os.path.join(model_dir, "checkpoints", f"ckpt-{step}"))
    names = [n for n in reader.get_variable_to_shape_map() if "save_counter" not in n and "OBJECT_GRAPH" not in n]
    return {n: reader.get_tensor(n) for n in names}


@pytest.mark.slow
def test_overfits_a_fixed_small_batch(tmp_path):
    """A few hundred full-GAN steps on 4 real faces at least halve the final stage's L1."""
    data = tmp_path / "four"
    data.mkdir()
    for name in sorted(os.listdir(FIXTURES / "celeba"))[:4]:
        shutil.copy(FIXTURES / "celeba" / name, data / name)
    cfg = tiny_config(tmp_path / "run", data_dir=data, unet_filters=16, up_filters=16, res_blocks=2, g_lr=1e-3,
                      lr_decay_start=1.0, train_steps=400)
    trainer = train_lib.Trainer(cfg)
    iterator = iter(trainer.dataset(0))
    history = [float(trainer.train_step(iterator)["l1/x4"]) for _ in range(cfg.train_steps)]
    first, last = np.mean(history[:5]), np.mean(history[-20:])
    assert last < 0.5 * first, (first, last)
    assert trainer.step.numpy() == cfg.train_steps


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_exactly(tmp_path):
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    env = {**os.environ, "TF_DETERMINISTIC_OPS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    augment = "--diff_augment=color,translation,cutout"  # its draws must resume exactly too
    cmd = [sys.executable, "-m", "tf_stacksr.train", f"--model_dir={killed}", *TINY_FLAGS, augment, "--train_steps=100000",
           "--save_every=2", "--sample_every=100000", "--log_every=100000"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while tf.train.latest_checkpoint(str(killed / "checkpoints")) is None:
            assert proc.poll() is None and time.time() < deadline, "training died before its first checkpoint"
            time.sleep(0.05)
        time.sleep(0.3)  # let it get into the middle of later steps/saves
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    latest = tf.train.latest_checkpoint(str(killed / "checkpoints"))
    k = int(latest.rsplit("-", 1)[1])
    log = run_train(killed, augment, f"--train_steps={k + 1}", "--save_every=1000")
    assert f"(step {k})" in log and "Resumed" in log
    run_train(straight, augment, f"--train_steps={k + 1}", "--save_every=1000")
    resumed, uninterrupted = checkpoint_values(killed, k + 1), checkpoint_values(straight, k + 1)
    assert resumed.keys() == uninterrupted.keys() and len(resumed) > 10
    for name in resumed:
        np.testing.assert_array_equal(resumed[name], uninterrupted[name], err_msg=name)


@pytest.mark.slow
def test_cli_writes_checkpoints_events_and_samples(tmp_path):
    log = run_train(tmp_path, "--train_steps=4", "--log_every=2", "--sample_every=2", "--save_every=2")
    assert "img/s" in log and "ETA" in log and "validation PSNR" in log
    first_progress = log.index("step 2/4")
    for start_up in ("16->64 px (x4", "Loading TensorFlow", "first step compiles"):  # nothing silent for minutes
        assert -1 < log.find(start_up) < first_progress, start_up
    assert sorted(os.listdir(tmp_path / "samples")) == ["step_0000002.png", "step_0000004.png"]
    assert any(n.startswith("events.out.tfevents") for n in os.listdir(tmp_path / "train"))
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-4")
    png = tf.io.decode_png(tf.io.read_file(str(tmp_path / "samples" / "step_0000004.png")))
    assert png.shape[0] > 2 * 64 and png.shape[1] > 5 * 64  # 2 faces x (A, 3 stages, truth)
    assert "Already at step 4" in run_train(tmp_path, "--train_steps=4")


@pytest.mark.slow
def test_architecture_change_refuses_to_resume(tmp_path):
    run_train(tmp_path, "--train_steps=1")
    with pytest.raises(ValueError, match="--up_filters=16"):
        train_lib.check_resumable(tiny_config(tmp_path, up_filters=16), str(tmp_path))


@pytest.mark.slow
def test_non_finite_loss_stops_with_step_and_term(tmp_path):
    train_lib.train(tiny_config(tmp_path, train_steps=2, save_every=2, sample_every=100))
    exploding = tiny_config(tmp_path, train_steps=50, save_every=2, sample_every=100, g_lr=1e30, d_lr=1e30)
    with pytest.raises(train_lib.NonFiniteLossError, match=r"non-finite loss at step \d+: .*=(nan|inf)") as err:
        train_lib.train(exploding)
    failed_step = int(str(err.value).split("step ")[1].split(":")[0])
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    saved_step = int(latest.rsplit("-", 1)[1])
    assert saved_step < failed_step
    assert str(latest) in str(err.value)
    for name, value in checkpoint_values(tmp_path, saved_step).items():
        assert np.all(np.isfinite(value)), name


@pytest.mark.slow
def test_init_from_copies_generator_only(tmp_path):
    psnr_cfg = tiny_config(tmp_path / "psnr", adv_weight=0.0, train_steps=2, save_every=2, sample_every=100)
    train_lib.train(psnr_cfg)
    gan = train_lib.Trainer(tiny_config(tmp_path / "gan", init_from=str(tmp_path / "psnr")))
    assert gan.restore() == 0
    source = train_lib.Trainer(psnr_cfg)
    source.restore()
    for a, b in zip(gan.generator.weights, source.generator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(gan.g_opt.iterations.numpy()) == 0
    with pytest.raises(ValueError, match="--up_filters"):
        train_lib.Trainer(tiny_config(tmp_path / "other", up_filters=16, init_from=str(tmp_path / "psnr"))).restore()


@pytest.mark.slow
def test_init_from_a_packed_model(tmp_path):
    cfg = tiny_config(tmp_path / "source")
    source = train_lib.Trainer(cfg)
    rng = np.random.default_rng(0)
    for weight in source.generator.weights:
        weight.assign(weight.numpy() + rng.normal(0, 0.1, weight.shape).astype(np.float32))
    folder = packed.pack(cfg, source.generator, str(tmp_path / "packed"))
    _, expected = packed.load(folder)  # the dequantised weights
    tuned = train_lib.Trainer(tiny_config(tmp_path / "tuned", init_from=folder))
    assert tuned.restore() == 0
    for a, b in zip(tuned.generator.weights, expected.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(ValueError, match="--up_filters"):
        train_lib.Trainer(tiny_config(tmp_path / "other", up_filters=16, init_from=folder)).restore()
    # a shipped model's name resolves to its packed folder (here: refused, the tiny net differs)
    with pytest.raises(ValueError, match="weights/celeba_16to64_psnr: another generator architecture"):
        train_lib.Trainer(tiny_config(tmp_path / "named", init_from="celeba_16to64_psnr")).restore()


def test_init_from_a_model_with_other_residual_structures(tmp_path):
    """A stage with fewer residual structures than the source's takes its first ones, layer by
    layer; a stage with more starts its extra ones as identities, so the run's generator then
    computes exactly the source's function."""
    cfg = tiny_config(tmp_path / "source", res_blocks=3)
    source = train_lib.Trainer(cfg)
    rng = np.random.default_rng(0)
    for weight in source.generator.weights:
        weight.assign(rng.normal(0, 0.1, weight.shape).astype(np.float32))
    folder = packed.pack(cfg, source.generator, str(tmp_path / "packed"), quantized=False)
    lean = train_lib.Trainer(tiny_config(tmp_path / "lean", res_blocks=1, init_from=folder))
    assert lean.restore() == 0
    source_weights = {w.path: w.numpy() for w in source.generator.weights}
    assert len(lean.generator.weights) < len(source_weights)
    for weight in lean.generator.weights:
        assert "res1" not in weight.path and "res2" not in weight.path
        np.testing.assert_array_equal(weight.numpy(), source_weights[weight.path])

    grown = train_lib.Trainer(tiny_config(tmp_path / "grown", stage_res_blocks="5,3", init_from=folder))
    assert grown.restore() == 0
    for weight in grown.generator.weights:
        if weight.path in source_weights:
            np.testing.assert_array_equal(weight.numpy(), source_weights[weight.path])
        else:
            assert weight.path.startswith(("g2_res3", "g2_res4"))
    blurry = rng.uniform(-1, 1, (2, cfg.hr_size, cfg.hr_size, 3)).astype(np.float32)
    for ours, theirs in zip(grown.generator(blurry), source.generator(blurry)):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5)
    assert np.abs(grown.generator.get_layer("g2_res4_conv0").kernel.numpy()).max() > 0  # trainable, not dead


@pytest.mark.slow
def test_distillation_term_is_l1_to_the_teachers_flip_ensemble(tmp_path):
    """The per-stage distill term is the mean absolute difference between the generator's
    outputs and the teacher's flip-ensembled ones, computed here independently in NumPy."""
    cfg = tiny_config(tmp_path / "teacher")
    teacher = train_lib.Trainer(cfg)
    rng = np.random.default_rng(1)
    for weight in teacher.generator.weights:
        weight.assign(weight.numpy() + rng.normal(0, 0.05, weight.shape).astype(np.float32))
    folder = packed.pack(cfg.replace(flip_ensemble=True), teacher.generator, str(tmp_path / "packed"), quantized=False)
    student = train_lib.Trainer(tiny_config(tmp_path / "student", teacher=folder, distill_weight=0.5))
    assert student.teacher_flip
    inputs, targets = next(iter(student.dataset(0)))
    _, _, terms = student._losses(inputs, targets)
    x = inputs.numpy()
    plain = [o.numpy() for o in teacher.generator(x, training=False)]
    mirrored = [o.numpy()[:, :, ::-1] for o in teacher.generator(x[:, :, ::-1], training=False)]
    outputs = [o.numpy() for o in student.generator(x, training=True)]
    for k, name in enumerate(["lr", "x2", "x4"]):
        expected = np.abs(outputs[k] - (plain[k] + mirrored[k]) / 2).mean(axis=(1, 2, 3))
        np.testing.assert_allclose(terms[f"distill/{name}"].numpy(), expected, rtol=1e-4, atol=1e-6)
    other = tiny_config(tmp_path / "x2", hr_size=32, scale=2)
    x2_teacher = packed.pack(other, train_lib.Trainer(other).generator, str(tmp_path / "x2_packed"))
    with pytest.raises(ValueError, match="x2, this run x4"):
        train_lib.Trainer(tiny_config(tmp_path / "s", teacher=x2_teacher, distill_weight=1.0))


@pytest.mark.slow
def test_realistic_degradation_changes_only_the_inputs(tmp_path):
    clean = train_lib.Trainer(tiny_config(tmp_path / "a"))
    rough = train_lib.Trainer(tiny_config(tmp_path / "b", degradation="realistic"))
    (x_clean, t_clean), (x_rough, t_rough) = next(iter(clean.dataset(0))), next(iter(rough.dataset(0)))
    for a, b in zip(t_clean, t_rough):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert np.abs(x_clean.numpy() - x_rough.numpy()).mean() > 1e-3


@pytest.mark.slow
def test_identity_term_joins_the_generator_loss(tmp_path):
    """g_total = lambda * sum of stage L1 + identity_weight * identity distance (PSNR model, no GAN terms)."""
    trainer = train_lib.Trainer(tiny_config(tmp_path, adv_weight=0.0, lambda_l1=2.0, identity_weight=0.5))
    terms = {k: float(v) for k, v in trainer.train_step(iter(trainer.dataset(0))).items()}
    l1 = sum(v for k, v in terms.items() if k.startswith("l1/"))
    assert terms["identity/x4"] > 0.05  # an untrained generator's faces are far from the targets'
    np.testing.assert_allclose(terms["g_total"], 2.0 * l1 + 0.5 * terms["identity/x4"], rtol=1e-5)
    plain = train_lib.Trainer(tiny_config(tmp_path / "plain", adv_weight=0.0))
    assert not any(k.startswith("identity/") for k in plain.train_step(iter(plain.dataset(0))))


@pytest.mark.slow
def test_diff_augment_reaches_the_discriminators_only(tmp_path):
    """Same weights and batch: DiffAugment changes the adversarial terms, never the L1 terms."""
    plain = train_lib.Trainer(tiny_config(tmp_path / "plain"))
    augmented = train_lib.Trainer(tiny_config(tmp_path / "aug", diff_augment="color,translation,cutout"))
    inputs, targets = next(iter(plain.dataset(0)))
    tf.random.set_seed(0)
    a, _, _ = plain._losses_and_grads(inputs, targets)
    b, _, _ = augmented._losses_and_grads(inputs, targets)
    for name in a:
        if name.startswith("l1/"):
            np.testing.assert_allclose(float(a[name]), float(b[name]), rtol=1e-6)
    assert abs(float(a["d_adv/x4"]) - float(b["d_adv/x4"])) > 1e-4


def two_checkpoints(model_dir) -> train_lib.Trainer:
    """A run folder with checkpoints at steps 2 and 4 (no training: only the step differs)."""
    cfg = tiny_config(model_dir, adv_weight=0.0)
    trainer = train_lib.Trainer(cfg)
    os.makedirs(model_dir, exist_ok=True)
    config_lib.save_json(cfg, os.path.join(model_dir, "config.json"))
    for step in (2, 4):
        trainer.step.assign(step)
        trainer.save()
    return trainer


def truncate(model_dir, step: int) -> None:
    """What a kill or a full disk during a save leaves: the checkpoint's data cut short."""
    for name in os.listdir(os.path.join(model_dir, "checkpoints")):
        if name.startswith(f"ckpt-{step}.data"):
            with open(os.path.join(model_dir, "checkpoints", name), "r+b") as fh:
                fh.truncate(100)


def test_resume_falls_back_from_an_unreadable_latest_checkpoint(tmp_path, caplog):
    model_dir = str(tmp_path / "run")
    cfg = two_checkpoints(model_dir).cfg
    truncate(model_dir, 4)
    with caplog.at_level("WARNING"):
        assert train_lib.Trainer(cfg).restore() == 2
    assert "ckpt-4" in caplog.text and "cannot be read" in caplog.text
    # its files gone while the checkpoint list still names it: the same (this used to restart at step 0)
    for name in os.listdir(os.path.join(model_dir, "checkpoints")):
        if name.startswith("ckpt-4."):
            os.remove(os.path.join(model_dir, "checkpoints", name))
    assert train_lib.Trainer(cfg).restore() == 2
    truncate(model_dir, 2)
    with pytest.raises(runs.UnreadableCheckpointError) as err:
        train_lib.Trainer(cfg).restore()
    message = str(err.value)
    assert os.path.join(model_dir, "checkpoints") in message and "ckpt-2" in message
    assert "to start over" in message and "--model_dir" in message


@pytest.mark.slow
def test_cli_resumes_past_a_truncated_checkpoint(tmp_path):
    run_train(tmp_path, "--train_steps=4", "--save_every=2", "--sample_every=100", "--log_every=100")
    truncate(tmp_path, 4)
    log = run_train(tmp_path, "--train_steps=6", "--save_every=2", "--sample_every=100", "--log_every=100")
    assert "ckpt-4" in log and "cannot be read" in log and "(step 2)" in log
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-6")
    assert len(checkpoint_values(tmp_path, 4)) > 10  # rewritten on the way
