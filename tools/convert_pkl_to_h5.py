#!/usr/bin/env python3
"""Convert detectron2 / torchvision weights to a MaskPilot weights-only HDF5 file (for `model.weights`).

Inputs:
  * detectron2 pickles (`.pkl`): `{"model": {name: ndarray}, ...}` as in the Mask2Former / MP-Former model
    zoo, or the ImageNet backbone `R-50.pkl` (detectron2's torchvision conversion: names such as
    `stem.conv1.weight`, `res2.0.conv1.norm.weight` without the `backbone.` prefix). Backbone-only files are
    detected (no name starts with `backbone.` / `sem_seg_head.` and names start with `stem.` / `res`) and
    get the prefix `backbone.`; `--prefix P` forces a prefix, `--prefix ""` disables it.
  * PyTorch files (`.pth` / `.pt`): a state_dict or `{"model": state_dict}`; only this path imports torch.

Output: `/model/<name>` float32 datasets (PyTorch layout, as the reference; Fletcher32 checksums on every
non-scalar dataset), `/model` attribute `names` (the input order, newline-separated) and `/meta` attributes
`source` (the input file) and `converter`. Non-array entries are skipped; `pixel_mean` / `pixel_std` (input
normalization, not weights) and `num_batches_tracked` counters are dropped with a note.

Needs numpy and h5py only (torch for .pth inputs). See docs/checkpoint-format.md.
"""
import argparse
import os
import pickle
import sys

import numpy as np

DROPPED = ("pixel_mean", "pixel_std")


def load_state(path):
    """{name: ndarray-like} and a description of the container, from a .pkl or .pth file."""
    if path.endswith((".pth", ".pt")):
        import torch  # only for PyTorch files

        obj = torch.load(path, map_location="cpu", weights_only=False)
        if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
            obj = obj["model"]
        elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            obj = obj["state_dict"]
        return {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else v) for k, v in obj.items()}
    with open(path, "rb") as f:
        obj = pickle.load(f, encoding="latin1")
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    elif isinstance(obj, dict) and isinstance(obj.get("blobs"), dict):
        obj = obj["blobs"]
    if not isinstance(obj, dict):
        raise SystemExit(f"{path}: expected a dict of arrays (or {{'model': dict}}), found {type(obj).__name__}")
    return obj


def detect_prefix(names):
    """'backbone.' for a backbone-only file (e.g. R-50.pkl), else ''."""
    if any(n.startswith(("backbone.", "sem_seg_head.")) for n in names):
        return ""
    if names and all(n.startswith(("stem.", "res")) for n in names):
        return "backbone."
    return ""


def convert(src, dst, prefix=None, quiet=False):
    """Converts `src` to `dst`; returns the list of written names."""
    import h5py

    state = load_state(src)
    arrays, notes = [], []
    for name, value in state.items():
        if not isinstance(name, str):
            notes.append(f"skipped a non-string key {name!r}")
            continue
        if name.split(".")[-1] in DROPPED or name in DROPPED:
            notes.append(f"dropped {name} (input normalization, not a weight; MaskPilot normalizes in the data pipeline)")
            continue
        if name.endswith("num_batches_tracked"):
            notes.append(f"dropped {name} (BatchNorm step counter)")
            continue
        if not isinstance(value, np.ndarray) and not np.isscalar(value) or isinstance(value, (str, bytes)):
            notes.append(f"skipped {name} (not an array: {type(value).__name__})")
            continue
        array = np.asarray(value)
        if array.dtype.kind not in "fiub":
            notes.append(f"skipped {name} (dtype {array.dtype})")
            continue
        arrays.append((name, array.astype(np.float32)))
    if prefix is None:
        prefix = detect_prefix([n for n, _ in arrays])
        if prefix:
            notes.append(f"backbone-only weights: prefixed every name with '{prefix}'")
    arrays = [(prefix + n, a) for n, a in arrays]
    for name, _ in arrays:
        if "/" in name:
            raise SystemExit(f"{src}: tensor name {name!r} contains '/', which MaskPilot names never do")
    if not arrays:
        raise SystemExit(f"{src}: no arrays to convert")
    tmp = dst + ".tmp"
    with h5py.File(tmp, "w") as f:
        model = f.create_group("model")
        for name, array in arrays:
            if array.ndim == 0:
                model.create_dataset(name, data=array)  # HDF5 cannot checksum (chunk) a scalar
            else:
                model.create_dataset(name, data=array, fletcher32=True, chunks=True)
        model.attrs["names"] = "\n".join(n for n, _ in arrays)
        meta = f.create_group("meta")
        meta.attrs["source"] = os.path.abspath(src)
        meta.attrs["converter"] = "tools/convert_pkl_to_h5.py"
    os.replace(tmp, dst)
    if not quiet:
        for note in notes:
            print(f"note: {note}")
        print(f"{dst}: {len(arrays)} tensors from {src}")
    return [n for n, _ in arrays]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="detectron2 .pkl (model zoo or R-50.pkl) or PyTorch .pth")
    p.add_argument("output", help="MaskPilot weights file (.h5)")
    p.add_argument("--prefix", default=None,
                   help="prefix added to every name (default: 'backbone.' for backbone-only files, else none)")
    args = p.parse_args(argv)
    convert(args.input, args.output, prefix=args.prefix)


if __name__ == "__main__":
    sys.exit(main())
