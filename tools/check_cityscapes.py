#!/usr/bin/env python3
"""Checks MaskPilot's Cityscapes metrics against cityscapesscripts' official evaluators.

    tools/check_cityscapes.py --root CITYSCAPES_ROOT --split val --maskpilot BIN [--tasks semantic,instance,panoptic]
                              [--eval-output DIR] [--seed N] [--tolerance 0.1] [--require] [--keep DIR]

Scores the same prediction files with `maskpilot eval-results --task cityscapes-<task>` and with
evalPixelLevelSemanticLabeling (class mIoU), evalInstanceLevelSemanticLabeling (AP, AP50) and
evalPanopticSemanticLabeling (PQ/SQ/RQ for all, things, stuff), and exits 1 when any differs by more than
--tolerance (default 0.1, in percent). Without --eval-output it synthesizes predictions from the ground truth itself,
perturbed so that every rule of the protocols is exercised:
  semantic  - regions shifted, classes swapped, void label ids predicted, a class predicted that the image lacks;
  instance  - masks shifted / eroded / dilated, missed, duplicated, wrong class, predictions on group regions, void and
              tiny instances, caravans and a non-instance label (both skipped), an empty mask, tied scores;
  panoptic  - segments shifted, merged, relabelled, dropped, and predicted over crowd regions.
With --eval-output DIR it scores the result files `maskpilot eval --output DIR` wrote (cityscapes_semantic/,
cityscapes_instance/, cityscapes_panoptic_predictions.json + folder), whichever are there.

The official evaluators run in a child process of this script with CITYSCAPES_DATASET / CITYSCAPES_RESULTS set before
import (they read them at import time), in a temporary working folder (matches.json), with the instance evaluator's
ground-truth cache in that folder instead of its package folder (it would reuse a stale cache), and under numpy 2
with np.in1d restored and a JSON writer that accepts numpy integers (cityscapesscripts 2.3.0 needs both; the rules
it follows are in docs/evaluation.md#cityscapes). Exits 0 with a message when cityscapesscripts is not importable,
unless --require.
"""
import argparse
import glob
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile

TASKS = ["semantic", "instance", "panoptic"]
THINGS = [24, 25, 26, 27, 28, 31, 32, 33]


def official(task, root, split, results, work):
    """Runs in the child process: the official evaluator on `results`, printing one JSON line of percentages."""
    os.environ["CITYSCAPES_DATASET"] = root
    os.environ["CITYSCAPES_RESULTS"] = results
    os.environ["CITYSCAPES_EXPORT_DIR"] = work
    os.chdir(work)
    import numpy as np
    if not hasattr(np, "in1d"):
        np.in1d = lambda a, b, *rest, **kw: np.isin(a, b, *rest, **kw).ravel()
    from cityscapesscripts.helpers import csHelpers

    def tolerant_json(data, path):
        with open(path, "w") as f:
            json.dump(data, f, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    csHelpers.writeDict2JSON = tolerant_json
    if task == "semantic":
        from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as m
        m.writeDict2JSON = tolerant_json
        m.args.quiet, m.args.JSONOutput = True, False
        gts = sorted(glob.glob(os.path.join(root, "gtFine", split, "*", "*_gtFine_labelIds.png")))
        preds = [m.getPrediction(m.args, gt) for gt in gts]
        r = m.evaluateImgLists(preds, gts, m.args)
        out = {"mIoU": 100 * r["averageScoreClasses"]}
    elif task == "instance":
        from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as m
        m.writeDict2JSON = tolerant_json
        m.args.quiet, m.args.JSONOutput = True, False
        m.args.gtInstancesFile = os.path.join(work, "gtInstances.json")
        gts = sorted(glob.glob(os.path.join(root, "gtFine", split, "*", "*_gtFine_instanceIds.png")))
        preds = [m.getPrediction(gt, m.args) for gt in gts]
        a = m.evaluateImgLists(preds, gts, m.args)["averages"]
        out = {"AP": 100 * a["allAp"], "AP50": 100 * a["allAp50%"]}
    else:
        from cityscapesscripts.evaluation import evalPanopticSemanticLabeling as m
        jsons = [f for f in os.listdir(results) if f.endswith(".json")]
        pred_json = os.path.join(results, jsons[0])
        r = m.evaluatePanoptic(os.path.join(root, "gtFine", "cityscapes_panoptic_%s.json" % split),
                               os.path.join(root, "gtFine", "cityscapes_panoptic_%s" % split), pred_json, pred_json[:-5],
                               os.path.join(work, "panoptic_results.json"))
        out = {"%s%s" % (k, "" if g == "All" else "_" + g.lower()): 100 * r[g][k.lower()]
               for g in ["All", "Things", "Stuff"] for k in ["PQ", "SQ", "RQ"]}
    print("RESULT " + json.dumps(out))


def run_official(task, root, split, results, work, log):
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--official", task, "--root", root, "--split", split,
                           "--results", results, "--work", work], capture_output=True, text=True)
    with open(log, "a") as f:
        f.write(proc.stdout + proc.stderr)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.exit("check_cityscapes: the official %s evaluator failed (log %s):\n%s" % (task, log, (proc.stdout + proc.stderr)[-3000:]))
    return json.loads(lines[-1][7:])


