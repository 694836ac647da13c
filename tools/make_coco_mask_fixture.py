#!/usr/bin/env python3
"""Writes Tests/DatasetsTests/Fixtures/coco_masks.json: polygons and RLEs with the masks the official COCO API
(pycocotools) makes of them, so the Swift tests can check COCORLE bit for bit without Python.

    pip install pycocotools numpy
    python3 tools/make_coco_mask_fixture.py [--out Tests/DatasetsTests/Fixtures/coco_masks.json] [--seed 0]

Not run by CI: its output is committed. Every expected value comes from pycocotools itself:
  * polygons: an object's parts go through `frPyObjects(parts, h, w)` + `merge` (what COCO.annToRLE does);
    parts with fewer than 3 points (which frPyObjects would misread as boxes) go through `_mask.frPoly`.
    Stored: the merged RLE's compressed string, its area, its toBbox, and for small images the decoded mask.
  * RLEs: random/edge-case masks encoded with `encode`; stored with their run lengths as a list (uncompressed
    RLE, checked through `frPyObjects({'counts': list, 'size': ...})`), the compressed string, and `decode`'s mask.
  * merges: `merge(rles, intersect)` of random masks.
Masks are stored row-major, packed with numpy.packbits (MSB first), base64. Coordinates are stored as the
decimal strings Python's repr gives (exactly the doubles pycocotools used).
"""
import argparse, base64, json, math, random

import numpy as np
from importlib.metadata import version
from pycocotools import mask as maskUtils
from pycocotools import _mask


def bits(m):
    """Row-major packed bits of an HxW 0/1 array, base64."""
    return base64.b64encode(np.packbits(np.ascontiguousarray(m, dtype=np.uint8).reshape(-1)).tobytes()).decode()


def text(rle):
    c = rle['counts']
    return c.decode() if isinstance(c, bytes) else c


def fmt(v):
    return repr(float(v))


def poly_case(name, parts, h, w, cases):
    parts = [[float(v) for v in p] for p in parts]
    if all(len(p) > 4 for p in parts[:1]) and all(len(p) >= 6 for p in parts):
        rle = maskUtils.merge(maskUtils.frPyObjects(parts, h, w))           # COCO.annToRLE for polygons
    else:
        rle = maskUtils.merge(_mask.frPoly(parts, h, w))                    # degenerate parts: rasterize directly
    m = maskUtils.decode(rle)
    case = {'name': name, 'h': h, 'w': w, 'parts': [[fmt(v) for v in p] for p in parts],
            'rle': text(rle), 'area': int(maskUtils.area(rle)), 'bbox': [float(v) for v in maskUtils.toBbox(rle)]}
    if h * w <= 2500:
        case['bits'] = bits(m)
    cases.append(case)


def rle_case(name, m, cases):
    m = np.asfortranarray(m.astype(np.uint8))
    h, w = m.shape
    flat = m.reshape(-1, order='F')
    counts, cur, run = [], 0, 0
    for v in flat:
        if v != cur:
            counts.append(run); run = 0; cur = v
        run += 1
    counts.append(run)
    enc = maskUtils.encode(m)
    via_list = maskUtils.frPyObjects({'counts': counts, 'size': [h, w]}, h, w)   # uncompressed RLE path
    assert text(via_list) == text(enc), name
    dec = maskUtils.decode(enc)
    assert (dec == m).all(), name
    cases.append({'name': name, 'h': h, 'w': w, 'counts': counts, 'string': text(enc),
                  'area': int(maskUtils.area(enc)), 'bbox': [float(v) for v in maskUtils.toBbox(enc)],
                  'bits': bits(dec)})


