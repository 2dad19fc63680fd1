"""Training state, the distributed train step, checkpointing and summaries.

One `tf.function` step updates every generator stage and every discriminator from one forward
pass. It is written for `tf.distribute` from the start: variables, optimisers and checkpoint are
created in `strategy.scope()`, per-example losses are averaged over the global batch, and the
input comes from `distribute_datasets_from_function`, so several replicas need no rewrite.

Resuming: the checkpoint holds the step, all networks and both optimisers (so the learning
rate schedule too); the data order is a pure function of (seed, example index) (see
`data.pipeline`) and DiffAugment's draws one of (seed, step, replica, call), so a restarted run
continues with exactly the batches and transforms it would have seen.
"""

from __future__ import annotations

import itertools
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tf_stacksr import config as config_lib
from tf_stacksr import files, models, visualize
from tf_stacksr.config import ARCHITECTURE_FIELDS, Config
from tf_stacksr.data import degrade, diff_augment, jitter, pairs, pipeline
from tf_stacksr.metrics import image as image_metrics
from tf_stacksr.models import layout, runs
from tf_stacksr.networks import build_discriminators, build_generator, run_stages
from tf_stacksr.networks.face_descriptor import FaceDescriptor
from tf_stacksr.networks.stacked import stage_name
from tf_stacksr.training import distribute, losses


class ConstantThenLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Constant learning rate, then linear decay to 0 at `total_steps` (pix2pix's schedule)."""

    def __init__(self, initial: float, decay_start: int, total_steps: int):
        self.initial, self.decay_start, self.total_steps = initial, decay_start, total_steps

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        span = float(max(self.total_steps - self.decay_start, 1))
        frac = tf.clip_by_value((step - self.decay_start) / span, 0.0, 1.0)
        return self.initial * (1.0 - frac)

    def get_config(self):
        return {"initial": self.initial, "decay_start": self.decay_start, "total_steps": self.total_steps}


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or inf; the last good checkpoint is left untouched."""


def check_resumable(cfg: Config, model_dir: str) -> None:
    """Refuse to resume a run whose saved architecture differs from the flags given now."""
    path = layout.config_path(model_dir)
    if not os.path.exists(path):
        return
    with open(path) as fh:
        saved = json.load(fh)
    diffs = [f"--{k}={getattr(cfg, k)!r} (saved run has {saved[k]!r})"
             for k in ARCHITECTURE_FIELDS if k in saved and saved[k] != getattr(cfg, k)]
    if diffs:
        raise ValueError(f"{model_dir} holds a run with another architecture: " + "; ".join(diffs)
                         + ". Use a new --model_dir or the saved flags.")


class Trainer:
    """Networks, optimisers, checkpoint and the train step of one run."""

    def __init__(self, cfg: Config, strategy: tf.distribute.Strategy | None = None):
        distribute.apply_precision_policy(cfg)
        self.strategy = strategy or distribute.make_strategy(cfg)
        # From here on cfg.batch_size is the global batch, whichever batch flag was given.
        self.cfg = cfg = cfg.replace(batch_size=distribute.global_batch_size(cfg, self.strategy))
        self.is_chief = distribute.is_chief(self.strategy)
        self.adversarial = cfg.adv_weight > 0
        self.d_augment = diff_augment.parse_policy(cfg.diff_augment)
        keras.utils.set_random_seed(cfg.seed)
        decay_start = int(cfg.lr_decay_start * cfg.train_steps)
        with self.strategy.scope():
            self.generator = build_generator(cfg)
            self.discriminators = build_discriminators(cfg) if self.adversarial else []
            self.g_opt = distribute.wrap_optimizer(cfg, keras.optimizers.Adam(
                ConstantThenLinearDecay(cfg.g_lr, decay_start, cfg.train_steps), beta_1=cfg.beta1))
            self.g_opt.build(self.generator.trainable_variables)
            self.d_vars = [v for d in self.discriminators for v in d.trainable_variables]
            self.d_opt = None
            if self.adversarial:
                self.d_opt = distribute.wrap_optimizer(cfg, keras.optimizers.Adam(
                    ConstantThenLinearDecay(cfg.d_lr, decay_start, cfg.train_steps), beta_1=cfg.beta1))
                self.d_opt.build(self.d_vars)
            self.descriptor = FaceDescriptor() if cfg.identity_weight > 0 else None
            self.teacher, self.teacher_flip = self._load_teacher(cfg)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            trackables = {"step": self.step, "generator": self.generator, "g_opt": self.g_opt}
            if self.adversarial:
                trackables.update(discriminators=self.discriminators, d_opt=self.d_opt)
            self.checkpoint = tf.train.Checkpoint(**trackables)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, distribute.checkpoint_write_dir(cfg.model_dir, self.strategy),
            max_to_keep=cfg.keep_checkpoints)
        self._compute = tf.function(self._losses_and_grads, jit_compile=cfg.jit_compile)

    @staticmethod
    def _load_teacher(cfg: Config) -> tuple[keras.Model | None, bool]:
        """--teacher's generator, built for this run's sizes, and whether it runs with its flip ensemble."""
        if not cfg.teacher:
            return None, False
        scale = runs.load_config(models.resolve(cfg.teacher)).scale
        if scale != cfg.scale:
            raise ValueError(f"--teacher={cfg.teacher}: it upscales x{scale}, this run x{cfg.scale}")
        teacher_cfg, teacher = models.load_generator(cfg.teacher, lr_size=cfg.lr_size)
        teacher.trainable = False
        return teacher, teacher_cfg.flip_ensemble

    # ---- checkpoints ---------------------------------------------------------------------
    def restore(self) -> int:
        """Restore the chief's newest readable checkpoint if there is one; returns the step to continue from.

        A latest checkpoint cut short by a kill or a full disk is skipped with a warning
        (`runs.restore_newest_readable`); training then redoes the steps since the one restored.
        """
        restored = runs.restore_newest_readable(
            distribute.chief_checkpoint_dir(self.cfg.model_dir),
            lambda prefix: self.checkpoint.restore(prefix).assert_existing_objects_matched())
        if restored:
            logging.info("Resumed from %s (step %d)", restored, int(self.step.numpy()))
        elif self.cfg.init_from:
            self.initialise_generator(self.cfg.init_from)
        return int(self.step.numpy())

    def initialise_generator(self, source: str) -> None:
        """Start from another model's generator (`models.assign_generator`); optimisers start fresh.

        `source` is a finished run, a packed model or a shipped model's name, so that a shipped
        model can be fine-tuned on one's own faces (discriminators are never shipped: they start fresh).
        """
        logging.info("Generator initialised from %s", models.assign_generator(source, self.generator, self.cfg))

    def save(self) -> str:
        """Every worker saves (it may take part in collectives); returns the chief's checkpoint path.

        A non-chief worker's copy goes to its temp folder, deleted right away.
        """
        written = self.manager.save(checkpoint_number=int(self.step.numpy()))
        distribute.remove_worker_temp_dir(self.cfg.model_dir, self.strategy)
        return os.path.join(distribute.chief_checkpoint_dir(self.cfg.model_dir), os.path.basename(written))

    # ---- the step ------------------------------------------------------------------------
    def _judge(self, disc, condition, image, call: int):
        """One discriminator call; with --diff_augment both inputs get the same fresh random transform.

        The transform is keyed on (seed, step, replica, call), so a resumed run repeats it.
        """
        if self.d_augment:
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            key = diff_augment.draw_key(self.cfg.seed, self.step, replica, call)
            condition, image = diff_augment.augment([condition, image], self.d_augment, key)
        return disc([condition, image], training=True)

    def _stage_adversarial(self, k: int, inputs, output, target, calls) -> tuple[list, list, dict]:
        """Stage k's weighted per-example adversarial terms (Eq. 1-8): (generator's, discriminator's, by name).

        D_k judges the stage output against its target, conditioned on input A area-downscaled to
        the stage size; at the LR stage (k = 0) it also judges the pair conditioned on the LR ground
        truth B (the paper's L_BB').
        """
        cfg, disc, name = self.cfg, self.discriminators[k], stage_name(k)
        pool = cfg.hr_size // cfg.stage_sizes[k]
        condition = tf.nn.avg_pool2d(inputs, pool, pool, "VALID")
        fake = self._judge(disc, condition, output, next(calls))
        real = self._judge(disc, condition, target, next(calls))
        g_adv, d_adv = losses.generator_adversarial_loss(fake), losses.discriminator_loss(real, fake)
        terms = {f"g_adv/{name}": g_adv, f"d_adv/{name}": d_adv}
        g, d = [cfg.adv_weight * g_adv], [d_adv]
        if k == 0 and cfg.bb_weight > 0:
            fake_bb = self._judge(disc, target, output, next(calls))
            real_bb = self._judge(disc, target, target, next(calls))
            g_bb, d_bb = losses.generator_adversarial_loss(fake_bb), losses.discriminator_loss(real_bb, fake_bb)
            terms.update({"g_bb/lr": g_bb, "d_bb/lr": d_bb})
            g.append(cfg.adv_weight * cfg.bb_weight * g_bb)
            d.append(cfg.bb_weight * d_bb)
        return g, d, terms

    def _losses(self, inputs, targets) -> tuple[tf.Tensor, tf.Tensor | None, dict]:
        """Per-example generator and discriminator totals (None without discriminators), and every term by name."""
        cfg = self.cfg
        outputs = [tf.cast(o, tf.float32) for o in self.generator(inputs, training=True)]
        calls = itertools.count()  # numbers this step's discriminator calls (`_judge`)
        per_example, g_total, d_total = {}, 0.0, 0.0
        for k, (output, target) in enumerate(zip(outputs, targets)):
            l1 = losses.l1_loss(output, target)
            per_example[f"l1/{stage_name(k)}"] = l1
            g_total += cfg.lambda_l1 * l1
            if self.adversarial:
                g_parts, d_parts, terms = self._stage_adversarial(k, inputs, output, target, calls)
                per_example.update(terms)
                for g_part, d_part in zip(g_parts, d_parts):
                    g_total, d_total = g_total + g_part, d_total + d_part
        if self.teacher is not None:
            taught = run_stages(self.teacher, inputs, self.teacher_flip)
            for k, (output, target) in enumerate(zip(outputs, taught)):
                distill = losses.l1_loss(output, tf.stop_gradient(target))
                per_example[f"distill/{stage_name(k)}"] = distill
                g_total += cfg.distill_weight * distill
        if self.descriptor is not None:
            identity = losses.identity_distance(self.descriptor, outputs[-1], targets[-1], cfg.identity_face_scale)
            per_example[f"identity/{stage_name(len(outputs) - 1)}"] = identity
            g_total += cfg.identity_weight * identity
        return g_total, (d_total if self.adversarial else None), per_example

    def _losses_and_grads(self, inputs, targets):
        avg = lambda per_example: tf.nn.compute_average_loss(per_example, global_batch_size=self.cfg.batch_size)  # noqa: E731
        with tf.GradientTape(persistent=True) as tape:
            g_total, d_total, per_example = self._losses(inputs, targets)
            terms = {k: avg(v) for k, v in per_example.items()}
            terms["g_total"] = g_loss = avg(g_total)
            g_scaled = self.g_opt.scale_loss(g_loss)
            if d_total is not None:
                terms["d_total"] = d_loss = avg(d_total)
                d_scaled = self.d_opt.scale_loss(d_loss)
        g_grads = tape.gradient(g_scaled, self.generator.trainable_variables)
        d_grads = tape.gradient(d_scaled, self.d_vars) if d_total is not None else []
        return terms, g_grads, d_grads

    def _replica_step(self, inputs, targets):
        terms, g_grads, d_grads = self._compute(inputs, targets)
        self.g_opt.apply_gradients(zip(g_grads, self.generator.trainable_variables))
        if self.adversarial:
            self.d_opt.apply_gradients(zip(d_grads, self.d_vars))
        return terms

    @tf.function
    def train_step(self, iterator):
        """One global step: every replica runs `_replica_step`; returns globally averaged terms."""
        inputs, targets = next(iterator)
        per_replica = self.strategy.run(self._replica_step, args=(inputs, targets))
        self.step.assign_add(1)
        return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}

    def dataset(self, start_step: int) -> tf.distribute.DistributedDataset:
        cfg = self.cfg
        return self.strategy.distribute_datasets_from_function(
            lambda ctx: pipeline.training_dataset(cfg.data_dir, cfg.stage_sizes, global_batch_size=cfg.batch_size,
                                                  seed=cfg.seed, start_step=start_step, input_context=ctx,
                                                  degradation=degrade.Degradation() if cfg.degradation == "realistic" else None,
                                                  jitter=jitter.Jitter(cfg.jitter_shift, cfg.jitter_zoom, cfg.jitter_crop)))

    def learning_rates(self) -> dict[str, float]:
        rates = {"lr/generator": float(self.g_opt.learning_rate)}
        if self.adversarial:
            rates["lr/discriminator"] = float(self.d_opt.learning_rate)
        return rates


def _format_eta(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def psnr(images, targets) -> float:
    """Mean PSNR (dB) of float [-1, 1] batches, as uint8 images (as evaluation scores them)."""
    return float(np.mean(image_metrics.psnr(pairs.float_to_uint8(images).numpy(), pairs.float_to_uint8(targets).numpy())))


def write_samples(trainer: Trainer, inputs, targets, step: int) -> float:
    """Fixed-batch validation: returns PSNR (dB) of the final stage, writes a PNG grid.

    Grid columns: input A | every stage output (nearest-upscaled) | ground truth.
    """
    cfg = trainer.cfg
    outputs = [tf.cast(o, tf.float32) for o in trainer.generator(inputs, training=False)]
    titles = ["input A", *(stage_name(k) for k in range(cfg.num_stages)), "truth"]
    image = visualize.grid([inputs, *outputs, targets[-1]], size=max(cfg.hr_size, 64), titles=titles)
    files.write_png(os.path.join(cfg.model_dir, "samples", f"step_{step:07d}.png"), image)
    tf.summary.image("samples", image[None], step=step)
    return psnr(outputs[-1], targets[-1])


def train(cfg: Config, strategy: tf.distribute.Strategy | None = None) -> dict[str, float]:
    """Train (or resume) until `cfg.train_steps`; returns the last logged loss terms."""
    cfg.check_data_dir()
    check_resumable(cfg, cfg.model_dir)
    trainer = Trainer(cfg, strategy)
    cfg = trainer.cfg
    os.makedirs(cfg.model_dir, exist_ok=True)
    if trainer.is_chief:
        config_lib.save_json(cfg, layout.config_path(cfg.model_dir))
    start = trainer.restore()
    if start >= cfg.train_steps:
        logging.info("Already at step %d of %d: nothing to do.", start, cfg.train_steps)
        return {}
    val_inputs, val_targets = next(iter(pipeline.eval_dataset(cfg.data_dir, cfg.stage_sizes, batch_size=cfg.num_samples,
                                                              limit=cfg.num_samples)))
    bicubic_psnr = psnr(val_inputs, val_targets[-1])  # the fixed batch's baseline, logged beside the model's
    iterator = iter(trainer.dataset(start))
    writer = (tf.summary.create_file_writer(os.path.join(cfg.model_dir, "train")) if trainer.is_chief
              else tf.summary.create_noop_writer())
    last: dict[str, float] = {}
    t_log, s_log = time.perf_counter(), start
    with writer.as_default():
        for step in range(start + 1, cfg.train_steps + 1):
            terms = {k: float(v) for k, v in trainer.train_step(iterator).items()}
            bad = [k for k, v in terms.items() if not np.isfinite(v)]
            if bad:
                raise NonFiniteLossError(
                    f"non-finite loss at step {step}: " + ", ".join(f"{k}={terms[k]}" for k in bad)
                    + f"; last good checkpoint: {tf.train.latest_checkpoint(distribute.chief_checkpoint_dir(cfg.model_dir))}")
            last = terms
            if step % cfg.log_every == 0 or step == cfg.train_steps:
                now = time.perf_counter()
                rate = (step - s_log) / max(now - t_log, 1e-9)
                for k, v in {**terms, **trainer.learning_rates(), "perf/images_per_sec": rate * cfg.batch_size}.items():
                    tf.summary.scalar(k, v, step=step)
                identity = [v for k, v in terms.items() if k.startswith("identity/")]
                distill = " ".join(f"{v:.4f}" for k, v in terms.items() if k.startswith("distill/"))
                logging.info("step %d/%d | %.1f img/s | g %.4f%s | L1 %s%s%s | ETA %s", step, cfg.train_steps,
                             rate * cfg.batch_size, terms["g_total"],
                             f" d {terms['d_total']:.4f}" if "d_total" in terms else "",
                             " ".join(f"{v:.4f}" for k, v in terms.items() if k.startswith("l1/")),
                             f" | distill {distill}" if distill else "",
                             f" | identity {identity[0]:.3f}" if identity else "",
                             _format_eta((cfg.train_steps - step) / max(rate, 1e-9)))
                t_log, s_log = now, step
            if trainer.is_chief and (step % cfg.sample_every == 0 or step == cfg.train_steps):
                val_psnr = write_samples(trainer, val_inputs, val_targets, step)
                tf.summary.scalar("val/psnr", val_psnr, step=step)
                logging.info("step %d | validation PSNR %.2f dB (bicubic input %.2f dB)", step, val_psnr, bicubic_psnr)
            if step % cfg.save_every == 0 or step == cfg.train_steps:
                logging.info("saved %s", trainer.save())
    writer.flush()
    return last
