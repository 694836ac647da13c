#!/usr/bin/env python3
"""Builds Tests/EvaluationTests/Fixtures/coco_ap_fixture.json: a small synthetic COCO instance ground truth
(several images and categories, crowd regions, objects across the small/medium/large ranges), detections
(overlapping, duplicated, on crowd regions, shifted, false positives, tied scores) and the 12 stats that the
COCO API (pycocotools COCOeval, iouType='segm') computes for them. The Swift test
COCOMaskAPTests reproduces the stats with COCOMaskAP.evaluate.

Usage: python3 tools/make_coco_ap_fixture.py [--check]   (needs numpy and pycocotools)
"""
import json
import os
import sys

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Tests", "EvaluationTests", "Fixtures", "coco_ap_fixture.json")


def encode(m):
    rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def blob(rng, h, w, cy, cx, ry, rx):
    yy, xx = np.mgrid[0:h, 0:w]
    m = ((yy - cy) / max(ry, 0.5)) ** 2 + ((xx - cx) / max(rx, 0.5)) ** 2 <= 1.0
    # A ragged edge so masks are not all ellipses.
    noise = rng.random((h, w)) < 0.08
    edge = ((yy - cy) / max(ry, 0.5)) ** 2 + ((xx - cx) / max(rx, 0.5)) ** 2 <= 1.3
    return (m | (edge & noise)).astype(np.uint8)


def main():
    rng = np.random.default_rng(7)
    categories = [{"id": c, "name": "c%d" % c, "supercategory": "s"} for c in (1, 2, 5)]
    images, anns, dets = [], [], []
    ann_id = 1
    sizes = [(120, 160), (96, 128), (150, 150), (80, 100), (128, 96), (140, 180), (200, 240)]
    for img_id, (h, w) in enumerate(sizes, start=1):
        images.append({"id": img_id, "file_name": "%d.png" % img_id, "height": h, "width": w})
        n_obj = int(rng.integers(2, 7))
        for _ in range(n_obj):
            cat = int(rng.choice([1, 2, 5]))
            # radius spread so areas fall in small (<32²), medium and large (>96²) ranges
            r = float(rng.choice([3, 5, 12, 20, 30, 45, 65]))
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            m = blob(rng, h, w, cy, cx, r * rng.uniform(0.6, 1.2), r * rng.uniform(0.6, 1.2))
            if m.sum() == 0:
                continue
            crowd = int(rng.random() < 0.15)
            rle = encode(m)
            area = float(mask_utils.area(mask_utils.encode(np.asfortranarray(m))))
            anns.append({"id": ann_id, "image_id": img_id, "category_id": cat, "iscrowd": crowd,
                         "area": area, "bbox": [float(v) for v in mask_utils.toBbox(rle)], "segmentation": rle})
            ann_id += 1
            # detections of this object
            kind = rng.random()
            if kind < 0.15:
                continue  # missed
            shift = int(rng.integers(0, 3 if r > 5 else 2))
            dm = np.roll(np.roll(m, shift, axis=0), int(rng.integers(-2, 3)), axis=1)
            dm = dm | (blob(rng, h, w, cy, cx, r * 0.9, r * 0.9) & (rng.random((h, w)) < 0.5))
            score = round(float(rng.uniform(0.3, 1.0)), 3)
            dets.append({"image_id": img_id, "category_id": cat, "segmentation": encode(dm), "score": score})
            if kind > 0.75:  # duplicate with lower score
                dets.append({"image_id": img_id, "category_id": cat, "segmentation": encode(dm ^ (rng.random((h, w)) < 0.01)),
                             "score": round(score * 0.8, 3)})
            if kind > 0.9:  # wrong class
                dets.append({"image_id": img_id, "category_id": 1 if cat != 1 else 2,
                             "segmentation": encode(dm), "score": round(score * 0.5, 3)})
            if crowd:  # small detections inside the crowd region (ignored by COCO)
                ys, xs = np.nonzero(m)
                for _ in range(2):
                    j = int(rng.integers(0, len(ys)))
                    sm = np.zeros((h, w), np.uint8)
                    sm[max(0, ys[j] - 2):ys[j] + 3, max(0, xs[j] - 2):xs[j] + 3] = 1
                    dets.append({"image_id": img_id, "category_id": cat, "segmentation": encode(sm),
                                 "score": round(float(rng.uniform(0.2, 0.9)), 3)})
        # false positives, some with tied scores
        for _ in range(int(rng.integers(0, 4))):
            r = float(rng.choice([4, 10, 25, 50]))
            fm = blob(rng, h, w, rng.uniform(0, h), rng.uniform(0, w), r, r)
            if fm.sum() == 0:
                continue
            dets.append({"image_id": img_id, "category_id": int(rng.choice([1, 2, 5])),
                         "segmentation": encode(fm), "score": 0.5})
    # an image with 12 objects of one category (so AR at maxDets 1 / 10 / 100 differ)
    images.append({"id": 50, "file_name": "50.png", "height": 100, "width": 100})
    for j in range(12):
        gm = np.zeros((100, 100), np.uint8)
        y, x = 5 + 30 * (j // 4), 5 + 23 * (j % 4)
        gm[y:y + 15, x:x + 15] = 1
        anns.append({"id": ann_id, "image_id": 50, "category_id": 5, "iscrowd": 0, "area": 225.0,
                     "bbox": [float(x), float(y), 15.0, 15.0], "segmentation": encode(gm)})
        ann_id += 1
        dm = np.roll(gm, int(rng.integers(0, 4)), axis=1)
        dets.append({"image_id": 50, "category_id": 5, "segmentation": encode(dm),
                     "score": round(float(rng.uniform(0.1, 1.0)), 3)})
    # an image with no ground truth but a detection
    images.append({"id": 99, "file_name": "99.png", "height": 64, "width": 64})
    em = np.zeros((64, 64), np.uint8); em[10:40, 10:40] = 1
    dets.append({"image_id": 99, "category_id": 2, "segmentation": encode(em), "score": 0.95})

    gt = {"images": images, "annotations": anns, "categories": categories}
    coco_gt = COCO()
    coco_gt.dataset = json.loads(json.dumps(gt))
    coco_gt.createIndex()
    coco_dt = coco_gt.loadRes(json.loads(json.dumps(dets)))
    ev = COCOeval(coco_gt, coco_dt, iouType="segm")
    ev.evaluate(); ev.accumulate(); ev.summarize()
    stats = [float(s) for s in ev.stats]
    fixture = {"ground_truth": gt, "detections": dets, "stats": stats,
               "note": "stats from pycocotools COCOeval(iouType='segm') with default params"}
    text = json.dumps(fixture, separators=(",", ":"))
    if "--check" in sys.argv:
        old = json.load(open(OUT))
        print("stored stats equal:", np.allclose(old["stats"], stats, atol=0, rtol=0))
        return
    with open(OUT, "w") as f:
        f.write(text)
    print("wrote %s (%d bytes, %d gt, %d dets)" % (OUT, len(text), len(anns), len(dets)))


if __name__ == "__main__":
    main()
