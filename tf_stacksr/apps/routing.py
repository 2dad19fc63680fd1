"""Which shipped model super-resolves each face of a photo: routed by the face's native size.

A face's native size n is the side, in the photo's own pixels, of the region its aligned crop
covers (`align.native_crop_size`: the training crop's HR side, measured in input pixels). A
model with LR input side l sees that region at l x l pixels, so l < n would squeeze the face
into fewer pixels than it has and throw detail away before the model starts, and l well above
n feeds it a face blurrier than it learnt. Every layer of the generators is a convolution, so a
model also runs at other LR sizes (any multiple of 4) with the same weights
(`models.load(..., lr_size=...)`): the inputs on offer are each shipped model's own (16, 32,
64 px) and, built for larger faces, its own times 1.25 and 1.5 (up to BUILT_UP_TO x: 40 and
48 px for the clean 32 px model, BUILT_BETWEEN) and, for the largest models, every quarter step
up to MAX_FACE (80, 96, 112, 128 px). The rule (`smallest_fit`, the default) takes the smallest
input of at least n among those the photo's models are built for, so:

- n <= 16: a 16 -> 64 model (which of a size: `Router` below), the face cut out at 16 px
  straight from the photo (one cubic warp, enlarging it: nothing lost);
- 16 < n <= 32: a 32 -> 128 model;
- 32 < n <= 48: the 32 -> 128 PSNR model built for 40 or 48 px where it takes the photo (not
  JPEG'd at q <= 82), else a 64 -> 256 model; 48 < n <= 64: a 64 -> 256 model;
- 64 < n <= MAX_FACE (128), in a photo enlarged at least LARGER_MIN_UPSCALE (2) x: the 64 -> 256
  model built for 80, 96, 112 or 128 px. Compute grows with the square of the input side (4x
  at 128 px);
- n > MAX_FACE, a face above 64 px in a photo enlarged less than LARGER_MIN_UPSCALE x, or a
  photo not enlarged (upscale <= 1): the face stays as the bicubic upscaled photo has it
  (nothing is pasted).

A model built for faces larger than it learnt gains less than at its own size, but the 32 px
PSNR model so built gains more than the 64 px model fed the face enlarged: on lfw_dev photos
shrunk 2-8x, face PSNR-Y +0.75 dB on faces of 32-40 px and +0.61 on 40-48 px
(bench/routing_rules.py), and on FFHQ-style photos shrunk 4x (faces ~39 px) FID and identity
too (docs/photos.md). Built up to 2x, the 32 px model still won on 48-64 px faces but the 16 px
one lost on 24-32 px faces (-0.14 dB), hence 1.5x; built for 20 px, the 16 px models gained
PSNR but lost identity (BUILT_BETWEEN).
Above the largest input there is no next model: on FFHQ-style photos shrunk 2x (faces ~78 px)
the 64 px model built for them gains +0.19 +- 0.03 dB over bicubic and on FID and both
identity scores (docs/photos.md); enlarged only 1.5x, where the model's 4x detail is mostly
averaged away by the downscale to the output, those faces lose 0.24 +- 0.07 dB to bicubic,
hence LARGER_MIN_UPSCALE.

Chosen by measurement with the clean-trained models (bench/routing_rules.py): the first 100
lfw_dev photos (central 240 px, one main face each) shrunk by F = 1.5, 2, 2.5, 3, 4, 5, 6, 8 and
enhanced back by F; PSNR-Y of the main face's box against the original photo (table in
docs/serving.md, "Which model gets a face"). Among the models' own sizes `smallest_fit` scores
34.61 dB over all 800 faces, `nearest` (squeezes up to 1.41x) 34.52, always the largest model
34.41, bicubic 34.37 and one 16 px model for every face 29.73; among the built sizes too it
scores 34.77, best or within 0.01 dB of the best at every F but 6, where squeezing 16-20 px
faces into the 16 px model (`nearest`) gains 0.29 dB; `nearest` loses more than that at F = 2.5
and 3, where it squeezes 32-45 px faces into the 32 px model. `RULES` holds the candidates.

`Router` is what `tf-stacksr enhance` runs when no --model is given: the routed zoo as one
object, loading each model on first use. One model per LR size takes part, chosen by what the
photo looks like (`degradation`, default "auto"): a face goes to the model of its size trained
for real photos (`degradation` "realistic": blurred, noisy, JPEG'd inputs) when its photo was
JPEG-compressed at that model's quality threshold or below (`up_to_quality`; the quality read
from the pixels, `jpeg_quality`), else to the clean-trained model (`*_psnr`, or one of
FOR_CLEAN_PHOTOS), which keeps more of a clean face's texture and identity. "realistic" and
"bicubic" route every photo the one way (the latter among the PSNR models: the paper's benchmark
inputs).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

from tf_stacksr.apps import jpeg_quality
from tf_stacksr.models import zoo

# A rule: (native size n, the LR sizes on offer, ascending) -> the LR size to use, or None (bicubic).
Rule = Callable[[float, Sequence[int]], "int | None"]


def smallest_fit(native: float, lr_sizes: Sequence[int]) -> int | None:
    """The smallest LR input holding the face at no fewer pixels than it has; None above the largest."""
    return next((lr for lr in lr_sizes if lr >= native), None)


def nearest(native: float, lr_sizes: Sequence[int]) -> int | None:
    """The LR input nearest n on a log scale (squeezes faces up to sqrt(2) x); None above the largest."""
    if native > lr_sizes[-1]:
        return None
    return min(lr_sizes, key=lambda lr: abs(math.log(lr / native)))


def largest(native: float, lr_sizes: Sequence[int]) -> int | None:
    """Always the largest LR input (never squeezes, enlarges small faces most); None above it."""
    return lr_sizes[-1] if native <= lr_sizes[-1] else None


def fit_or_bicubic_above(limit: float) -> Rule:
    """`smallest_fit`, but bicubic for faces above `limit` px."""
    def rule(native: float, lr_sizes: Sequence[int]) -> int | None:
        return None if native > limit else smallest_fit(native, lr_sizes)
    rule.__name__ = f"smallest_fit_bicubic_above_{limit:g}"
    return rule


def smallest(native: float, lr_sizes: Sequence[int]) -> int | None:
    """Always the smallest LR input, whatever the face's size (what one 16->64 model for every face did)."""
    return lr_sizes[0]


