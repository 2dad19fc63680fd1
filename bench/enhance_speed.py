"""Where `tf-stacksr enhance` spends its time: seconds per photo and per face, stage by stage.

    nice python -m bench.enhance_speed [--input=../shared/data/lfw_dev] [--shrink=2,4,8] [--limit=40]
                                       [--flip_ensemble=true|false] [--json=runs/bench/enhance_speed.json]

The photos of --input (LFW: 250 x 250, faces ~100 px) are shrunk by each factor F as the
whole-photo benchmark shrinks them (`photo_inputs.reference_photo` and `shrink`: PIL's
antialiased bicubic), written as JPEG (quality 95) to a temporary folder, and enhanced back
with --upscale F through the library path of the command (`photo_files.enhance_files`: the
default routed models, YuNet detection, default options), outputs JPEG as the inputs are.
Shrunk by 2, 4 and 8 the faces go to the 64, 32 and 16 px models (`apps.routing`); by 1 the
photo is not enlarged and no model runs (the faces stay bicubic).

Each stage is timed by wrapping the library function that does it, for this run only (the
library itself holds no timing code); a function's time excludes that of the wrapped functions
it calls, so the stages add up to the total:
- decode: `photo_files.read_photo` (read the file, EXIF, decode);
- detection: `enhance_lib.detect_faces` (YuNet over its pyramid), minus the landmarks;
- JPEG quality read: `jpeg_quality.estimate_quality` (which models the photo's faces go to);
- alignment: `FaceAligner.dlib_landmarks` (dlib's 5 points in YuNet's box), `enhance_lib.lr_crop`
  and `align.align_face` (the warps to each model's LR face);
- SR: `enhance_lib.super_resolve` (the model calls, in batches of up to 16 faces);
- paste-back: `enhance_lib.paste_face`, `feather_mask`, `paste_matrix`;
- encode/write: `photo_files.write_output`;
- rest of enhance_photo: the bicubic upscale of the whole photo (the canvas) and routing;
- other: whatever else `enhance_files` does (listing, naming outputs), the total minus the above.
Loading the models and the detector (once per process) and the first call of each model at each
input size the router builds it for (tracing) are timed apart, before a warm-up pass over the
first photos; then every photo is enhanced once, timed.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import tempfile
import time

from absl import app, flags
from PIL import Image

from bench.device import cpu_name
from bench.measure import lr_faces
from tf_stacksr import files
from tf_stacksr.apps import enhance_lib, jpeg_quality, photo_files, routing
from tf_stacksr.data import align
from tf_stacksr.evaluation import photo_inputs

STAGES = {  # stage -> the (owner, attribute) functions that do it
    "decode": [(photo_files, "read_photo")],
    "detection": [(enhance_lib, "detect_faces")],
    "JPEG quality read": [(jpeg_quality, "estimate_quality")],
    "alignment": [(align.FaceAligner, "dlib_landmarks"), (enhance_lib, "lr_crop"), (align, "align_face")],
    "SR": [(enhance_lib, "super_resolve")],
    "paste-back": [(enhance_lib, "paste_face"), (enhance_lib, "feather_mask"), (enhance_lib, "paste_matrix")],
    "encode/write": [(photo_files, "write_output")],
    "rest of enhance_photo": [(photo_files, "enhance_photo")],
}

flags.DEFINE_string("input", "../shared/data/lfw_dev", "Folder of photos (searched recursively).")
flags.DEFINE_list("shrink", ["2", "4", "8"], "Factors F to shrink the photos by; each is enhanced back with --upscale F.")
flags.DEFINE_integer("limit", 40, "Photos (the first N in sorted order).")
flags.DEFINE_integer("warmup", 2, "Photos enhanced untimed first, at every F.")
flags.DEFINE_bool("flip_ensemble", None, "Override the models' flip ensemble (default: each shipped model's own).")
flags.DEFINE_string("json", None, "Also write every number to this JSON file.")


class StageClock:
    """Exclusive seconds per stage of wrapped functions (a call's time minus its wrapped callees')."""

    def __init__(self):
        self.seconds: dict[str, float] = collections.Counter()
        self._children: list[float] = []  # per open call: time spent in wrapped callees

    def wrap(self, stage: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self._children.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                self.seconds[stage] += elapsed - self._children.pop()
                if self._children:
                    self._children[-1] += elapsed
        return timed

    @contextlib.contextmanager
    def installed(self):
        """Every function of STAGES wrapped while inside; the originals back afterwards."""
        originals = [(owner, name, getattr(owner, name)) for fns in STAGES.values() for owner, name in fns]
        try:
            for stage, fns in STAGES.items():
                for owner, name in fns:
                    setattr(owner, name, self.wrap(stage, getattr(owner, name)))
            yield self
        finally:
            for owner, name, fn in originals:
                setattr(owner, name, fn)


def shrunk_inputs(paths: list[str], root: str, factor: int, folder: str) -> None:
    """Each photo shrunk by `factor` (as the whole-photo benchmark does), as JPEG q95 under `folder`."""
    for path in paths:
        small = photo_inputs.shrink(photo_inputs.reference_photo(photo_inputs.read_photo(path), [factor]), factor)
        target = os.path.join(folder, os.path.splitext(os.path.relpath(path, root))[0] + ".jpg")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        Image.fromarray(small).save(target, quality=95)


def load_seconds(router: routing.Router, photo_path: str) -> tuple[dict, float, object]:
    """(model -> (load s, first call s), detector load s, detector): the one-off costs, of every
    model at every input size the router builds it for."""
    loads = {}
    for entry in dict.fromkeys(e for pair in router.by_lr.values() for e in pair if e):
        t0 = time.perf_counter()
        upscaler = router.upscaler(entry)
        t1 = time.perf_counter()
        upscaler(lr_faces(entry.lr_size, entry.hr_size, 1))
        name = entry.name if entry in router.entries else f"{entry.name} at {entry.lr_size} px"
        loads[name] = (t1 - t0, time.perf_counter() - t1)
    t0 = time.perf_counter()
    aligner = enhance_lib.make_aligner(enhance_lib.EnhanceOptions().detector)
    photo = photo_inputs.read_photo(photo_path)
    aligner.detect(photo)  # YuNet's network and dlib's shape predictor load on first use
    return loads, time.perf_counter() - t0, aligner


def run_factor(paths: list[str], root: str, factor: int, router, aligner, warmup: int) -> dict:
    """Every photo shrunk by `factor` and enhanced back, timed per stage (after `warmup` photos)."""
    options = enhance_lib.EnhanceOptions(upscale=factor)
    with tempfile.TemporaryDirectory() as tmp:
        source, out = os.path.join(tmp, "in"), os.path.join(tmp, "out")
        shrunk_inputs(paths, root, factor, source)
        quiet = dict(progress=False, log=lambda _: None, aligner=aligner)
        for path in sorted(files.list_images(source))[:warmup]:
            photo_files.enhance_files(path, os.path.join(tmp, "warmup"), router, options, **quiet)
        clock, counted = StageClock(), collections.Counter()
        super_resolve = enhance_lib.super_resolve

        def counting(upscaler, lr_faces):
            counted[upscaler.name] += len(lr_faces)
            return super_resolve(upscaler, lr_faces)

        enhance_lib.super_resolve = counting
        try:
            with clock.installed():
                t0 = time.perf_counter()
                summary = photo_files.enhance_files(source, out, router, options, **quiet)
                total = time.perf_counter() - t0
        finally:
            enhance_lib.super_resolve = super_resolve
    seconds = {stage: clock.seconds.get(stage, 0.0) for stage in STAGES}
    seconds["other"] = total - sum(seconds.values())
    return {"factor": factor, "photos": summary.written, "faces": summary.faces, "faces_by_model": dict(counted),
            "skipped": dict(summary.skipped), "total_seconds": total, "stage_seconds": seconds}


def print_table(rows: list[dict]) -> None:
    head = " | ".join(f"F={r['factor']}: s/photo (share)" for r in rows)
    print(f"| stage | {head} |")
    print("|---|" + "---|" * len(rows))
    for stage in [*STAGES, "other"]:
        cells = [f"{r['stage_seconds'][stage] / r['photos']:.4f} ({r['stage_seconds'][stage] / r['total_seconds']:.0%})"
                 for r in rows]
        print(f"| {stage} | " + " | ".join(cells) + " |")
    print("| **total** | " + " | ".join(f"**{r['total_seconds'] / r['photos']:.4f}**" for r in rows) + " |")
    print("| total per face | " + " | ".join(f"{r['total_seconds'] / max(r['faces'], 1):.4f}" for r in rows) + " |")
    print("| photos / faces | " + " | ".join(f"{r['photos']} / {r['faces']}" for r in rows) + " |")
    print("| faces super-resolved, by model | "
          + " | ".join(", ".join(f"{n}: {c}" for n, c in r["faces_by_model"].items()) or "none" for r in rows) + " |")


def main(argv) -> None:
    del argv
    args = flags.FLAGS
    paths = sorted(files.list_images(args.input))[: args.limit]
    router = routing.Router(flip_ensemble=args.flip_ensemble)
    loads, detector_load, aligner = load_seconds(router, paths[0])
    rows = [run_factor(paths, args.input, int(f), router, aligner, args.warmup) for f in args.shrink]

    print(f"\ndevice: {cpu_name()} ({os.cpu_count()} cores visible); {len(paths)} photos of {args.input};"
          f" flip ensemble: {'each model its own' if args.flip_ensemble is None else args.flip_ensemble}")
    print("one-off: " + ", ".join(f"{n} load {a:.2f} s + first call {b:.2f} s" for n, (a, b) in loads.items())
          + f"; detector load + first photo {detector_load:.2f} s\n")
    print_table(rows)
    if args.json:
        files.write_json(args.json, {"device": cpu_name(), "cores": os.cpu_count(), "input": args.input,
                                     "photos": len(paths), "flip_ensemble": args.flip_ensemble,
                                     "model_load_seconds": loads, "detector_load_seconds": detector_load,
                                     "factors": rows}, sort_keys=False)


if __name__ == "__main__":
    app.run(main)