def run_maskpilot(binary, task, root, split, results):
    proc = subprocess.run([binary, "eval-results", "--task", "cityscapes-" + task, "--gt", root, "--split", split,
                           "--results", results], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit("check_cityscapes: maskpilot eval-results --task cityscapes-%s failed:\n%s%s" % (task, proc.stdout, proc.stderr))
    out = {}
    for line in proc.stdout.splitlines():
        f = line.split()
        if not f:
            continue
        if task in ("semantic", "instance") and f[0] in ("mIoU", "AP", "AP50") and len(f) >= 2:
            out[f[0]] = float(f[1])
        if task == "panoptic" and f[0] in ("All", "Things", "Stuff") and len(f) == 5:
            suffix = "" if f[0] == "All" else "_" + f[0].lower()
            out.update({"PQ" + suffix: float(f[1]), "SQ" + suffix: float(f[2]), "RQ" + suffix: float(f[3])})
    return out


# --- synthesized predictions ---------------------------------------------------------------------------------------

def frames(root, split):
    files = sorted(glob.glob(os.path.join(root, "gtFine", split, "*", "*_gtFine_labelIds.png")))
    return [(os.path.basename(os.path.dirname(f)), os.path.basename(f)[:-len("_gtFine_labelIds.png")], f) for f in files]


def shift(a, rng, np, most=3):
    return np.roll(np.roll(a, rng.randint(-most, most), axis=0), rng.randint(-most, most), axis=1)


def synth_semantic(root, split, out, rng, np, Image):
    for city, stem, f in frames(root, split):
        lab = np.array(Image.open(f)).astype(np.uint8)
        pred = lab.copy()
        h, w = lab.shape
        for _ in range(3):  # shifted rectangles
            y, x = rng.randrange(h), rng.randrange(w)
            pred[y:y + h // 4, x:x + w // 4] = shift(lab, rng, np, 6)[y:y + h // 4, x:x + w // 4]
        present = sorted(set(np.unique(lab).tolist()))
        a, b = rng.choice(present), rng.choice([7, 8, 11, 21, 23, 26])
        pred[(lab == a) & (np.random.RandomState(rng.randrange(1 << 30)).rand(h, w) < 0.5)] = b  # swapped
        pred[rng.randrange(h // 2):, :rng.randrange(1, w // 6)] = rng.choice([0, 4, 9, 29])  # void label ids
        absent = [c for c in [12, 13, 19, 31, 32] if c not in present]
        if absent:  # a class the image lacks
            y, x = rng.randrange(h - 4), rng.randrange(w - 4)
            pred[y:y + 4, x:x + 4] = absent[0]
        os.makedirs(os.path.join(out, city), exist_ok=True)
        Image.fromarray(pred).save(os.path.join(out, city, stem + "_pred.png"))


def synth_instance(root, split, out, rng, np, Image):
    def erode(m):
        e = m.copy()
        e[1:, :] &= m[:-1, :]; e[:-1, :] &= m[1:, :]; e[:, 1:] &= m[:, :-1]; e[:, :-1] &= m[:, 1:]
        return e

    def dilate(m):
        d = m.copy()
        d[1:, :] |= m[:-1, :]; d[:-1, :] |= m[1:, :]; d[:, 1:] |= m[:, :-1]; d[:, :-1] |= m[:, 1:]
        return d
    # The first counted instance (>= 100 px) of each class is always predicted with its class: a class whose every
    # prediction is ignored and whose every instance is missed crashes the official script (IndexError on an empty
    # cumsum in evaluateMatches), where MaskPilot reports AP 0.
    anchored = set()
    for city, stem, f in frames(root, split):
        ids = np.array(Image.open(f.replace("_labelIds.png", "_instanceIds.png"))).astype(np.int64)
        preds = []  # (mask, label id, score)
        for v in np.unique(ids).tolist():
            label = v // 1000 if v >= 1000 else v
            m = ids == v
            if v >= 1000:
                anchor = label not in anchored and m.sum() >= 100
                anchored |= {label} if anchor else set()
                if rng.random() < 0.12 and not anchor:
                    continue  # missed
                m = [shift(m, rng, np), erode(m), dilate(m), m][rng.randrange(4)]
                cls = label if anchor or rng.random() > 0.1 else rng.choice(THINGS)
                preds.append((m, cls, rng.random()))
                if rng.random() < 0.2:
                    preds.append((shift(m, rng, np, 1), cls, rng.random()))  # duplicate
            elif label in THINGS or label in (1, 3, 4) or (label == 26 and rng.random() < 0.5):
                if rng.random() < 0.7:  # on a group region or void
                    preds.append((m, rng.choice(THINGS), rng.random()))
        h, w = ids.shape
        box = np.zeros((h, w), bool)
        box[h // 3:h // 3 + 6, w // 2:w // 2 + 10] = True
        preds.append((box, 29, 0.5))  # caravan: skipped
        preds.append((box, 7, 0.5))  # road: skipped
        preds.append((np.zeros((h, w), bool), 26, 0.9))  # empty: skipped
        if preds:
            preds.append((preds[0][0], preds[0][1], preds[0][2]))  # a tie (same score)
        folder = os.path.join(out, city)
        os.makedirs(os.path.join(folder, "masks"), exist_ok=True)
        with open(os.path.join(folder, stem + "_pred.txt"), "w") as txt:
            for j, (m, label, score) in enumerate(preds):
                name = "masks/mask_%s_%d.png" % (stem, j)
                Image.fromarray((m * 255).astype(np.uint8)).save(os.path.join(folder, name))
                txt.write("%s %d %.6f\n" % (name, label, round(score, 2) if j % 5 == 0 else score))


def synth_panoptic(root, split, out, rng, np, Image):
    gt = json.load(open(os.path.join(root, "gtFine", "cityscapes_panoptic_%s.json" % split)))
    stuff = [c["id"] for c in gt["categories"] if not c["isthing"]]
    os.makedirs(os.path.join(out, "pred"), exist_ok=True)
    annotations = []
    for a in gt["annotations"]:
        rgb = np.array(Image.open(os.path.join(root, "gtFine", "cityscapes_panoptic_%s" % split, a["file_name"]))).astype(np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        pred = np.zeros_like(ids)
        cats = {}
        next_id = 1
        segs = a["segments_info"]
        merge_into = None
        for s in segs:
            m = ids == s["id"]
            if s["iscrowd"] and rng.random() < 0.5:
                m = m  # predicted over the crowd region, as a thing of its class
            elif rng.random() < 0.1:
                continue  # dropped
            if rng.random() < 0.3:
                m = shift(m, rng, np)
            cat = s["category_id"] if rng.random() > 0.1 else rng.choice(stuff)
            if merge_into is not None and rng.random() < 0.15:
                pred[m & (pred == 0)] = merge_into  # merged into the previous segment
                continue
            pred[m & (pred == 0)] = next_id
            cats[next_id] = cat
            merge_into = next_id
            next_id += 1
        present = set(np.unique(pred).tolist()) - {0}
        out_rgb = np.stack([pred % 256, pred // 256 % 256, pred // 65536], axis=-1).astype(np.uint8)
        name = a["image_id"] + "_panoptic.png"
        Image.fromarray(out_rgb).save(os.path.join(out, "pred", name))
        annotations.append({"image_id": a["image_id"], "file_name": name,
                            "segments_info": [{"id": i, "category_id": cats[i]} for i in sorted(present)]})
    json.dump({"annotations": annotations}, open(os.path.join(out, "pred.json"), "w"))


# --- main ----------------------------------------------------------------------------------------------------------

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--maskpilot", default=".build/release/maskpilot")
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--eval-output")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tolerance", type=float, default=0.1)
    p.add_argument("--require", action="store_true")
    p.add_argument("--keep")
    p.add_argument("--official", help=argparse.SUPPRESS)
    p.add_argument("--results", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    a = p.parse_args()
    root = os.path.abspath(a.root)
    if a.official:
        return official(a.official, root, a.split, os.path.abspath(a.results), a.work)
    try:
        import numpy as np
        from PIL import Image
        import cityscapesscripts  # noqa: F401
    except ImportError as e:
        print("check_cityscapes: cityscapesscripts, numpy or Pillow not importable (%s); nothing checked" % e)
        return 1 if a.require else 0
    tasks = [t for t in a.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        sys.exit("check_cityscapes: unknown task(s) %s (known: %s)" % (unknown, TASKS))
    work = a.keep or tempfile.mkdtemp(prefix="check-cityscapes-")
    os.makedirs(work, exist_ok=True)
    rng = random.Random(a.seed)
    failures, compared = 0, 0
    try:
        for task in tasks:
            if a.eval_output:
                e = os.path.abspath(a.eval_output)
                results = {"semantic": os.path.join(e, "cityscapes_semantic"), "instance": os.path.join(e, "cityscapes_instance"),
                           "panoptic": os.path.join(work, "panoptic-from-eval")}[task]
                if task == "panoptic":
                    if not os.path.exists(os.path.join(e, "cityscapes_panoptic_predictions.json")):
                        continue
                    shutil.rmtree(results, ignore_errors=True)
                    os.makedirs(results)
                    shutil.copy(os.path.join(e, "cityscapes_panoptic_predictions.json"), results)
                    shutil.copytree(os.path.join(e, "cityscapes_panoptic_predictions"), os.path.join(results, "cityscapes_panoptic_predictions"))
                elif not os.path.isdir(results):
                    continue
            else:
                results = os.path.join(work, "pred-" + task)
                shutil.rmtree(results, ignore_errors=True)
                os.makedirs(results)
                {"semantic": synth_semantic, "instance": synth_instance, "panoptic": synth_panoptic}[task](
                    root, a.split, results, rng, np, Image)
            ours = run_maskpilot(a.maskpilot, task, root, a.split, results)
            scratch = os.path.join(work, "official-" + task)
            os.makedirs(scratch, exist_ok=True)
            theirs = run_official(task, root, a.split, results, scratch, os.path.join(work, "official.log"))
            for name, value in theirs.items():
                mine = ours.get(name)
                nan_mine, nan_theirs = mine is None or math.isnan(mine), math.isnan(value)
                delta = 0.0 if nan_mine and nan_theirs else (float("inf") if nan_mine or nan_theirs else abs(mine - value))
                good = delta <= a.tolerance
                failures += 0 if good else 1
                compared += 1
                print("check_cityscapes: %s %s: maskpilot %s official %.4f (|Δ| %.4f)%s"
                      % (task, name, "missing" if mine is None else "%.2f" % mine, value, delta, "" if good else "  <-- differs"))
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    if compared == 0:
        print("check_cityscapes: nothing to compare")
        return 1
    print("check_cityscapes: %d metrics compared, %d differ by more than %.2f" % (compared, failures, a.tolerance))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
