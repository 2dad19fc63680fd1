"""The paper's residual-block study (its Fig. 4): train one model per "m x n" setting at an equal
training budget, evaluate them all in one run, write a table and a plot.

  python tools/residual_block_study.py --base_flags=configs/celeba_16to64_psnr.flags \\
      --settings=1x1,2x2,4x2,4x4 --train_steps=1000 --study_dir=runs/residual_study --eval_limit=500

Every setting trains from scratch with the flagfile's options except --res_blocks (m) and
--res_convs (n), for the same --train_steps and batch size, into <study_dir>/<m>x<n>; an interrupted study
resumes (finished runs are not retrained). Writes <study_dir>/study.md, study.json and
study.png (needs matplotlib: `pip install -e ".[study]"`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import app, flags

flags.DEFINE_string("base_flags", None, "Training flagfile every setting shares (e.g. configs/celeba_16to64_psnr.flags).")
flags.DEFINE_list("settings", ["1x1", "2x2", "4x2", "4x4"], "m x n settings: m residual structures of n convs.")
flags.DEFINE_integer("train_steps", 1000, "Training steps of every setting (the equal budget).")
flags.DEFINE_string("study_dir", "runs/residual_study", "Where the runs, the evaluation and the report go.")
flags.DEFINE_string("data", None, "Prepared data to evaluate on (default: the flagfile's --data_dir), test split.")
flags.DEFINE_string("data_dir", None, "Training data (overrides the flagfile's --data_dir).")
flags.DEFINE_integer("eval_limit", 500, "Test faces to evaluate (the first N).")
FLAGS = flags.FLAGS


def parse_setting(text: str) -> tuple[int, int]:
    try:
        m, n = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise app.UsageError(f"--settings: {text!r} is not of the form MxN (e.g. 4x4)") from None
    if m < 1 or n < 1:
        raise app.UsageError(f"--settings: {text!r}: m and n must be >= 1")
    return m, n


def flagfile_value(path: str, name: str) -> str:
    """The value training would use for --name under this flagfile (nested flagfiles included)."""
    from tf_stacksr import config as config_lib

    return str(getattr(config_lib.from_flagfile(path), name))


def parameter_count(model_dir: str) -> int:
    from tf_stacksr import config as config_lib
    from tf_stacksr.models import layout
    from tf_stacksr.networks import build_generator

    return build_generator(config_lib.load_json(layout.config_path(model_dir))).count_params()


def train(setting: tuple[int, int], flagfile: str, run_dir: str) -> float:
    """Train (or finish training) one setting; returns the wall time spent now, in seconds."""
    m, n = setting
    command = [sys.executable, "-m", "tf_stacksr.train", f"--flagfile={flagfile}", f"--model_dir={run_dir}",
               f"--res_blocks={m}", "--stage_res_blocks=", f"--res_convs={n}", f"--train_steps={FLAGS.train_steps}", "--init_from="]
    if FLAGS.data_dir:
        command.append(f"--data_dir={FLAGS.data_dir}")
    print(f"[study] {m}x{n}: {' '.join(command[1:])}", flush=True)
    start = time.time()
    subprocess.run(command, check=True)
    return time.time() - start


def plot(rows: list[dict], bicubic: dict, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("[study] matplotlib is not installed (pip install -e '.[study]'): no study.png")
        return
    labels = [r["setting"] for r in rows]
    panels = (("fid", "FID (lower is better)"), ("psnr_y", "PSNR-Y dB (higher is better)"),
              ("identity_distance", "identity distance (lower is better)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    for ax, (key, title) in zip(axes, panels):
        ax.plot(labels, [r[key] for r in rows], "o-", label="ours")
        ax.axhline(bicubic[key], color="grey", linestyle="--", label="bicubic")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("residual blocks m x n")
        ax.ticklabel_format(axis="y", useOffset=False)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"equal budget: {FLAGS.train_steps} steps each; n = {FLAGS.eval_limit} test faces", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    flagfile = FLAGS.base_flags
    if not flagfile or not os.path.isfile(flagfile):
        raise app.UsageError(f"--base_flags={flagfile!r}: expected the training flagfile the settings share")
    settings = [parse_setting(s) for s in FLAGS.settings]
    os.makedirs(FLAGS.study_dir, exist_ok=True)
    times_path = os.path.join(FLAGS.study_dir, "train_times.json")
    times = json.load(open(times_path)) if os.path.exists(times_path) else {}
    run_dirs = {}
    for m, n in settings:
        name = f"{m}x{n}"
        run_dirs[name] = os.path.join(FLAGS.study_dir, name)
        times[name] = times.get(name, 0.0) + train((m, n), flagfile, run_dirs[name])
        with open(times_path, "w") as fh:
            json.dump(times, fh, indent=1)
    data = FLAGS.data or FLAGS.data_dir or flagfile_value(flagfile, "data_dir")
    eval_dir = os.path.join(FLAGS.study_dir, "eval")
    subprocess.run([sys.executable, "-m", "tf_stacksr.evaluate", f"--data={data}",
                    f"--hr_size={flagfile_value(flagfile, 'hr_size')}", f"--scale={flagfile_value(flagfile, 'scale')}",
                    "--methods=" + ",".join(["bicubic", *run_dirs.values()]), f"--limit={FLAGS.eval_limit}",
                    f"--output_dir={eval_dir}"], check=True)
    with open(os.path.join(eval_dir, "results.json")) as fh:
        results = {r["method"]: r for r in json.load(fh)["methods"]}
    rows = [{"setting": name, "parameters": parameter_count(run_dir), "train_minutes": times[name] / 60,
             **{k: results[name][k] for k in ("fid", "psnr_y", "ssim_y", "identity_distance", "same_person_rate")}}
            for name, run_dir in run_dirs.items()]
    bicubic = results["bicubic"]
    report = {"flagfile": flagfile, "train_steps": FLAGS.train_steps, "eval_limit": FLAGS.eval_limit,
              "data": data, "bicubic": bicubic, "settings": rows}
    with open(os.path.join(FLAGS.study_dir, "study.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    lines = [f"Residual blocks m x n at {FLAGS.train_steps} steps each ({flagfile}); test faces n = {FLAGS.eval_limit}.",
             "", "| m x n | generator params | train min | FID ↓ | PSNR-Y ↑ | SSIM-Y ↑ | ID distance ↓ | same person ↑ |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['setting']} | {r['parameters']:,} | {r['train_minutes']:.1f} | {r['fid']:.2f} | {r['psnr_y']:.2f} |"
              f" {r['ssim_y']:.4f} | {r['identity_distance']:.3f} | {r['same_person_rate']:.1%} |" for r in rows]
    lines.append(f"| bicubic | — | — | {bicubic['fid']:.2f} | {bicubic['psnr_y']:.2f} | {bicubic['ssim_y']:.4f} |"
                 f" {bicubic['identity_distance']:.3f} | {bicubic['same_person_rate']:.1%} |")
    with open(os.path.join(FLAGS.study_dir, "study.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    plot(rows, bicubic, os.path.join(FLAGS.study_dir, "study.png"))
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