def bicubic(native: float, lr_sizes: Sequence[int]) -> int | None:
    """No model: the bicubic photo everywhere (the baseline)."""
    return None


RULES: dict[str, Rule] = {
    "smallest_fit": smallest_fit,
    "nearest": nearest,
    "smallest_fit_bicubic_above_48": fit_or_bicubic_above(48),
    "largest": largest,
    "smallest": smallest,
    "bicubic": bicubic,
}
DEFAULT_RULE = "smallest_fit"


MODEL_SETS = ("realistic", "bicubic")  # what the routed models were trained on (`routed_entries`)
DEGRADATIONS = ("auto", *MODEL_SETS)  # how a Router picks among them; see the module doc
# "auto": the JPEG quality at or below which a photo's faces go to each real-photo model instead
# of the clean model of its size (100: every photo, also those never compressed). Measured on
# shrunk LFW photos: the highest quality at which the real-photo model beat the clean one on
# FID and identity (q80 at 16 and 32 px, q50 at 64 px; docs/photos.md, "Compressed
# photos"), plus 2 for the error of the quality read from the pixels. A model not listed gets
# the default.
UP_TO_QUALITY = {"celeba_16to64_realistic": 82, "celeba_32to128_realistic": 82, "ffhq_celeba_64to256_realistic": 52}
DEFAULT_UP_TO_QUALITY = 72
# "auto": the models that take the faces of clean photos instead of the PSNR model of their size.
# The 16 px GAN: on clean shrunk LFW photos its faces are closer to the originals in FID and
# identity than the PSNR and real-photo models' (docs/photos.md), still above bicubic in PSNR.
FOR_CLEAN_PHOTOS = ("celeba_16to64_gan",)
# The LR sizes each model is also built for (see the module doc), in quarter steps of its own:
# up to BUILT_UP_TO x its own size (below the next model's), and for the largest model up to
# MAX_FACE px, the latter only in photos enlarged at least LARGER_MIN_UPSCALE x. Each size is
# built once per process, on first use.
BUILT_UP_TO = 1.5
MAX_FACE = 128
LARGER_MIN_UPSCALE = 2.0


