#!/usr/bin/env python3
"""Convert detectron2 / torchvision weights to a MaskPilot weights-only HDF5 file (for `model.weights`).

Inputs:
  * detectron2 pickles (`.pkl`): `{"model": {name: ndarray}, ...}` as in the Mask2Former / MP-Former model
    zoo, or the ImageNet backbone `R-50.pkl` (detectron2's torchvision conversion: names such as
    `stem.conv1.weight`, `res2.0.conv1.norm.weight` without the `backbone.` prefix). Backbone-only files are
    detected (no name starts with `backbone.` / `sem_seg_head.` and names start with `stem.` / `res`) and
    get the prefix `backbone.`; `--prefix P` forces a prefix, `--prefix ""` disables it.
  * PyTorch files (`.pth` / `.pt` / `.bin`, e.g. HF `pytorch_model.bin`): a state_dict or `{"model": state_dict}` /
    `{"state_dict": state_dict}`. Files in torch's zip format (every torch >= 1.6) are read without torch: a
    restricted unpickler rebuilds each tensor from its storage record (`archive/data/<key>`) with numpy; only the
    legacy non-zip format needs torch (read with `weights_only=True`). `.pkl` files are read with an unpickler that
    allows numpy's array globals only: a pickle cannot run code.
  * ImageNet Swin backbones (`swin_*_patch4_window*.pkl` / `.pth`: `patch_embed.*`, `layers.*`) also get the
    prefix `backbone.`.

Output: `/model/<name>` float32 datasets (PyTorch layout, as the reference; Fletcher32 checksums on every
non-scalar dataset), `/model` attribute `names` (the input order, newline-separated) and `/meta` attributes
`source` (the input file) and `converter`. Non-array entries are skipped; `pixel_mean` / `pixel_std` (input
normalization, not weights) and `num_batches_tracked` counters are dropped with a note; `pixel_mean` / `pixel_std`
other than the detectron2 values MaskPilot's data pipeline applies stop the conversion (exit 1).

Needs numpy and h5py only (torch for legacy non-zip .pth inputs). See docs/checkpoint-format.md.
"""
import argparse
import collections
import os
import pickle
import sys
import zipfile

import numpy as np

DROPPED = ("pixel_mean", "pixel_std")
# The normalization MaskPilot's data pipeline applies (detectron2's MODEL.PIXEL_MEAN / PIXEL_STD, RGB, 0-255 scale).
NORMALIZATION = {"pixel_mean": (123.675, 116.28, 103.53), "pixel_std": (58.395, 57.12, 57.375)}


def check_normalization(src, name, value):
    """Stops (exit 1, naming the file and key) when a checkpoint's pixel_mean / pixel_std differ from ImageNet's RGB
    statistics, MaskPilot's default model.pixel_mean / pixel_std: detectron2 models with others usually take BGR input."""
    ours = NORMALIZATION[name.split(".")[-1]]
    try:
        theirs = np.asarray(value, np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise SystemExit(f"{src}: {name} is not numeric ({type(value).__name__}: {value!r:.60})")
    if theirs.shape != (3,) or np.max(np.abs(theirs - ours)) > 0.01:
        raise SystemExit(f"{src}: {name} is {np.round(theirs, 3).tolist()}, but MaskPilot's recipes normalize RGB pixels (0-255) "
                         f"with ImageNet's {list(ours)} (model.pixel_mean / model.pixel_std); detectron2 models with other "
                         f"statistics usually expect BGR input (INPUT.FORMAT), which MaskPilot does not feed, and would "
                         f"predict from shifted inputs, so the conversion stops")


# torch storage class name -> numpy dtype of its elements (bfloat16 is read as its 16 high bits of a float32).
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16, "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _Storage:
    """A storage class named in a torch pickle (`torch.FloatStorage` ...): only its element type matters."""

    def __init__(self, name):
        if name not in STORAGE_DTYPES:
            raise SystemExit(f"unsupported torch storage type torch.{name}")
        self.dtype = STORAGE_DTYPES[name]


def _rebuild_tensor(storage, offset, size, stride, *_):
    """torch._utils._rebuild_tensor_v2 with numpy: a strided view of the flat storage, copied."""
    if not size:
        return np.array(storage[offset])
    itemsize = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride))
    return np.array(view)


class _TorchZipUnpickler(pickle.Unpickler):
    """Reads `data.pkl` of a torch zip checkpoint, allowing only the globals a state_dict needs."""

    def __init__(self, archive, prefix, stream):
        super().__init__(stream)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, requires_grad, hooks, *rest: data
        if module == "torch" and name.endswith("Storage"):
            return _Storage(name)
        if module == "torch" and name in ("float32", "float16", "bfloat16", "float64", "int64"):
            return name
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a weights file")

    def persistent_load(self, pid):
        kind, storage, key, _location, count = pid[:5]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unknown persistent record {kind!r}")
        raw = self.archive.read(f"{self.prefix}data/{key}")
        if storage.dtype == "bfloat16":
            return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)[:count]
        return np.frombuffer(raw, dtype=np.dtype(storage.dtype).newbyteorder("<"))[:count]


