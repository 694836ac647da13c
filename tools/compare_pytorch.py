#!/usr/bin/env python3
"""The honest side-by-side: MaskPilot's training step and inference against HF transformers' Mask2Former in PyTorch
(float32, and bfloat16 under torch.autocast), run alternately in one session, at the same configurations and thread
counts, each in its own process so peak RSS is the process's own.

Configurations (MaskPilot's config file; the PyTorch model is built to the same sizes, random weights, offline):
    bench  configs/bench.yaml: ResNet-18, 256x256, batch 2, 100 queries, 6 encoder layers, 10 predictions,
           12544 points, 150 classes
    r50    configs/mask2former-ade20k-semantic-r50.yaml at 512x512, batch 1
    swin-t configs/mask2former-ade20k-semantic-swin-t.yaml at 512x512, batch 1 (Swin-T, window 7, 150 classes)
    swin-l configs/mask2former-coco-panoptic-swin-l.yaml at 512x512, batch 1 (Swin-L, window 12, 200 queries,
           133 classes); at 512 every stage's map (128 ... 16) is larger than the window, where HF's Swin and the
           original (MaskPilot's) compute the same thing

Usage (`make bench-compare` creates the venv and runs this):
    python3 -m venv VENV && VENV/bin/pip install torch transformers
    VENV/bin/python tools/compare_pytorch.py [--configs bench,r50] [--threads 1,2] [--rounds 2] [--steps 3]

For each configuration and thread count it runs, `--rounds` times in turn: MaskPilot fp32, MaskPilot bf16, PyTorch
fp32, PyTorch bf16 autocast. Each run times `--steps` training steps after one warm-up step (forward with the loss,
backward, AdamW) and one inference forward, and reports the median step. The table gives the best round of each, the
ratios of PyTorch's time to MaskPilot's at equal precision, and each process's peak RSS.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))

CONFIGS = {
    # name: (MaskPilot config, --set overrides, PyTorch model description)
    "bench": ("configs/bench.yaml", [],
              dict(depth=18, size=256, batch=2, queries=100, encoder_layers=6, predictions=10, points=12544, classes=150)),
    "r50": ("configs/mask2former-ade20k-semantic-r50.yaml", ["solver.ims_per_batch=1", "input.crop_size=512"],
            dict(depth=50, size=512, batch=1, queries=100, encoder_layers=6, predictions=10, points=12544, classes=150)),
    "swin-t": ("configs/mask2former-ade20k-semantic-swin-t.yaml", ["solver.ims_per_batch=1", "input.crop_size=512"],
               dict(swin=dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7),
                    size=512, batch=1, queries=100, encoder_layers=6, predictions=10, points=12544, classes=150)),
    "swin-l": ("configs/mask2former-coco-panoptic-swin-l.yaml", ["solver.ims_per_batch=1", "input.crop_size=512"],
               dict(swin=dict(embed_dim=192, depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48], window_size=12),
                    size=512, batch=1, queries=200, encoder_layers=6, predictions=10, points=12544, classes=133)),
}


def torch_worker(spec, threads, precision, steps):
    """Runs in a child process: times the HF model and prints one JSON line."""
    import torch
    import transformers
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, ResNetConfig, SwinConfig

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()
    if "swin" in spec:              # drop path 0.3 as MaskPilot's Swin configs
        backbone = SwinConfig(**spec["swin"], drop_path_rate=0.3, out_features=["stage1", "stage2", "stage3", "stage4"])
    else:
        basic = spec["depth"] in (18, 34)
        depths = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}[spec["depth"]]
        widths = [64, 128, 256, 512] if basic else [256, 512, 1024, 2048]
        backbone = ResNetConfig(embedding_size=64, hidden_sizes=widths, depths=depths,
                                layer_type="basic" if basic else "bottleneck",
                                out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(backbone_config=backbone, num_queries=spec["queries"], num_labels=spec["classes"],
                               encoder_layers=spec["encoder_layers"], decoder_layers=spec["predictions"],
                               train_num_points=spec["points"])
    model = Mask2FormerForUniversalSegmentation(config)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    b, s = spec["batch"], spec["size"]
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randn(b, 3, s, s, generator=generator)
    masks, classes = [], []
    for _ in range(b):             # three rectangles per image, as MaskPilot's synthetic bench batch
        m = torch.zeros(3, s, s)
        for j in range(3):
            y, x = torch.randint(0, s // 2, (2,), generator=generator).tolist()
            m[j, y:y + s // 3, x:x + s // 3] = 1
        masks.append(m)
        classes.append(torch.randint(0, spec["classes"], (3,), generator=generator))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = model(pixel_values=pixels, mask_labels=masks, class_labels=classes).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.01)
        optimizer.step()

    train_step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        train_step()
        times.append(time.perf_counter() - t0)
    model.eval()
    with torch.no_grad(), autocast:
        model(pixel_values=pixels)
        t0 = time.perf_counter()
        model(pixel_values=pixels)
        inference = time.perf_counter() - t0
    print(json.dumps({"step": sorted(times)[len(times) // 2], "inference": inference,
                      "torch": torch.__version__, "transformers": transformers.__version__}))


def run_child(argv, env):
    """Runs `argv`, returns (stdout, peak RSS in GB, exit status)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return out, usage.ru_maxrss / 1e6, proc.returncode


