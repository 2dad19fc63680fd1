"""The models shipped inside the package (`tf_stacksr/weights/<name>/`, packed int8 folders).

Each is named by its folder: `celeba_16to64_psnr`, `celeba_16to64_gan`, `celeba_32to128_psnr`,
`ffhq_celeba_64to256_psnr`, the `_realistic` model of each size and `celeba_16to64_fast` (the
PSNR model distilled for speed); what each is for and how good: docs/results.md. Anywhere a
model path is accepted, one of these names is too (`resolve`). `entries` says what each model takes and gives (LR and HR face sizes, the
degradation it was trained for) without loading it, so a caller can pick the model that fits a
face.
"""

from __future__ import annotations

import dataclasses
import json
import os

from tf_stacksr.models import layout

SHIPPED_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")
PSNR_MODEL = "celeba_16to64_psnr"  # L1 + identity term, flip ensemble: highest PSNR/SSIM
GAN_MODEL = "celeba_16to64_gan"  # the stacked GAN fine-tuned from PSNR_MODEL: lowest FID and identity distance
DEFAULT_MODEL = PSNR_MODEL
# The model --alpha blends into PSNR_MODEL when no GAN model is named (network interpolation).
DEFAULT_GAN_MODEL = GAN_MODEL



@dataclasses.dataclass(frozen=True)
class Entry:
    """One shipped model: where it is and what faces it takes."""

    name: str
    path: str
    lr_size: int
    hr_size: int
    degradation: str  # "bicubic" (clean, the paper's) or "realistic" (blur, noise, JPEG)

    @property
    def scale(self) -> int:
        return self.hr_size // self.lr_size


def entries() -> dict[str, Entry]:
    """Name -> Entry of every shipped model, in name order."""
    if not os.path.isdir(SHIPPED_DIR):
        return {}
    found = {}
    for name in sorted(os.listdir(SHIPPED_DIR)):
        folder = os.path.join(SHIPPED_DIR, name)
        if not layout.is_packed(folder):
            continue
        with open(layout.config_path(folder)) as fh:
            values = json.load(fh)
        hr_size, scale = int(values["hr_size"]), int(values["scale"])
        found[name] = Entry(name, folder, hr_size // scale, hr_size, values.get("degradation", "bicubic"))
    return found


def shipped() -> dict[str, str]:
    """Name -> folder of every shipped model."""
    return {name: entry.path for name, entry in entries().items()}


def resolve(name_or_path: str) -> str:
    """An existing path as is; else the shipped model of that name; else a clear error."""
    if os.path.exists(name_or_path):
        return name_or_path
    models = shipped()
    if name_or_path in models:
        return models[name_or_path]
    known = ", ".join(models) or "none are installed"
    raise FileNotFoundError(f"{name_or_path!r} is neither an existing model path nor a shipped model ({known})")
