"""tf.distribute, multi-worker checkpoint rules and mixed precision.

Strategies with several devices need the device list fixed before TensorFlow starts, so those
tests run in fresh Python processes; the precision tests run in this one and put the float32
policy back afterwards.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import FIXTURES, REPO, TINY_32, as_flags

from tf_stacksr.config import Config
from tf_stacksr.data import pipeline

TINY = dict(TINY_32, data_dir=str(FIXTURES / "celeba"))
TINY_FLAGS = as_flags(TINY)


def _run_python(code: str, timeout: int = 240, **env: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True,
                            text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO), **env})
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.mark.slow
def test_mirrored_on_two_devices_matches_one_device():
    """Same global batch and seed: 2 replicas (half the batch each) compute the one-device step.

    The summed replica gradients equal the one-device gradients only if every replica divides
    its loss by the *global* batch (dividing by the per-replica batch doubles them); this is
    checked directly because Adam, being scale-invariant, would hide a doubled gradient in the
    weights. `norm='none'`: a conv bias followed by instance norm has an analytically zero
    gradient, and Adam turns the round-off in it into full +-lr steps on either side.
    """
    out = _run_python(f"""
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from tf_stacksr.config import Config
        from tf_stacksr.training.train_lib import Trainer

        def run(strategy):
            trainer = Trainer(Config(**{TINY!r}, model_dir="unused", norm="none"), strategy)
            variables = trainer.generator.trainable_variables + trainer.d_vars
            start = [v.numpy() for v in variables]
            _, g_grads, d_grads = strategy.run(trainer._compute, args=next(iter(trainer.dataset(0))))
            grads = [strategy.reduce("SUM", g, axis=None).numpy() for g in g_grads + d_grads]
            iterator = iter(trainer.dataset(0))
            losses = [float(trainer.train_step(iterator)["g_total"]) for _ in range(3)]
            return start, grads, losses, [v.numpy() for v in variables]

        one = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
        mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        assert mirrored.num_replicas_in_sync == 2
        two = run(mirrored)
        assert all(np.array_equal(a, b) for a, b in zip(one[0], two[0])), "initial weights differ"
        biggest = lambda pairs: max(float(np.max(np.abs(a - b))) for a, b in pairs)
        print("RESULT", biggest(zip(one[3], one[0])),
              biggest(zip(one[1], two[1])) / max(float(np.max(np.abs(g))) for g in one[1]),
              biggest(zip(one[2], two[2])) / max(one[2]), biggest(zip(one[3], two[3])))
    """)
    moved, grad_diff, loss_diff, weight_diff = map(float, out.stdout.split("RESULT")[1].split())
    assert moved > 1e-4, "training did not move the weights: the comparison would prove nothing"
    assert grad_diff < 1e-5, f"summed replica gradients differ from one device's by {grad_diff:.3g} (of the largest)"
    assert loss_diff < 1e-5, f"mirrored and one-device losses differ by {loss_diff:.3g} (relative)"
    assert weight_diff < 1e-5, f"mirrored and one-device weights differ by {weight_diff:.3g} after 3 steps"


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _train_two_workers(model_dir: str, train_steps: int, log_dir) -> list[str]:
    """Run `python -m tf_stacksr.train --strategy=multi_worker` as workers 0 and 1; returns their logs.

    Logs go to files, not pipes: a worker blocked on a full pipe would stall the other one in
    its next collective.
    """
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    flags = TINY_FLAGS + [f"--model_dir={model_dir}", f"--train_steps={train_steps}", "--strategy=multi_worker",
                          "--save_every=2", "--log_every=1", "--sample_every=100",
                          "--diff_augment=color,translation,cutout"]  # its draws are keyed per replica
    log_paths = [log_dir / f"worker{i}_to_step{train_steps}.log" for i in range(2)]
    procs = []
    for i, log_path in enumerate(log_paths):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        with open(log_path, "w") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "tf_stacksr.train", *flags], cwd=REPO, stdout=log,
                                          stderr=subprocess.STDOUT,
                                          env={**os.environ, "PYTHONPATH": str(REPO), "TF_CONFIG": tf_config}))
    try:
        codes = [proc.wait(timeout=240) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    logs = [path.read_text() for path in log_paths]
    for i, (code, log) in enumerate(zip(codes, logs)):
        assert code == 0, f"worker {i} failed:\n{log[-4000:]}"
    return logs


@pytest.mark.slow
def test_multi_worker_trains_saves_on_chief_and_resumes(tmp_path):
    model_dir = str(tmp_path / "run")
    _train_two_workers(model_dir, train_steps=2, log_dir=tmp_path)
    assert sorted(os.listdir(model_dir)) == ["checkpoints", "config.json", "samples", "train"], \
        "a non-chief worker left its temp folder (or wrote into the chief's files)"
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith("ckpt-2")

    logs = _train_two_workers(model_dir, train_steps=3, log_dir=tmp_path)  # both workers resume from the chief's ckpt-2
    for log in logs:
        assert "Resumed from" in log and "ckpt-2 (step 2)" in log, log[-3000:]
    assert not any(name.startswith("workertemp") for name in os.listdir(model_dir))

    from tf_stacksr.training.train_lib import Trainer
    trainer = Trainer(Config(**TINY, model_dir=model_dir, strategy="one_device"))
    assert trainer.restore() == 3


@pytest.fixture
def restore_float32_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def _one_batch(cfg: Config):
    return next(iter(pipeline.training_dataset(cfg.data_dir, cfg.stage_sizes, global_batch_size=cfg.batch_size)))


def _fixed_batches(trainer, inputs, targets):
    ds = tf.data.Dataset.from_tensors((inputs, targets)).repeat()
    return iter(trainer.strategy.experimental_distribute_dataset(ds))


@pytest.mark.slow
def test_mixed_bfloat16_trains_with_finite_losses(tmp_path, restore_float32_policy):
    from tf_stacksr.training.train_lib import Trainer
    trainer = Trainer(Config(**TINY, model_dir=str(tmp_path), strategy="one_device", mixed_precision="mixed_bfloat16"))
    assert trainer.generator.get_layer("g1_down0_conv").compute_dtype == "bfloat16"
    assert trainer.generator.weights[0].dtype == "float32"  # master weights stay float32
    iterator = iter(trainer.dataset(0))
    for _ in range(3):
        terms = {k: float(v) for k, v in trainer.train_step(iterator).items()}
        assert all(np.isfinite(v) for v in terms.values()), terms


@pytest.mark.slow
def test_mixed_float16_skips_a_non_finite_step(tmp_path, restore_float32_policy):
    """A NaN in the batch makes every gradient NaN: the step must leave the weights alone."""
    from tf_stacksr.training.train_lib import Trainer
    cfg = Config(**TINY, model_dir=str(tmp_path), strategy="one_device", mixed_precision="mixed_float16")
    trainer = Trainer(cfg)
    assert isinstance(trainer.g_opt, keras.optimizers.LossScaleOptimizer)
    inputs, targets = _one_batch(cfg)
    all_vars = lambda: [v.numpy() for v in trainer.generator.weights + trainer.d_vars]
    before, scales = all_vars(), (float(trainer.g_opt.scale_loss(1.0)), float(trainer.d_opt.scale_loss(1.0)))

    poisoned = tf.tensor_scatter_nd_update(inputs, [[0, 0, 0, 0]], [np.nan])
    terms = trainer.train_step(_fixed_batches(trainer, poisoned, targets))
    assert not np.isfinite(float(terms["g_total"]))
    after = all_vars()
    assert all(np.array_equal(a, b) for a, b in zip(before, after)), "a non-finite step changed the weights"
    assert float(trainer.g_opt.scale_loss(1.0)) == scales[0] / 2
    assert float(trainer.d_opt.scale_loss(1.0)) == scales[1] / 2

    trainer.train_step(_fixed_batches(trainer, inputs, targets))  # a finite step does update them
    assert not all(np.array_equal(a, b) for a, b in zip(after, all_vars()))


class _Replicas:
    """Stands in for a strategy where only the replica count matters."""

    def __init__(self, n: int):
        self.num_replicas_in_sync = n


def test_global_batch_from_either_batch_flag():
    from tf_stacksr.training.distribute import global_batch_size
    assert global_batch_size(Config(**TINY), _Replicas(2)) == 4
    assert global_batch_size(Config(**{**TINY, "per_replica_batch_size": 3}), _Replicas(2)) == 6
    with pytest.raises(ValueError, match="--batch_size=4: expected a multiple of the 3 replicas"):
        global_batch_size(Config(**TINY), _Replicas(3))
    with pytest.raises(ValueError, match="--per_replica_batch_size=-1"):
        Config(**{**TINY, "per_replica_batch_size": -1})
