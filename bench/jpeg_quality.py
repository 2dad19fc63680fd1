"""How well does `enhance` read a photo's JPEG compression from its pixels?

    python -m bench.jpeg_quality --input=../shared/data/lfw_dev --factors=2,4,8 --jpeg=0,95,90,80,70,50,30

Every photo is shrunk by each factor F as the whole-photo benchmark shrinks it
(`photo_inputs.shrink`: PIL's antialiased bicubic, which leaves no JPEG grid behind), then
JPEG-compressed at each quality q (0 = not compressed; Pillow, 4:2:0 chroma) and read back by
`jpeg_quality.estimate_quality`. Per (F, q): how many photos read as compressed, and the median
and worst error of the estimated quality (what `enhance` routes compressed photos by).
Writes results.md and results.json.
"""

from __future__ import annotations

import numpy as np
from absl import app, flags
from tqdm import tqdm

from tf_stacksr.apps import jpeg_quality
from tf_stacksr.evaluation import photo_inputs, photo_report

flags.DEFINE_string("input", None, "Folder of photos (searched recursively).")
flags.DEFINE_list("factors", ["2", "4", "8"], "Shrink factors.")
flags.DEFINE_list("jpeg", ["0", "95", "90", "80", "70", "50", "30"], "JPEG qualities (0: not compressed).")
flags.DEFINE_integer("limit", None, "Only the first N photos.")
flags.DEFINE_string("output_dir", "out/jpeg_quality", "Where results.md and results.json go.")


def measure(paths, factors: list[int], qualities: list[int]) -> list[dict]:
    estimates = {(f, q): [] for f in factors for q in qualities}
    for path in tqdm(paths, desc="photos", unit="photo"):
        reference = photo_inputs.reference_photo(photo_inputs.read_photo(path), factors)
        for f in factors:
            small = photo_inputs.shrink(reference, f)
            for q in qualities:
                estimates[f, q].append(jpeg_quality.estimate_quality(photo_inputs.jpeg(small, q)))
    rows = []
    for (f, q), found in estimates.items():
        read = [e for e in found if e is not None]
        errors = np.abs(np.array(read) - q) if q and read else np.zeros(0)
        rows.append({
            "factor": f, "jpeg": q, "photos": len(found), "read_as_compressed": len(read),
            "median_error": float(np.median(errors)) if len(errors) else None,
            "max_error": int(errors.max()) if len(errors) else None,
        })
    return rows


def markdown(rows: list[dict], command: str) -> str:
    def fmt(value):
        return "—" if value is None else f"{value:g}"

    lines = [f"`{command}`", "",
             "| F | JPEG q | photos | read as compressed | quality error, median / max |",
             "|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['factor']} | {r['jpeg'] or 'none'} | {r['photos']} | {r['read_as_compressed']} |"
                     f" {fmt(r['median_error'])} / {fmt(r['max_error'])} |")
    return "\n".join(lines) + "\n"


def main(argv) -> None:
    del argv
    args = flags.FLAGS
    try:
        paths = photo_inputs.list_photos(args.input or "", args.limit)
    except ValueError as err:
        raise app.UsageError(str(err)) from None
    factors, qualities = [int(f) for f in args.factors], [int(q) for q in args.jpeg]
    rows = measure(paths, factors, qualities)
    command = (f"python -m bench.jpeg_quality --input={args.input} --factors={','.join(args.factors)}"
               f" --jpeg={','.join(args.jpeg)}" + (f" --limit={args.limit}" if args.limit else ""))
    text = markdown(rows, command)
    photo_report.write_files(args.output_dir, {"command": command, "rows": rows}, text)
    print(text)


if __name__ == "__main__":
    app.run(main)
