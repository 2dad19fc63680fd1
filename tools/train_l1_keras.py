"""Train the PSNR-oriented (L1) generator with Keras 3 on the JAX or PyTorch backend.

  KERAS_BACKEND=jax python tools/train_l1_keras.py --flagfile=configs/ffhq_celeba_64to256_psnr.flags \
      --faces=data/faces256.npz --minutes=8

What it is for: training the L1 model on an accelerator host that has JAX or PyTorch but not
TensorFlow (`tf_stacksr.train` needs TensorFlow). The generator is plain Keras 3, so this script trains the same
`build_generator(cfg)` with `model.fit` under the JAX (or torch) backend, with the loss of
`train_lib` at --adv_weight=0: the sum over stages of lambda_l1 * L1, on the pairs of
`pairs.make_pairs` (`tf_stacksr.data.portable`, from a faces file of tools/faces_to_npz.py)
with a random horizontal flip. The run is given a time budget, not steps (for fixed-length
accelerator reservations):
Adam(g_lr, beta1) holds its rate for --lr_decay_start of the time, then decays it linearly to 0
at the deadline (updated every --steps_per_epoch steps).

Writes OUTPUT (default: --model_dir)/config.json and generator.npz (float32, every weight under its Keras
path): a packed model folder that `tf_stacksr` loads anywhere (and `tools/pack_model.py` packs
to int8), saved every --save_minutes and at the end; one progress line per epoch (img/s, L1
per stage, time left); and with --val_faces, the PSNR of the model and of bicubic on them.
A stopped run keeps its last save: continue it with --init_from=OUTPUT (a fresh schedule; the
optimiser state is not saved). The GAN phase and the identity term need `tf_stacksr.train`.
"""

from __future__ import annotations

import json
import os
import time

import keras
import numpy as np
from absl import app, flags

from tf_stacksr import config as config_lib
from tf_stacksr.data import portable
from tf_stacksr.metrics import image as image_metrics
from tf_stacksr.models import packed, zoo
from tf_stacksr.networks import build_generator

flags.DEFINE_string("faces", None, "Faces .npz from tools/faces_to_npz.py.")
flags.DEFINE_string("val_faces", None, "Optional held-out faces .npz: PSNR of model vs bicubic at the end.")
flags.DEFINE_string("output", None, "Folder for config.json and generator.npz; default: --model_dir.")
flags.DEFINE_float("minutes", 8.0, "Training time budget (the learning-rate schedule spans it).")
flags.DEFINE_float("save_minutes", 2.0, "Save the weights this often.")
flags.DEFINE_integer("steps_per_epoch", 100, "Steps between progress lines and learning-rate updates.")
flags.DEFINE_integer("workers", 6, "Threads making batches.")
flags.mark_flags_as_required(["faces"])
config_lib.define_flags()
FLAGS = flags.FLAGS


class Batches(keras.utils.PyDataset):
    """Random batches with a horizontal flip, each drawn with a generator seeded by (seed, epoch, i)."""

    def __init__(self, faces: np.ndarray, pairs: portable.Pairs, batch_size: int, steps: int, seed: int, workers: int):
        super().__init__(workers=workers, use_multiprocessing=False)
        self.faces, self.pairs, self.batch_size, self.steps, self.seed = faces, pairs, batch_size, steps, seed
        self.epoch = 0

    def __len__(self):
        return self.steps

    def on_epoch_end(self):
        self.epoch += 1

    def __getitem__(self, i):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        batch = self.faces[rng.integers(0, len(self.faces), self.batch_size)]
        flip = rng.random(self.batch_size) < 0.5
        batch[flip] = batch[flip, :, ::-1]
        return self.pairs(batch)


