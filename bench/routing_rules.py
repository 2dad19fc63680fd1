"""Which shipped model should get a face of a given size? Face-region PSNR of candidate rules.

    python -m bench.routing_rules --input=../shared/data/lfw_dev --factors=1.5,2,3,4,6,8 --json=out/routing_rules.json

Every photo is cropped to its central 240 x 240 (divisible by every factor), shrunk F times
(bicubic, PIL's antialiased resize) and enhanced back F times by `enhance_lib.enhance_photo`
with the main face (the largest YuNet finds) sent to each choice in turn: kept bicubic, each
clean-trained routed shipped model at its own input size (`routing.routed_entries(degradation=
"bicubic")`, what clean photos get), cut out as the routed path cuts it (`enhance_lib.lr_crop`:
straight at the LR size when the face fits, else at the HR size and downscaled, i.e. squeezed),
and the model below the face's size built for it (the sizes `routing.Router` builds each model
for; scored where `smallest_fit` picks one). Scored: PSNR-Y (BT.601, `metrics.image`) of the
face's box (where dlib's detector would box the face, `align.dlib_box`, from the landmarks found
in the original photo) against the original photo. Every rule in `routing.RULES` then picks a
choice per face from its native size (`align.native_crop_size` in the shrunk photo) among the
models' own sizes, and `smallest_fit` also among all sizes (what enhance does); their mean PSNR-Y
is reported per F, and each choice's mean PSNR-Y per native-size band.
Prints Markdown; --json writes every number.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import time

import numpy as np
from absl import app, flags
from PIL import Image

from tf_stacksr import files, models
from tf_stacksr.apps import enhance_lib, routing
from tf_stacksr.data import align, detect
from tf_stacksr.metrics import image as image_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # paths in reports are relative to it

SIDE = 240
BANDS = [(0, 12), (12, 16), (16, 20), (20, 24), (24, 32), (32, 40), (40, 48), (48, 56), (56, 64), (64, 80), (80, 96),
         (96, 128), (128, 1e9)]


class Fixed:
    """A detector that returns faces found before (so every choice sees the same face)."""

    multiscale = True

    def __init__(self, faces):
        self.faces = faces

    def detect(self, image):
        return self.faces


def face_psnr_y(output: np.ndarray, original: np.ndarray, box) -> float:
    left, top, right, bottom = (int(round(v)) for v in box)
    left, top = max(left, 0), max(top, 0)
    right, bottom = min(right, original.shape[1]), min(bottom, original.shape[0])
    a = image_metrics.rgb_to_y(output[top:bottom, left:right])
    b = image_metrics.rgb_to_y(original[top:bottom, left:right])
    return float(image_metrics.psnr(a, b)[0])


def band_of(native: float) -> str:
    low, high = next(b for b in BANDS if b[0] < native <= b[1])
    return f"{low}-{high:g}" if high < 1e9 else f">{low}"


BUILT = "the model below built for the face's size"  # scored where `smallest_fit` picks a built size
BUILT_TOO = "smallest_fit, built sizes too"

flags.DEFINE_string("input", None, "Folder of photos (searched recursively).")
flags.DEFINE_list("factors", ["1.5", "2", "3", "4", "6", "8"],
                  "Factors F to shrink the photos by and enhance them back.")
flags.DEFINE_integer("limit", None, "Only the first N photos.")
flags.DEFINE_string("json", None, "Write every number here.")


@dataclasses.dataclass
class Choices:
    """Every choice a face can be sent to, as a Router each, and the LR sizes they take."""

    routers: dict[str, routing.Router]
    own_sizes: list[int]  # the clean routed models' own inputs
    all_sizes: list[int]  # those and the sizes the models are also built for
    name_of: dict[int, str]  # LR size -> the choice that runs it

    @classmethod
    def shipped(cls) -> "Choices":
        loaded = {}

        def load(name, lr_size=None):
            if (name, lr_size) not in loaded:
                loaded[name, lr_size] = models.load(name, lr_size=lr_size)
            return loaded[name, lr_size]

        entries = routing.routed_entries(degradation="bicubic")
        routers = {"bicubic": routing.Router(rule=routing.bicubic, load=load, degradation="bicubic")}
        for entry in entries:
            routers[entry.name] = routing.Router(rule=lambda n, lrs, lr=entry.lr_size: lr, load=load,
                                                 degradation="bicubic")
        routers[BUILT] = routing.Router(rule=routing.smallest_fit, load=load, degradation="bicubic",
                                        larger_min_upscale=1.0)  # measured at every factor
        all_sizes = list(routers[BUILT].by_lr)
        name_of = {lr: next((e.name for e in entries if e.lr_size == lr), BUILT) for lr in all_sizes}
        return cls(routers, [e.lr_size for e in entries], all_sizes, name_of)

    def pick(self, rule, row, sizes) -> str:
        """The choice `rule` makes for a face among input `sizes`, as `routing.Router.choose` applies it."""
        lr = rule(row["native"], sizes)
        if lr is None or (lr > self.own_sizes[-1] and row["factor"] < routing.LARGER_MIN_UPSCALE):
            return "bicubic"
        return self.name_of[lr]


def score_faces(paths, factors, choices: Choices) -> list[dict]:
    """Per (photo, F) whose main face is found in the shrunk photo: its native size and the
    face-region PSNR-Y of every choice."""
    detector = detect.make("yunet")
    rows = []
    for path in paths:
        with Image.open(path) as image:
            image = image.convert("RGB")
            x0, y0 = (image.width - SIDE) // 2, (image.height - SIDE) // 2
            original_image = image.crop((x0, y0, x0 + SIDE, y0 + SIDE))
        original = np.asarray(original_image)
        reference = detector.detect(original)
        if not reference:
            continue
        box = align.dlib_box(reference[0].landmarks, reference[0].layout)
        for factor in factors:
            side = round(SIDE / factor)
            small = np.asarray(original_image.resize((side, side), Image.BICUBIC))
            in_small = detector.detect(small)
            found = [align.Face(box=tuple((np.asarray(f.box) + 0.5) * factor - 0.5), score=f.score,
                                landmarks=f.landmarks, layout=f.layout) for f in in_small]
            match = detect.match_faces(reference[:1], found)[0]
            if match.found is None:
                continue
            face = in_small[found.index(match.found)]
            native = enhance_lib.native_size(face, 0.7)
            options = enhance_lib.EnhanceOptions(upscale=factor, only_largest=True)
            row = {"file": os.path.relpath(path, REPO), "factor": factor, "native": native, "psnr_y": {}}
            for name, router in choices.routers.items():
                if name == BUILT and routing.smallest_fit(native, choices.all_sizes) in choices.own_sizes:
                    continue  # a model at its own size: scored above
                out = enhance_lib.enhance_photo(small, router, options, Fixed([face])).image
                assert out.shape == original.shape, (out.shape, original.shape)
                row["psnr_y"][name] = face_psnr_y(out, original, box)
            rows.append(row)
    return rows


def bold_best(means: dict) -> list[str]:
    best = max(v for v in means.values() if v is not None)
    return ["—" if v is None else f"**{v:.2f}**" if v >= best - 0.005 else f"{v:.2f}" for v in means.values()]


def rules_table(rows, factors, choices: Choices) -> dict:
    """Prints and returns each rule's mean PSNR-Y per factor (and over all)."""
    by_factor = collections.defaultdict(list)
    for row in rows:
        by_factor[row["factor"]].append(row)
    print("Mean face-region PSNR-Y (dB) against the original photo, per rule among the models' own input"
          " sizes, and `smallest_fit` among those and the sizes each model is also built for (what enhance"
          " does):\n")
    columns = [*routing.RULES, BUILT_TOO]
    print("| shrunk by F | faces | median native size (px) | " + " | ".join(columns) + " |")
    print("|---|---|---|" + "---|" * len(columns))
    table = {}
    for factor in factors + ["all"]:
        group = rows if factor == "all" else by_factor[factor]
        if not group:
            continue
        means = {name: float(np.mean([r["psnr_y"][choices.pick(rule, r, choices.own_sizes)] for r in group]))
                 for name, rule in routing.RULES.items()}
        means[BUILT_TOO] = float(np.mean([r["psnr_y"][choices.pick(routing.smallest_fit, r, choices.all_sizes)]
                                          for r in group]))
        table[str(factor)] = {"faces": len(group), "median_native": float(np.median([r["native"] for r in group])),
                              "mean_psnr_y": means}
        size = "" if factor == "all" else f"{table[str(factor)]['median_native']:.0f}"
        label = "all" if factor == "all" else f"{factor:g}"
        print(f"| {label} | {len(group)} | {size} | " + " | ".join(bold_best(means)) + " |")
    return table


