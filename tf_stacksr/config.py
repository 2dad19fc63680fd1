"""Every training option in one frozen object, and the absl flags generated from it.

Each option is declared once, as a dataclass field whose metadata holds the flag help; the
flags are generated from the fields, so a flagfile, a test and a notebook all build the same
`Config` and go through the same validation. Validation errors name the flag and what was
expected, so a bad flagfile fails before any model or data is touched.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

from absl import flags

_NORMS = ("instance", "batch", "none")
_STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
_PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
_DEGRADATIONS = ("bicubic", "realistic")
MIN_JITTER_CROP = 0.3  # --jitter_crop: tighter crops would enlarge a face more than 3x


def option(default: Any, help_text: str, **extra: Any) -> Any:
    """A dataclass field that is also a command-line flag: its default, its help, `choices`, and
    `group`, the section of `--help` that lists it (what the option is for)."""
    return dataclasses.field(default=default, metadata={"help": help_text, **extra})


def data_folders(data_dir: str) -> list[str]:
    """The folders `--data_dir` names: one, or several comma-separated (to pool datasets)."""
    return [folder.strip() for folder in data_dir.split(",") if folder.strip()]


@dataclasses.dataclass(frozen=True)
class Config:
    """Options of one training run (model, losses, optimisation, data and bookkeeping)."""

    # Data.
    data_dir: str = option("", "Folder of face images (searched recursively) or of prepared TFRecord shards; several folders of one kind, comma-separated, pool their training faces (validation samples come from the first).", group="data")
    hr_size: int = option(64, "High-resolution (output) size in pixels; the input A is the LR face bicubic-upscaled to this size.", group="data")
    scale: int = option(4, "Super-resolution factor, a power of two >= 2; one upsampling stage per factor of 2.", group="data")
    degradation: str = option("bicubic", "How training LR inputs are made: bicubic (the paper) or realistic (random blur, noise and JPEG; see docs/data.md).", choices=_DEGRADATIONS, group="data")
    jitter_shift: float = option(0.0, "Training augmentation: shift each face by a random sub-pixel amount up to this many HR pixels per axis, so every epoch gives new LR inputs (see tf_stacksr/data/jitter.py); 0 is off.", group="data")
    jitter_zoom: float = option(0.0, "Training augmentation: zoom each face by a random factor in 1 +- this fraction; 0 is off.", group="data")
    jitter_crop: float = option(1.0, "Training augmentation for other aligners' framings: cut each prepared face to a random centred square of between this fraction and all of its side, at its prepared resolution, before resizing it to the HR size; faces prepared at --face_scale s then span s to s / this of the crop (see tf_stacksr/data/jitter.py); 1 is off.", group="data")
    # Generator.
    res_blocks: int = option(4, "m: residual structures per upsampling stage (paper: 4).", group="generator")
    stage_res_blocks: str = option("", "m for each upsampling stage instead, comma-separated from the x2 stage up, e.g. 6,2: more structures where the features are small and cheap (a 16 px stage costs a quarter of a 32 px one); empty: --res_blocks at every stage.", group="generator")
    res_convs: int = option(4, "n: convolutions in each residual structure (paper: 4).", group="generator")
    res_kernel: int = option(1, "Kernel size of the residual convolutions (paper: 1).", group="generator")
    unet_filters: int = option(64, "Filters of the first U-Net level; doubled per level up to unet_max_filters.", group="generator")
    unet_max_filters: int = option(512, "Cap on U-Net filters.", group="generator")
    up_filters: int = option(64, "Feature width inside the upsampling stages.", group="generator")
    norm: str = option("instance", "Normalisation in G1 and the discriminators: " + "|".join(_NORMS) + ".", choices=_NORMS, group="generator")
    residual: bool = option(True, "Each stage predicts a correction added to the area-downscaled input A (ours); false gives the paper's plain tanh outputs.", group="generator")
    # Discriminators and losses.
    disc_filters: int = option(64, "Filters of the first PatchGAN layer.", group="discriminators and losses")
    lambda_l1: float = option(100.0, "Weight of the per-stage L1 term (paper's lambda).", group="discriminators and losses")
    adv_weight: float = option(1.0, "Weight of the adversarial terms; 0 trains the PSNR-oriented model (L1 only, no discriminators updated).", group="discriminators and losses")
    bb_weight: float = option(1.0, "Weight of the paper's L_BB' term (stage-1 pair conditioned on the LR ground truth).", group="discriminators and losses")
    identity_weight: float = option(0.0, "Weight of the identity term (ours): distance of dlib face descriptors of the final output and the ground truth; 0 turns it off.", group="discriminators and losses")
    teacher: str = option("", "Knowledge distillation: a model (shipped name, packed folder or training run) of the same scale whose outputs, with its own flip-ensemble setting, the generator also learns to match at every stage, e.g. to fold a teacher's flip ensemble into a leaner --res_blocks (start it with --init_from=the teacher); needs --distill_weight > 0.", group="discriminators and losses")
    distill_weight: float = option(0.0, "Weight of the per-stage L1 distance to --teacher's outputs; 0 turns it off.", group="discriminators and losses")
    diff_augment: str = option("", "DiffAugment policies applied alike to each discriminator's condition and image, comma-separated from color, translation, cutout (see tf_stacksr/data/diff_augment.py); empty is off.", group="discriminators and losses")
    identity_face_scale: float = option(0.7, "The --face_scale the training faces were prepared with, which places dlib's descriptor chip for the identity term.", group="discriminators and losses")
    # Inference.
    flip_ensemble: bool = option(False, "Inference (evaluate, export, enhance): also super-resolve the mirrored face and average the two (2x compute; +0.2 dB PSNR on CelebA). Training ignores it.", group="inference")
    # Optimisation.
    batch_size: int = option(16, "Global batch size (split over replicas); ignored when --per_replica_batch_size is set.", group="optimisation")
    per_replica_batch_size: int = option(0, "Batch size per replica; when > 0 the global batch is this times the replicas in sync (all workers).", group="optimisation")
    g_lr: float = option(2e-4, "Generator Adam learning rate.", group="optimisation")
    d_lr: float = option(2e-4, "Discriminator Adam learning rate.", group="optimisation")
    beta1: float = option(0.5, "Adam beta1.", group="optimisation")
    lr_decay_start: float = option(0.5, "Fraction of train_steps after which both learning rates decay linearly to 0.", group="optimisation")
    train_steps: int = option(10000, "Total training steps.", group="optimisation")
    seed: int = option(0, "Seed of weights, data order and augmentation.", group="optimisation")
    init_from: str = option("", "model_dir of a finished run, packed model or shipped model name whose generator weights start this run (e.g. the GAN model from the PSNR model, as ESRGAN); ignored when resuming.", group="optimisation")
    # Bookkeeping.
    model_dir: str = option("runs/default", "Where checkpoints, TensorBoard events and sample grids go.", group="bookkeeping")
    save_every: int = option(500, "Checkpoint every this many steps (and at the end).", group="bookkeeping")
    keep_checkpoints: int = option(3, "How many recent checkpoints to keep.", group="bookkeeping")
    log_every: int = option(50, "Progress line and scalar summaries every this many steps.", group="bookkeeping")
    sample_every: int = option(500, "Validation PSNR and a PNG sample grid every this many steps.", group="bookkeeping")
    num_samples: int = option(8, "Faces in the fixed validation batch used for samples and PSNR.", group="bookkeeping")
    # Distribution and precision (decided in tf_stacksr.training.distribute).
    strategy: str = option("auto", "Distribution strategy: " + "|".join(_STRATEGIES) + ".", choices=_STRATEGIES, group="distribution and precision")
    mixed_precision: str = option("float32", "Precision policy: " + "|".join(_PRECISIONS) + ".", choices=_PRECISIONS, group="distribution and precision")
    jit_compile: bool = option(False, "Compile the train step with XLA.", group="distribution and precision")

    def __post_init__(self) -> None:
        self.validate()

    # ---- derived facts -------------------------------------------------------------------
    @property
    def num_stages(self) -> int:
        """Generator outputs: the LR-size image of G1 plus one per upsampling stage."""
        return int(math.log2(self.scale)) + 1

    @property
    def lr_size(self) -> int:
        return self.hr_size // self.scale

    @property
    def stage_sizes(self) -> tuple[int, ...]:
        """Side length of every generator output, LR first, HR last: the one source of truth."""
        return tuple(self.lr_size * 2**k for k in range(self.num_stages))

    @property
    def blocks_per_stage(self) -> tuple[int, ...]:
        """m of each upsampling stage, the x2 stage first (--stage_res_blocks, else --res_blocks)."""
        if self.stage_res_blocks:
            return tuple(int(m) for m in self.stage_res_blocks.split(","))
        return (self.res_blocks,) * (self.num_stages - 1)

    @property
    def blocks_text(self) -> str:
        """m as people write it: 4 when every stage has 4, else per stage, e.g. 6/2."""
        blocks = self.blocks_per_stage
        return str(blocks[0]) if len(set(blocks)) == 1 else "/".join(map(str, blocks))

    def summary(self) -> str:
        """One line on what this run trains, e.g. for the first line a training prints."""
        losses = [f"L1 x{self.lambda_l1:g}"]
        if self.identity_weight > 0:
            losses.append(f"identity x{self.identity_weight:g}")
        if self.adv_weight > 0:
            losses.append(f"adversarial x{self.adv_weight:g}")
        kind = "" if self.adv_weight > 0 else " (no adversarial term: PSNR-oriented)"
        batch = (f"batch {self.per_replica_batch_size} per replica" if self.per_replica_batch_size
                 else f"batch {self.batch_size}")
        return (f"{self.lr_size}->{self.hr_size} px (x{self.scale}: {self.num_stages - 1} upsampling stages of "
                f"{self.blocks_text}x{self.res_convs} residual structures); losses {' + '.join(losses)}{kind}; "
                f"{batch}; {self.train_steps} steps -> {self.model_dir}")

    # ---- validation ----------------------------------------------------------------------
    def validate(self) -> None:
        def fail(flag: str, value: Any, expected: str) -> None:
            raise ValueError(f"--{flag}={value!r}: expected {expected}")

        if self.scale < 2 or self.scale & (self.scale - 1):
            fail("scale", self.scale, "a power of two >= 2 (2, 4, 8, ...)")
        if self.hr_size <= 0 or self.hr_size % self.scale:
            fail("hr_size", self.hr_size, f"a positive multiple of --scale={self.scale}")
        if self.lr_size < 4 or self.lr_size % 4:  # G1's bottleneck is a quarter of the LR size
            fail("hr_size", self.hr_size, f"hr_size/scale to be a multiple of 4 (got LR size {self.lr_size})")
        for name in ("res_blocks", "res_convs", "res_kernel", "unet_filters", "unet_max_filters",
                     "up_filters", "disc_filters", "batch_size", "train_steps", "save_every",
                     "keep_checkpoints", "log_every", "sample_every", "num_samples"):
            if getattr(self, name) < 1:
                fail(name, getattr(self, name), "an integer >= 1")
        if self.stage_res_blocks:
            counts = self.stage_res_blocks.split(",")
            if len(counts) != self.num_stages - 1 or not all(m.strip().isdigit() and int(m) >= 1 for m in counts):
                fail("stage_res_blocks", self.stage_res_blocks,
                     f"{self.num_stages - 1} comma-separated integers >= 1, one per upsampling stage of --scale={self.scale}")
        if self.per_replica_batch_size < 0:
            fail("per_replica_batch_size", self.per_replica_batch_size, "0 (use --batch_size) or a batch size >= 1")
        if self.res_kernel % 2 == 0:
            fail("res_kernel", self.res_kernel, "an odd kernel size")
        for name in ("lambda_l1", "adv_weight", "bb_weight", "identity_weight", "distill_weight", "g_lr", "d_lr"):
            if getattr(self, name) < 0:
                fail(name, getattr(self, name), "a value >= 0")
        if self.distill_weight > 0 and not self.teacher:
            fail("teacher", self.teacher, "a model to distil from, as --distill_weight > 0")
        if self.teacher and self.distill_weight <= 0:
            fail("distill_weight", self.distill_weight, f"a weight > 0 for --teacher={self.teacher!r}")
        if self.jitter_shift < 0:
            fail("jitter_shift", self.jitter_shift, "a shift in HR pixels >= 0")
        if not 0 <= self.jitter_zoom < 0.5:
            fail("jitter_zoom", self.jitter_zoom, "a zoom fraction in [0, 0.5)")
        if not MIN_JITTER_CROP <= self.jitter_crop <= 1:
            fail("jitter_crop", self.jitter_crop, f"a fraction of the side in [{MIN_JITTER_CROP}, 1]")
        if self.diff_augment:
            from tf_stacksr.data import (
                diff_augment,  # TensorFlow; so config and networks import without it
            )

            diff_augment.parse_policy(self.diff_augment)
        from tf_stacksr.data import align  # numpy and OpenCV only

        align.check_face_scale(self.identity_face_scale, "identity_face_scale")
        if not 0 <= self.beta1 < 1:
            fail("beta1", self.beta1, "a value in [0, 1)")
        if not 0 <= self.lr_decay_start <= 1:
            fail("lr_decay_start", self.lr_decay_start, "a fraction in [0, 1]")
        if self.norm not in _NORMS:
            fail("norm", self.norm, " or ".join(_NORMS))
        if self.degradation not in _DEGRADATIONS:
            fail("degradation", self.degradation, " or ".join(_DEGRADATIONS))
        if self.strategy not in _STRATEGIES:
            fail("strategy", self.strategy, " or ".join(_STRATEGIES))
        if self.mixed_precision not in _PRECISIONS:
            fail("mixed_precision", self.mixed_precision, " or ".join(_PRECISIONS))
        if not self.model_dir:
            fail("model_dir", self.model_dir, "a folder path for checkpoints")

    def check_data_dir(self) -> None:
        """Training needs data; building a model (export, tests) does not, so this is separate."""
        folders = data_folders(self.data_dir)
        if not folders:
            raise ValueError("--data_dir is empty: expected a folder of face images or TFRecord shards")
        for folder in folders:
            if not os.path.isdir(folder):
                raise ValueError(f"--data_dir={self.data_dir!r}: expected an existing folder, {folder!r} is none")

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Options that shape the generator (interpolation needs equal ones), and with the discriminator
# width all that shape the networks (a run cannot resume with other values).
GENERATOR_FIELDS = ("hr_size", "scale", "res_blocks", "stage_res_blocks", "res_convs", "res_kernel", "unet_filters",
                    "unet_max_filters", "up_filters", "norm", "residual")
ARCHITECTURE_FIELDS = GENERATOR_FIELDS + ("disc_filters",)


def define_flags_for(options_class: type, flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Declare one absl flag per field of the dataclass `options_class` (fields made by `option`); idempotent."""
    for field in dataclasses.fields(options_class):
        if field.name in flag_values:
            continue
        help_text = field.metadata["help"]
        if "choices" in field.metadata:
            flags.DEFINE_enum(field.name, field.default, field.metadata["choices"], help_text, flag_values=flag_values)
        elif isinstance(field.default, bool):
            flags.DEFINE_bool(field.name, field.default, help_text, flag_values=flag_values)
        elif isinstance(field.default, int):
            flags.DEFINE_integer(field.name, field.default, help_text, flag_values=flag_values)
        elif isinstance(field.default, float):
            flags.DEFINE_float(field.name, field.default, help_text, flag_values=flag_values)
        else:
            flags.DEFINE_string(field.name, field.default, help_text, flag_values=flag_values)