class Schedule(keras.callbacks.Callback):
    """Wall-clock learning-rate schedule, deadline, progress lines and periodic saves."""

    def __init__(self, cfg, budget_s: float, save_s: float, steps_per_epoch: int, output: str):
        super().__init__()
        self.cfg, self.budget, self.save_s, self.spe, self.output = cfg, budget_s, save_s, steps_per_epoch, output
        self.start = self.last_save = self.epoch_start = time.time()
        self.steps = 0

    def rate(self) -> float:
        frac = min((time.time() - self.start) / self.budget, 1.0)
        return self.cfg.g_lr * min(1.0, (1.0 - frac) / max(1.0 - self.cfg.lr_decay_start, 1e-6))

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate = self.rate()
        self.epoch_start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        self.steps += self.spe
        now = time.time()
        terms = " ".join(f"{v:.4f}" for k, v in sorted(logs.items()) if k.endswith("_loss") and k != "loss")
        print(f"step {self.steps} | {self.spe * self.cfg.batch_size / (now - self.epoch_start):.1f} img/s | "
              f"lr {float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)):.2e} | loss {logs['loss']:.4f} "
              f"| L1 {terms} | {now - self.start:.0f}s, left {max(self.budget - (now - self.start), 0):.0f}s", flush=True)
        done = now - self.start >= self.budget
        if done or now - self.last_save >= self.save_s:
            source = {"steps": self.steps, "seconds": round(now - self.start), "trainer": "tools/train_l1_keras.py",
                      "backend": keras.backend.backend(), "faces": FLAGS.faces}
            packed.pack(self.cfg, self.model, self.output, source=source, quantized=False)
            self.last_save = now
        if done:
            self.model.stop_training = True


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean PSNR in dB of float [-1, 1] images after uint8 rounding (as the evaluator sees them)."""
    q = lambda x: np.round(np.clip((np.asarray(x) + 1.0) * 127.5, 0, 255))  # noqa: E731
    return float(np.mean(image_metrics.psnr(q(a), q(b))))


def main(argv):
    del argv
    cfg = config_lib.from_flags()
    if cfg.adv_weight != 0 or cfg.identity_weight != 0:
        raise ValueError("tools/train_l1_keras.py trains the L1 model only: set --adv_weight=0 --identity_weight=0")
    output = FLAGS.output or cfg.model_dir
    t0 = time.time()
    faces, ops = portable.read_faces(FLAGS.faces)
    pairs = portable.Pairs(ops, faces.shape[1], cfg.stage_sizes)
    print(f"{len(faces)} faces of {faces.shape[1]} px decoded in {time.time() - t0:.1f}s; backend {keras.backend.backend()}", flush=True)
    keras.utils.set_random_seed(cfg.seed)
    model = build_generator(cfg)
    if cfg.init_from:
        packed.assign_weights(zoo.resolve(cfg.init_from), model)
    n = len(model.outputs)
    model.compile(optimizer=keras.optimizers.Adam(cfg.g_lr, beta_1=cfg.beta1), loss=["mae"] * n,
                  loss_weights=[cfg.lambda_l1] * n)
    budget = FLAGS.minutes * 60 - (time.time() - t0)
    schedule = Schedule(cfg, budget, FLAGS.save_minutes * 60, FLAGS.steps_per_epoch, output)
    data = Batches(faces, pairs, cfg.batch_size, FLAGS.steps_per_epoch, cfg.seed, FLAGS.workers)
    model.fit(data, epochs=10**6, callbacks=[schedule], verbose=0)
    if FLAGS.val_faces:
        val, val_ops = portable.read_faces(FLAGS.val_faces)
        inputs, targets = portable.Pairs(val_ops, val.shape[1], cfg.stage_sizes)(val)
        outputs = model.predict(inputs, batch_size=8, verbose=0)[-1]
        result = {"faces": len(val), "psnr_rgb_model": psnr(outputs, targets[-1]), "psnr_rgb_bicubic": psnr(inputs, targets[-1])}
        print("validation", json.dumps(result), flush=True)
        with open(os.path.join(output, "validation.json"), "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    app.run(main)