def bands_table(rows, choices: Choices) -> dict:
    """Prints and returns each choice's mean PSNR-Y per band of native face size."""
    by_band = collections.defaultdict(list)
    for row in rows:
        by_band[band_of(row["native"])].append(row)
    print("\nMean face-region PSNR-Y (dB) of each choice, by the face's native size:\n")
    print("| native size (px) | faces | " + " | ".join(choices.routers) + " |")
    print("|---|---|" + "---|" * len(choices.routers))
    table = {}
    for low, high in BANDS:
        band = band_of(high if high < 1e9 else low + 1)
        group = by_band.get(band, [])
        if not group:
            continue
        scored = {name: [r["psnr_y"][name] for r in group if name in r["psnr_y"]] for name in choices.routers}
        means = {name: float(np.mean(v)) if v else None for name, v in scored.items()}
        table[band] = {"faces": len(group), "mean_psnr_y": means}
        print(f"| {band} | {len(group)} | " + " | ".join(bold_best(means)) + " |")
    return table


def main(argv) -> None:
    del argv
    args = flags.FLAGS
    if not args.input:
        raise app.UsageError("--input: a folder of photos is required")
    factors = [float(f) for f in args.factors]
    paths = files.list_images(args.input)[: args.limit]
    choices = Choices.shipped()
    start = time.perf_counter()
    rows = score_faces(paths, factors, choices)
    seconds = time.perf_counter() - start
    print(f"{len(paths)} photos of {args.input}, {len(rows)} (photo, F) faces scored, {seconds:.0f} s\n")
    rules, bands = rules_table(rows, factors, choices), bands_table(rows, choices)
    if args.json:
        files.write_json(args.json, {"folder": args.input, "side": SIDE, "factors": factors,
                                     "rules": rules, "bands": bands, "faces": rows}, sort_keys=False)


if __name__ == "__main__":
    app.run(main)