def flag_groups(options_class: type) -> list[tuple[str, list[str]]]:
    """`options_class`'s flags by their `group`, as `--help` lists them: (group, names) in field order."""
    groups: dict[str, list[str]] = {}
    for field in dataclasses.fields(options_class):
        groups.setdefault(field.metadata.get("group", "options"), []).append(field.name)
    return list(groups.items())


def options_from_flags(options_class: type, flag_values: flags.FlagValues = flags.FLAGS) -> Any:
    """An `options_class` instance from the parsed flags `define_flags_for` declared."""
    return options_class(**{f.name: flag_values[f.name].value for f in dataclasses.fields(options_class)})


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Declare one absl flag per Config field (idempotent)."""
    define_flags_for(Config, flag_values)


def from_flags(flag_values: flags.FlagValues = flags.FLAGS) -> Config:
    return options_from_flags(Config, flag_values)


def from_flagfile(path: str) -> Config:
    """The Config training would use under this flagfile (nested flagfiles included), nothing else set."""
    values = flags.FlagValues()
    define_flags(values)
    values(["flagfile", f"--flagfile={path}"])
    return from_flags(values)


def save_json(cfg: Config, path: str) -> None:
    import json

    with open(path, "w") as fh:
        json.dump(cfg.to_dict(), fh, indent=2, sort_keys=True)


def from_dict(values: dict[str, Any]) -> Config:
    """A Config from saved values, ignoring keys of other versions (old runs, exports)."""
    known = {f.name for f in dataclasses.fields(Config)}
    return Config(**{k: v for k, v in values.items() if k in known})


def load_json(path: str) -> Config:
    import json

    with open(path) as fh:
        return from_dict(json.load(fh))