# The models also built for sizes between the models' own (up to BUILT_UP_TO x their own), chosen
# by measurement: `celeba_32to128_psnr` built for 40 px gains over the 64 px model on FFHQ-style
# photos shrunk 4x in PSNR, FID and identity. The 16 px models built for 20 px gain PSNR and FID
# but move faces away from the person (SFace -0.045 on FFHQ-style photos shrunk 8x, for the GAN
# and the PSNR model alike), and so does the 32 px real-photo model at JPEG q50 (-0.014): a face
# a model not listed would take at such a size goes to the next model up.
BUILT_BETWEEN = ("celeba_32to128_psnr",)


def built_sizes(own: int, up_to: float) -> list[int]:
    """The LR sizes above `own` a model of input `own` is built for: quarter steps (multiples of
    4) up to `up_to` px."""
    step = max(4, own // 16 * 4)
    return list(range(own + step, int(up_to) + 1, step))


def at_size(entry: zoo.Entry, lr_size: int) -> zoo.Entry:
    """`entry` built for LR inputs of `lr_size` px (`Router.upscaler` loads it so)."""
    return dataclasses.replace(entry, lr_size=lr_size, hr_size=lr_size * entry.scale)


def up_to_quality(entry: zoo.Entry) -> int:
    """The JPEG quality at or below which "auto" routing uses `entry` (trained for real photos)."""
    return UP_TO_QUALITY.get(entry.name, DEFAULT_UP_TO_QUALITY)


def routed_entries(entries: dict[str, zoo.Entry] | None = None, degradation: str = "realistic") -> list[zoo.Entry]:
    """One shipped model per LR size, smallest first: trained for `degradation` (one of MODEL_SETS)
    where there is one ("bicubic": only those), then the PSNR-trained one."""
    if degradation not in MODEL_SETS:
        raise ValueError(f"degradation={degradation!r}: expected one of {', '.join(MODEL_SETS)}")
    entries = zoo.entries() if entries is None else entries
    candidates = [e for e in entries.values() if degradation == "realistic" or e.degradation == degradation]
    by_lr: dict[int, zoo.Entry] = {}
    for entry in sorted(candidates, key=lambda e: (e.degradation != degradation, not e.name.endswith("_psnr"), e.name)):
        by_lr.setdefault(entry.lr_size, entry)
    return [by_lr[lr] for lr in sorted(by_lr)]


class Router:
    """The shipped models as one upscaler for `enhance_lib.enhance_photo`: `jpeg_quality` reads how
    compressed a photo is, `choose` names the model for a face of native size n in it (see the
    module doc), `upscaler` loads that model on first use.

    `rule`: a name in RULES or a Rule; `load`: (model name, lr_size=None) -> upscaler (default
    `models.load`, with `flip_ensemble` passed on; None keeps each model's own setting; lr_size:
    the input size to build it for, given only when it is not the model's own); `degradation`: one
    of DEGRADATIONS, which models take part for which photos; `max_face`: the largest face sent to
    a model (MAX_FACE; at most the largest model's input size: no larger faces); `built_up_to`:
    how much larger than its own input each smaller model is built for (BUILT_UP_TO; 1: never);
    `larger_min_upscale`: the least photo enlargement at which faces above the largest model's
    input get a model (LARGER_MIN_UPSCALE).
    """

    name = "routed by face size"

    def __init__(self, entries: dict[str, zoo.Entry] | None = None, rule: str | Rule = DEFAULT_RULE,
                 load: Callable | None = None, flip_ensemble: bool | None = None, degradation: str = "auto",
                 max_face: int = MAX_FACE, built_up_to: float = BUILT_UP_TO,
                 larger_min_upscale: float = LARGER_MIN_UPSCALE):
        if degradation not in DEGRADATIONS:
            raise ValueError(f"degradation={degradation!r}: expected one of {', '.join(DEGRADATIONS)}")
        self.degradation = degradation
        entries = zoo.entries() if entries is None else entries
        clean = {e.lr_size: e for e in routed_entries(entries, "bicubic" if degradation == "auto" else degradation)}
        real = {}
        if degradation == "auto":
            real = {e.lr_size: e for e in routed_entries(entries, "realistic") if e.degradation == "realistic"}
            clean.update({e.lr_size: e for name, e in entries.items() if name in FOR_CLEAN_PHOTOS})
        # Per LR size: (the model for clean photos, the one for compressed photos or None).
        self.by_lr = {lr: (clean.get(lr, real.get(lr)), real.get(lr)) for lr in sorted({*clean, *real})}
        # Every model this router may run, by LR size.
        self.entries = sorted({e.name: e for pair in self.by_lr.values() for e in pair if e}.values(),
                              key=lambda e: (e.lr_size, e.name))
        if not self.entries:
            raise FileNotFoundError("no shipped models are installed to route faces among (reinstall tf-stacksr),"
                                    " or pass --model=PATH")
        # The sizes each pair is also built for, and the own size each size's pair comes from.
        own_sizes = sorted(self.by_lr)
        largest = own_sizes[-1]
        self.own_size = {lr: lr for lr in own_sizes}
        for own, above in zip(own_sizes, own_sizes[1:] + [None]):
            up_to = max_face if above is None else min(built_up_to * own, above - 1)
            for lr in built_sizes(own, up_to):  # above the largest every model is built: no next one
                pair = tuple(at_size(e, lr) if e and (above is None or e.name in BUILT_BETWEEN) else None
                             for e in self.by_lr[own])
                if any(pair):
                    self.by_lr[lr], self.own_size[lr] = pair, own
        self.by_lr = dict(sorted(self.by_lr.items()))
        self.max_face, self.largest_input = max(self.by_lr), largest
        self.larger_min_upscale = larger_min_upscale
        if isinstance(rule, str) and rule not in RULES:
            raise ValueError(f"rule={rule!r}: expected one of {', '.join(RULES)}")
        self.rule = RULES[rule] if isinstance(rule, str) else rule
        self.scale = max(e.scale for e in self.entries)  # the default whole-photo factor
        self.hr_size = self.entries[-1].hr_size
        self._load = load or self._load_shipped
        self.flip_ensemble = flip_ensemble
        self._loaded: dict[zoo.Entry, object] = {}

    def _load_shipped(self, name: str, lr_size: int | None = None):
        from tf_stacksr import models  # TensorFlow loads here, on the first face

        return models.load(name, flip_ensemble=self.flip_ensemble, lr_size=lr_size)

    def jpeg_quality(self, rgb) -> int | None:
        """The JPEG quality `rgb` was compressed at, where the choice of models depends on it ("auto")."""
        return jpeg_quality.estimate_quality(rgb) if self.degradation == "auto" else None

    def choose(self, native: float, upscale: float, quality: int | None = None) -> zoo.Entry | None:
        """The model for a face `native` px across in a photo enlarged `upscale` x and JPEG'd at
        `quality` (None: not known to be); None: keep it bicubic."""
        if upscale <= 1:
            return None
        on_offer = {lr: entry for lr in self.by_lr if (entry := self._entry(lr, quality)) is not None}
        lr = self.rule(float(native), list(on_offer))
        if lr is None or (lr > self.largest_input and upscale < self.larger_min_upscale):
            return None
        return on_offer[lr]

    def _entry(self, lr: int, quality: int | None) -> zoo.Entry | None:
        """The model at input `lr` for a photo JPEG'd at `quality`: the real-photo one where the
        model of that size takes such photos, else the clean one; None where it is not built."""
        clean, real = self.by_lr[lr]
        own_real = self.by_lr[self.own_size[lr]][1]
        takes_photo = own_real is not None and (100 if quality is None else quality) <= up_to_quality(own_real)
        return real if takes_photo else clean

    def upscaler(self, entry: zoo.Entry):
        """The loaded model of `entry` (a routed model, or one built for a larger input by `choose`)."""
        if entry not in self._loaded:
            own_size = entry in self.entries
            self._loaded[entry] = self._load(entry.name) if own_size else self._load(entry.name, lr_size=entry.lr_size)
        return self._loaded[entry]