def maskpilot(binary, name, threads, precision, steps):
    config, sets, _ = CONFIGS[name]
    argv = [binary, "bench", "step", "--config", config, "--threads", str(threads), "--precision", precision,
            "--steps", str(steps)]
    for s in sets:
        argv += ["--set", s]
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    out, rss, status = run_child(argv, env)
    if status != 0:
        sys.exit(f"maskpilot bench step failed ({' '.join(argv)}):\n{out}")
    step = float(re.search(r"^step \(median\)\s+([0-9.]+) s", out, re.M).group(1))
    inference = float(re.search(r"^inference forward\s+([0-9.]+) s", out, re.M).group(1))
    return {"step": step, "inference": inference, "rss": rss}


def pytorch(name, threads, precision, steps):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    argv = [sys.executable, os.path.abspath(__file__), "--torch-worker", name, "--threads", str(threads),
            "--precision", precision, "--steps", str(steps)]
    out, rss, status = run_child(argv, env)
    if status != 0:
        sys.exit(f"the PyTorch worker failed ({' '.join(argv)}):\n{out}")
    result = json.loads(out.strip().splitlines()[-1])
    result["rss"] = rss
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="bench,r50")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--maskpilot", default=os.path.join(ROOT, ".build", "release", "maskpilot"))
    parser.add_argument("--torch-worker", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        torch_worker(CONFIGS[args.torch_worker][2], int(args.threads), args.precision, args.steps)
        return 0

    rows = []
    versions = ""
    for name in args.configs.split(","):
        for threads in [int(t) for t in args.threads.split(",")]:
            best = {}
            for r in range(args.rounds):
                for who, precision in [("maskpilot", "fp32"), ("maskpilot", "bf16"), ("pytorch", "fp32"), ("pytorch", "bf16")]:
                    res = (maskpilot(args.maskpilot, name, threads, precision, args.steps) if who == "maskpilot"
                           else pytorch(name, threads, precision, args.steps))
                    if who == "pytorch":
                        versions = f"torch {res['torch']}, transformers {res['transformers']}"
                    print(f"{name} {threads} thread(s) round {r + 1}: {who} {precision}: step {res['step']:.3f} s, "
                          f"inference {res['inference']:.3f} s, peak RSS {res['rss']:.2f} GB", flush=True)
                    key = (who, precision)
                    if key not in best or res["step"] < best[key]["step"]:
                        best[key] = dict(res, inference=min(res["inference"], best.get(key, res)["inference"]))
            rows.append((name, threads, best))

    print(f"\nMaskPilot vs PyTorch ({versions}), best of {args.rounds} rounds, median of {args.steps} steps each")
    print("| config | threads | precision | MaskPilot step | PyTorch step | ratio | MaskPilot inference | PyTorch inference "
          "| ratio | peak RSS MaskPilot / PyTorch |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, threads, best in rows:
        for precision in ("fp32", "bf16"):
            m, p = best[("maskpilot", precision)], best[("pytorch", precision)]
            print(f"| {name} | {threads} | {precision} | {m['step']:.3f} s | {p['step']:.3f} s | {p['step'] / m['step']:.2f}x "
                  f"| {m['inference']:.3f} s | {p['inference']:.3f} s | {p['inference'] / m['inference']:.2f}x "
                  f"| {m['rss']:.2f} / {p['rss']:.2f} GB |")
        m16, p32 = best[("maskpilot", "bf16")], best[("pytorch", "fp32")]
        print(f"| {name} | {threads} | MaskPilot bf16 vs PyTorch fp32 | {m16['step']:.3f} s | {p32['step']:.3f} s "
              f"| {p32['step'] / m16['step']:.2f}x | {m16['inference']:.3f} s | {p32['inference']:.3f} s "
              f"| {p32['inference'] / m16['inference']:.2f}x | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