def blob_mask(rng, h, w):
    """A random mask of a few rectangles and discs, sometimes noise."""
    m = np.zeros((h, w), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(rng.randint(0, 4)):
        if rng.random() < 0.5:
            x0, y0 = rng.randint(0, w - 1), rng.randint(0, h - 1)
            m[y0:y0 + rng.randint(1, h), x0:x0 + rng.randint(1, w)] = 1
        else:
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.5, max(h, w) / 2)
            m[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = 1
    if rng.random() < 0.2:
        m ^= (np.array([rng.random() < 0.1 for _ in range(h * w)]).reshape(h, w)).astype(np.uint8)
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default='Tests/DatasetsTests/Fixtures/coco_masks.json')
    ap.add_argument('--seed', type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    polys, rles, merges = [], [], []

    # --- hand-crafted polygons -------------------------------------------------------------------------
    poly_case('integer square', [[1, 1, 5, 1, 5, 5, 1, 5]], 8, 8, polys)
    poly_case('triangle', [[0.5, 0.5, 9.5, 2.0, 3.0, 8.7]], 10, 10, polys)
    poly_case('whole image exactly', [[0, 0, 12, 0, 12, 9, 0, 9]], 9, 12, polys)
    poly_case('beyond every border', [[-3, -2, 15, -4, 16, 13, -5, 12]], 9, 12, polys)
    poly_case('concave L', [[1, 1, 9, 1, 9, 3, 3, 3, 3, 9, 1, 9]], 11, 11, polys)
    poly_case('concave U', [[1, 1, 4, 1, 4, 7, 7, 7, 7, 1, 10, 1, 10, 10, 1, 10]], 12, 12, polys)
    poly_case('bowtie (self-intersecting)', [[1, 1, 10, 10, 10, 1, 1, 10]], 12, 12, polys)
    poly_case('pentagram (self-intersecting)',
              [[10 + 8 * math.cos(math.pi / 2 + k * 4 * math.pi / 5) if i == 0 else
                10 - 8 * math.sin(math.pi / 2 + k * 4 * math.pi / 5) for k in range(5) for i in range(2)]], 20, 20, polys)
    poly_case('two disjoint parts', [[1, 1, 4, 1, 4, 4, 1, 4], [6, 6, 9, 6, 9, 9, 6, 9]], 10, 10, polys)
    poly_case('two overlapping parts', [[1, 1, 6, 1, 6, 6, 1, 6], [4, 4, 9, 4, 9, 9, 4, 9]], 10, 10, polys)
    poly_case('part inside part', [[1, 1, 9, 1, 9, 9, 1, 9], [3, 3, 6, 3, 6, 6, 3, 6]], 10, 10, polys)
    poly_case('three parts, one outside', [[1, 1, 3, 1, 2, 3], [20, 20, 25, 20, 22, 25], [5, 5, 8, 6, 6, 8]], 10, 10, polys)
    poly_case('touching left and top', [[0, 0, 5, 0, 0, 5]], 8, 8, polys)
    poly_case('touching right and bottom', [[8, 8, 3, 8, 8, 3]], 8, 8, polys)
    poly_case('sub-pixel triangle', [[2.2, 2.2, 2.6, 2.3, 2.4, 2.7]], 5, 5, polys)
    poly_case('sub-pixel at a pixel centre', [[2.4, 2.4, 2.6, 2.4, 2.6, 2.6, 2.4, 2.6]], 5, 5, polys)
    poly_case('thin sliver', [[0.1, 1.0, 9.9, 1.2, 0.1, 1.3]], 4, 10, polys)
    poly_case('collinear (zero area)', [[1, 1, 5, 5, 3, 3]], 8, 8, polys)
    poly_case('all points equal', [[2, 2, 2, 2, 2, 2]], 5, 5, polys)
    poly_case('two points', [[1, 1, 6, 4]], 8, 8, polys)
    poly_case('one point', [[3.3, 2.2]], 6, 6, polys)
    poly_case('negative near zero (truncation toward zero)', [[-0.3, -0.1, 3.7, -0.5, 3.9, 3.1, -0.19, 2.9]], 5, 5, polys)
    poly_case('ties at x.1 x.3 x.5 x.7 x.9', [[0.1, 0.3, 4.5, 0.7, 4.9, 3.3, 2.5, 4.1, 0.9, 3.5]], 6, 6, polys)
    poly_case('1x1 image', [[0, 0, 1, 0, 1, 1, 0, 1]], 1, 1, polys)
    poly_case('1x1 image, small', [[0.2, 0.2, 0.8, 0.3, 0.5, 0.9]], 1, 1, polys)
    poly_case('1-row image', [[0.5, -1, 6.5, 0.2, 3, 2]], 1, 8, polys)
    poly_case('1-column image', [[-1, 0.5, 0.6, 3, -0.5, 7.5]], 9, 1, polys)
    poly_case('vertical edge on column line', [[2.4, 0, 2.4, 5, 4.6, 5, 4.6, 0]], 6, 6, polys)
    poly_case('clockwise vs counter-clockwise', [[1, 1, 1, 6, 6, 6, 6, 1]], 8, 8, polys)
    poly_case('steep and shallow edges', [[0.3, 0.2, 7.7, 1.1, 6.2, 7.9, 5.9, 0.4, 1.0, 7.5]], 8, 8, polys)
    poly_case('exponent notation', [[1e-05, 2.5e-1, 5.0000001, 1e0, 3.999999999, 4.75]], 6, 6, polys)
    poly_case('far outside on all sides', [[-40, -30, 60, -35, 55, 70, -45, 65]], 20, 25, polys)
    poly_case('COCO-like 640x480', [[210.5, 183.12, 246.81, 170.28, 310.44, 190.01, 330.0, 260.35, 290.17, 330.9,
                                     230.62, 320.4, 199.88, 260.0]], 480, 640, polys)

    # --- random polygons --------------------------------------------------------------------------------
    def rand_poly(h, w, n, kind):
        pts = []
        if kind == 'star':
            cx, cy = rng.uniform(-2, w + 2), rng.uniform(-2, h + 2)
            r = rng.uniform(0.3, max(h, w) * 0.7)
            for k in range(n):
                a = 2 * math.pi * (k + rng.uniform(-0.4, 0.4)) / n
                rr = r * rng.uniform(0.2, 1.0)
                pts += [round(cx + rr * math.cos(a), 6), round(cy + rr * math.sin(a), 6)]
        elif kind == 'scatter':          # random order: self-intersecting
            for _ in range(n):
                pts += [round(rng.uniform(-3, w + 3), 6), round(rng.uniform(-3, h + 3), 6)]
        elif kind == 'tiny':
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 1.5)
            for k in range(n):               # full double precision
                a = 2 * math.pi * k / n
                pts += [cx + r * math.cos(a), cy + r * math.sin(a)]
        elif kind == 'tenths':           # coordinates on the 0.1 grid: exact rounding ties
            for _ in range(n):
                pts += [rng.randint(-20, 10 * w + 20) / 10, rng.randint(-20, 10 * h + 20) / 10]
        elif kind == 'coco':             # two decimals inside the image
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(1, max(h, w) / 2)
            for k in range(n):
                a = 2 * math.pi * (k + rng.uniform(-0.3, 0.3)) / n
                rr = r * rng.uniform(0.3, 1.0)
                pts += [round(min(w, max(0, cx + rr * math.cos(a))), 2), round(min(h, max(0, cy + rr * math.sin(a))), 2)]
        elif kind == 'fifths':           # multiples of 0.2 and 0.1 offsets: fine-grid column lines exactly
            for _ in range(n):
                pts += [rng.randint(-5, 5 * w + 5) / 5 + rng.choice([0, 0.1, -0.1, 0.5]),
                        rng.randint(-5, 5 * h + 5) / 5 + rng.choice([0, 0.1, -0.1, 0.5])]
        return pts

    kinds = ['star', 'scatter', 'tiny', 'tenths', 'coco', 'fifths']
    for i in range(330):
        kind = kinds[i % len(kinds)]
        h, w = rng.randint(1, 48), rng.randint(1, 48)
        nparts = 1 if rng.random() < 0.7 else rng.randint(2, 4)
        parts = [rand_poly(h, w, rng.randint(3, 14), kind) for _ in range(nparts)]
        poly_case(f'random {kind} {i}', parts, h, w, polys)
    for i in range(12):                  # a few full-size COCO-like objects (strings only)
        h, w = rng.choice([(480, 640), (427, 640), (640, 480), (375, 500)])
        parts = [rand_poly(h, w, rng.randint(8, 60), 'coco') for _ in range(rng.randint(1, 3))]
        poly_case(f'random large {i}', parts, h, w, polys)

    # --- RLEs ---------------------------------------------------------------------------------------------
    rle_case('all zero', np.zeros((5, 7)), rles)
    rle_case('all one', np.ones((5, 7)), rles)
    rle_case('1x1 zero', np.zeros((1, 1)), rles)
    rle_case('1x1 one', np.ones((1, 1)), rles)
    for (y, x) in [(0, 0), (0, 6), (4, 0), (4, 6)]:
        m = np.zeros((5, 7)); m[y, x] = 1
        rle_case(f'corner pixel {y},{x}', m, rles)
    m = np.zeros((6, 6)); m[::2, ::2] = 1; m[1::2, 1::2] = 1
    rle_case('checkerboard', m, rles)
    m = np.zeros((4, 9)); m[:, 3:] = 1
    rle_case('run spanning columns', m, rles)
    big = np.zeros((300, 200)); big[10:290, 5:195] = 1; big[100:120, 50:60] = 0
    rle_case('long runs (multi-group counts)', big, rles)
    for i in range(110):
        h, w = rng.randint(1, 40), rng.randint(1, 40)
        rle_case(f'random mask {i}', blob_mask(rng, h, w), rles)
    for r in rles:                      # bits for the large one would be big: drop them, strings suffice
        if r['h'] * r['w'] > 4096:
            del r['bits']

    # --- merges -----------------------------------------------------------------------------------------
    for i in range(40):
        h, w = rng.randint(1, 30), rng.randint(1, 30)
        inputs = [maskUtils.encode(np.asfortranarray(blob_mask(rng, h, w))) for _ in range(rng.randint(1, 4))]
        for intersect in (0, 1):
            merged = maskUtils.merge(inputs, intersect=intersect)
            merges.append({'h': h, 'w': w, 'inputs': [text(r) for r in inputs], 'intersect': intersect,
                           'result': text(merged)})

    out = {'generator': 'tools/make_coco_mask_fixture.py', 'pycocotools': version('pycocotools'),
           'numpy': np.__version__, 'seed': args.seed, 'polygons': polys, 'rles': rles, 'merges': merges}
    with open(args.out, 'w') as f:
        json.dump(out, f, separators=(',', ':'))
        f.write('\n')
    print(f'{args.out}: {len(polys)} polygons, {len(rles)} RLEs, {len(merges)} merges')


if __name__ == '__main__':
    main()
