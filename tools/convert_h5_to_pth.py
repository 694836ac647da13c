#!/usr/bin/env python3
"""Convert a MaskPilot checkpoint (or weights-only HDF5) to a PyTorch state_dict file.

Reads `/model/<name>` (reference names, PyTorch layout; order from the `/model` attribute `names`) and
writes `{name: torch.Tensor}` with `torch.save` — a plain state_dict that `model.load_state_dict` and
detectron2's DetectionCheckpointer accept. Without torch, `--npz` writes the same arrays with numpy
(`numpy.savez`, keys are the names); a .pth output without torch installed is an error, never a silent
change of format. Needs numpy and h5py (and torch unless --npz). See docs/checkpoint-format.md.
"""
import argparse
import sys

import numpy as np


def read_model(path):
    """[(name, ndarray)] of the /model group, in state_dict order."""
    import h5py

    with h5py.File(path, "r") as f:
        if "model" not in f:
            raise SystemExit(f"{path}: no /model group (not a MaskPilot checkpoint or weights file)")
        group = f["model"]
        present = list(group.keys())
        names = group.attrs.get("names")
        if isinstance(names, bytes):
            names = names.decode()
        order = [n for n in names.split("\n") if n] if names else []
        missing = [n for n in order if n not in group]
        if missing:
            raise SystemExit(f"{path}:/model/{missing[0]}: missing dataset ({len(missing)} listed but absent)")
        order += [n for n in present if n not in set(order)]
        return [(n, group[n][()]) for n in order]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="MaskPilot checkpoint or weights file (.h5)")
    p.add_argument("output", help="PyTorch state_dict file (.pth), or .npz with --npz")
    p.add_argument("--npz", action="store_true", help="write numpy .npz instead of torch.save (no torch needed)")
    args = p.parse_args(argv)
    tensors = read_model(args.input)
    if args.npz:
        np.savez(args.output, **dict(tensors))
        print(f"{args.output}: {len(tensors)} arrays (numpy .npz) from {args.input}")
        return 0
    try:
        import torch
    except ImportError:
        raise SystemExit("torch is not installed: cannot write a .pth; use --npz for a numpy .npz file")
    state_dict = {n: torch.from_numpy(np.ascontiguousarray(a)) for n, a in tensors}
    torch.save(state_dict, args.output)
    print(f"{args.output}: {len(tensors)} tensors (torch state_dict) from {args.input}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