class _WeightsUnpickler(pickle.Unpickler):
    """Reads a detectron2 / numpy pickle, allowing only the globals arrays and dicts of them need: a pickle can name
    any callable, and plain `pickle.load` would run it."""

    ALLOWED = {
        ("collections", "OrderedDict"), ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),   # protocol-2 pickles (detectron2's R-50.pkl) store array bytes as latin-1 text
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),   # protocol 5
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a weights file")


def load_torch_zip(path):
    """The object saved by torch.save in a zip checkpoint, tensors as numpy arrays (no torch needed)."""
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if len(pickles) != 1:
            raise SystemExit(f"{path}: a torch zip checkpoint has one data.pkl, found {len(pickles)}")
        prefix = pickles[0][: -len("data.pkl")]
        with archive.open(pickles[0]) as stream:
            return _TorchZipUnpickler(archive, prefix, stream).load()


def unwrap(obj):
    """The state dict inside {"model": ...} / {"state_dict": ...} / {"blobs": ...} containers."""
    for key in ("model", "state_dict", "blobs"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            return obj[key]
    return obj


def load_state(path):
    """{name: ndarray-like} from a .pkl, or a .pth/.pt/.bin (torch zip read without torch; legacy format via torch).
    A file that is not a readable pickle of that kind stops the conversion naming it."""
    try:
        return _load_state(path)
    except ImportError as e:
        raise SystemExit(f"{path}: a legacy (non-zip) PyTorch file needs torch to read: {e}")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            zipfile.BadZipFile, OSError) as e:
        raise SystemExit(f"{path}: not a readable weights pickle ({type(e).__name__}: {e})")


def _load_state(path):
    if path.endswith((".pth", ".pt", ".bin", ".ckpt")):
        if zipfile.is_zipfile(path):
            obj = unwrap(load_torch_zip(path))
        else:
            import torch  # only for legacy (pre-1.6, non-zip) PyTorch files

            obj = unwrap(torch.load(path, map_location="cpu", weights_only=True))
            obj = {k: (v.detach().cpu().float().numpy() if hasattr(v, "detach") else v) for k, v in obj.items()}
        if not isinstance(obj, dict):
            raise SystemExit(f"{path}: expected a state dict (or {{'model': dict}}), found {type(obj).__name__}")
        return obj
    with open(path, "rb") as f:
        obj = unwrap(_WeightsUnpickler(f, encoding="latin1").load())
    if not isinstance(obj, dict):
        raise SystemExit(f"{path}: expected a dict of arrays (or {{'model': dict}}), found {type(obj).__name__}")
    return obj


def detect_prefix(names):
    """'backbone.' for a backbone-only file (R-50.pkl; an ImageNet Swin with its classifier), else ''."""
    if any(n.startswith(("backbone.", "sem_seg_head.", "model.", "class_predictor.")) for n in names):
        return ""
    if names and all(n.startswith(("stem.", "res")) for n in names):
        return "backbone."
    swin = ("patch_embed.", "layers.", "norm.", "head.", "absolute_pos_embed")
    if names and all(n.startswith(swin) for n in names) and any(n.startswith("layers.") for n in names):
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
            check_normalization(src, name, value)
            notes.append(f"dropped {name} (input normalization, not a weight: model.pixel_mean / pixel_std of the configuration)")
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
        # HDF5 reads '/' as a path and '.' as the group itself; the names attribute is newline-separated.
        if "/" in name or "\n" in name or name.strip(".") == "":
            raise SystemExit(f"{src}: tensor name {name!r} is not a MaskPilot name (empty, only dots, or holding '/' or a newline)")
    if not arrays:
        raise SystemExit(f"{src}: no arrays to convert")
    tmp = dst + ".tmp"
    try:
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
    except (OSError, ValueError, TypeError) as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise SystemExit(f"{dst}: cannot write ({type(e).__name__}: {e})")
    if not quiet:
        for note in notes:
            print(f"note: {note}")
        print(f"{dst}: {len(arrays)} tensors from {src}")
    return [n for n, _ in arrays]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="detectron2 .pkl (model zoo, R-50.pkl, Swin) or PyTorch .pth/.pt/.bin")
    p.add_argument("output", help="MaskPilot weights file (.h5)")
    p.add_argument("--prefix", default=None,
                   help="prefix added to every name (default: 'backbone.' for backbone-only files, else none)")
    args = p.parse_args(argv)
    convert(args.input, args.output, prefix=args.prefix)


if __name__ == "__main__":
    sys.exit(main())
