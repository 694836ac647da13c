#!/usr/bin/env python3
"""Checks MaskPilot's COCO mask AP against the COCO API (pycocotools COCOeval, iouType="segm").

    tools/check_coco_ap.py --root COCO_ROOT --split val2017 [--results RESULTS.json] [--maskpilot BIN] [--tolerance 0.001]

Scores the same results JSON with `maskpilot eval-results --task instance` and with pycocotools, and compares all
12 statistics (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl) and every category's AP (detectron2's
per-category table: the mean of COCOeval's precision[:, :, k, 0, -1] above -1, nan without ground truth). Exits 1 when any differs by more
than --tolerance (default 0.001, i.e. 0.1 AP). Without --results it synthesizes detections from the ground truth
itself, so the check exercises the whole protocol without a model: masks shifted by 0-3 pixels, some eroded to
a corner, some classes swapped, duplicates, crowd-overlapping and missing detections, and random scores.

Exits 0 with a message (and checks nothing) when pycocotools is not installed; pass --require to make that an
error instead.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]


def synthesize(coco, mask_utils, np, seed):
    """Detections derived from the ground truth: a realistic mix of good, poor, wrong-class and duplicate ones."""
    rng = random.Random(seed)
    cat_ids = sorted(coco.getCatIds())
    out = []
    for ann in coco.loadAnns(coco.getAnnIds()):
        if rng.random() < 0.15:
            continue  # missed
        mask = coco.annToMask(ann)
        dy, dx = rng.randint(-3, 3), rng.randint(-3, 3)
        mask = np.roll(np.roll(mask, dy, axis=0), dx, axis=1)
        if rng.random() < 0.2:  # a poor mask: only one quadrant of the object
            ys, xs = np.nonzero(mask)
            if len(ys):
                cy, cx = int(ys.mean()), int(xs.mean())
                mask = mask.copy()
                mask[cy:, :] = 0
                mask[:, cx:] = 0
        category = ann["category_id"] if rng.random() > 0.1 else rng.choice(cat_ids)
        copies = 2 if rng.random() < 0.15 else 1  # duplicates
        for _ in range(copies):
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            out.append({"image_id": ann["image_id"], "category_id": category, "segmentation": rle,
                        "score": round(rng.random(), 6)})
    return out


def maskpilot_stats(binary, root, split, results):
    proc = subprocess.run([binary, "eval-results", "--task", "instance", "--gt", root, "--split", split, "--results", results],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"check_coco_ap: maskpilot eval-results failed:\n{proc.stdout}{proc.stderr}")
    stats, categories = {}, {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] in NAMES and "=" in line:
            stats[parts[0]] = float(line.rsplit("=", 1)[1])
        elif len(parts) >= 4 and parts[0] == "category" and parts[2] == "=":
            categories[int(parts[1])] = float(parts[3])
    missing = [n for n in NAMES if n not in stats]
    if missing:
        sys.exit(f"check_coco_ap: maskpilot's output lacks {missing}:\n{proc.stdout}")
    return [stats[n] for n in NAMES], categories


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="COCO root holding annotations/instances_<split>.json")
    ap.add_argument("--split", required=True)
    ap.add_argument("--results", help="a COCO results JSON (default: synthesized from the ground truth)")
    ap.add_argument("--maskpilot", default=".build/release/maskpilot")
    ap.add_argument("--tolerance", type=float, default=0.001)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--require", action="store_true", help="fail when pycocotools is missing")
    args = ap.parse_args()
    try:
        import contextlib
        import io
        import numpy as np
        from pycocotools import mask as mask_utils
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as e:
        print(f"check_coco_ap: pycocotools is not installed ({e}); nothing checked. pip install pycocotools to run it.")
        sys.exit(1 if args.require else 0)

    gt_file = os.path.join(args.root, "annotations", f"instances_{args.split}.json")
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(gt_file)
    results = args.results
    tmp = None
    if results is None:
        tmp = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump(synthesize(coco, mask_utils, np, args.seed), tmp)
        tmp.close()
        results = tmp.name
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            dt = coco.loadRes(results)
            ev = COCOeval(coco, dt, iouType="segm")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        reference = [float(v) for v in ev.stats]
        ours, our_categories = maskpilot_stats(args.maskpilot, args.root, args.split, results)
        precision = ev.eval["precision"]
        reference_categories = {}
        for k, cat in enumerate(ev.params.catIds):
            p = precision[:, :, k, 0, -1]
            p = p[p > -1]
            reference_categories[cat] = float(np.mean(p)) if p.size else float("nan")
    finally:
        if tmp is not None:
            os.unlink(tmp.name)
    worst = max(abs(a - b) for a, b in zip(reference, ours))
    n = len(json.load(open(results))) if tmp is None else "synthesized"
    print(f"check_coco_ap: {gt_file}: {len(coco.getImgIds())} images, {len(coco.getAnnIds())} annotations, detections: {n}")
    print(f"{'stat':6} {'pycocotools':>12} {'maskpilot':>12} {'diff':>10}")
    for name, a, b in zip(NAMES, reference, ours):
        print(f"{name:6} {a:12.6f} {b:12.6f} {b - a:+10.2e}")
    if set(our_categories) != set(reference_categories):
        print(f"check_coco_ap: FAILED: categories {sorted(our_categories)} vs pycocotools' {sorted(reference_categories)}")
        sys.exit(1)
    def gap(a, b):
        return 0.0 if a != a and b != b else (float("inf") if (a != a) != (b != b) else abs(a - b))
    category_worst = max((gap(reference_categories[c], our_categories[c]) for c in reference_categories), default=0.0)
    print(f"per-category AP: {len(reference_categories)} categories, largest difference {category_worst:.2e}")
    worst = max(worst, category_worst)
    if worst > args.tolerance:
        print(f"check_coco_ap: FAILED: largest difference {worst:.6f} > tolerance {args.tolerance}")
        sys.exit(1)
    print(f"check_coco_ap: ok: largest difference {worst:.2e} (tolerance {args.tolerance})")


if __name__ == "__main__":
    main()
