#!/usr/bin/env python3
"""Tests of tools/convert_pkl_to_h5.py and tools/convert_h5_to_pth.py (numpy + h5py only), run by
cluster/test-converters.sh from `make test`:

  1. a fake Mask2Former/MP-Former model-zoo pickle ({"model": {name: ndarray}, "__author__": ...}) converts to
     /model/<name> float32 datasets with Fletcher32, pixel_mean/pixel_std dropped, non-arrays skipped;
  2. a fake ImageNet R-50.pkl (torchvision names converted by detectron2, no "backbone." prefix) gets the
     prefix; --prefix overrides it;
  3. HDF5 -> .npz (convert_h5_to_pth.py --npz) gives back the same names and values;
  4. CHECKPOINT (a MaskPilot checkpoint written by the Swift code) opens with h5py and lists the reference
     names (backbone.*, sem_seg_head.*) in PyTorch layout, and converts to .npz.

Usage: test_converters.py CHECKPOINT.h5. Prints one line per test and `converters (python): N passed, M failed`.
"""
import atexit
import os
import pickle
import shutil
import sys
import tempfile
import traceback

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_h5_to_pth  # noqa: E402
import convert_pkl_to_h5  # noqa: E402

results = []


def test(name):
    def run(fn):
        try:
            fn()
            print(f"converter test: {name}: ok")
            results.append(True)
        except Exception:  # noqa: BLE001 — every failure is reported, none stops the others
            print(f"converter test: {name}: FAILED")
            traceback.print_exc(file=sys.stdout)
            results.append(False)
        return fn
    return run


rng = np.random.default_rng(0)
tmp = tempfile.mkdtemp(prefix="maskpilot-converters-")
atexit.register(shutil.rmtree, tmp, True)
checkpoint = sys.argv[1] if len(sys.argv) > 1 else None

zoo = {
    "backbone.stem.conv1.weight": rng.standard_normal((8, 3, 7, 7)).astype(np.float32),
    "backbone.stem.conv1.norm.running_var": rng.random(8).astype(np.float32),
    "sem_seg_head.predictor.class_embed.weight": rng.standard_normal((6, 4)).astype(np.float64),
    "sem_seg_head.predictor.class_embed.bias": rng.standard_normal(6).astype(np.float32),
    "sem_seg_head.predictor.query_feat.weight": rng.standard_normal((3, 4)).astype(np.float32),
    "pixel_mean": np.array([123.675, 116.28, 103.53], np.float32).reshape(3, 1, 1),
    "pixel_std": np.array([58.395, 57.12, 57.375], np.float32).reshape(3, 1, 1),
    "not_an_array": "text",
}
zoo_pkl = os.path.join(tmp, "model_final_zoo.pkl")
with open(zoo_pkl, "wb") as f:
    pickle.dump({"model": zoo, "__author__": "Meta", "matching_heuristics": True}, f)
zoo_expected = {k: v for k, v in zoo.items() if k not in ("pixel_mean", "pixel_std", "not_an_array")}

r50 = {
    "stem.conv1.weight": rng.standard_normal((4, 3, 7, 7)).astype(np.float32),
    "stem.conv1.norm.weight": rng.random(4).astype(np.float32),
    "res2.0.conv1.weight": rng.standard_normal((4, 4, 1, 1)).astype(np.float32),
    "res2.0.shortcut.norm.bias": rng.random(4).astype(np.float32),
    "res2.0.conv1.norm.num_batches_tracked": np.array(0, np.int64),
}
r50_pkl = os.path.join(tmp, "R-50.pkl")
with open(r50_pkl, "wb") as f:
    pickle.dump({"model": r50, "__author__": "torchvision", "matching_heuristics": True}, f, protocol=2)


def check_h5(path, expected):
    with h5py.File(path, "r") as f:
        names = f["model"].attrs["names"]
        names = names.decode() if isinstance(names, bytes) else names
        assert names.split("\n") == list(expected), f"names attribute {names.split(chr(10))} != {list(expected)}"
        assert sorted(f["model"].keys()) == sorted(expected), f"datasets {sorted(f['model'].keys())}"
        for name, value in expected.items():
            d = f["model"][name]
            assert d.dtype == np.float32, f"{name}: dtype {d.dtype}"
            assert d.shape == value.shape, f"{name}: shape {d.shape} != {value.shape}"
            assert d.fletcher32 or d.ndim == 0, f"{name}: no Fletcher32 checksum"
            assert np.array_equal(d[()], value.astype(np.float32)), f"{name}: values differ"
        assert "source" in f["meta"].attrs, "/meta has no attribute source"


def check_npz(h5_path, expected):
    npz = os.path.join(tmp, os.path.basename(h5_path) + ".npz")
    assert convert_h5_to_pth.main([h5_path, npz, "--npz"]) == 0
    with np.load(npz) as z:
        assert sorted(z.files) == sorted(expected), f"npz names {sorted(z.files)}"
        for name, value in expected.items():
            assert np.array_equal(z[name], np.asarray(value, np.float32)), f"{name}: npz values differ"


@test("model-zoo .pkl -> h5 (names, float32 values, Fletcher32, pixel_mean/std dropped, non-arrays skipped)")
def _():
    out = os.path.join(tmp, "zoo.h5")
    names = convert_pkl_to_h5.convert(zoo_pkl, out, quiet=True)
    assert names == list(zoo_expected), names
    check_h5(out, zoo_expected)


@test("a model-zoo .pkl with another pixel_mean stops the conversion, naming the file and key")
def _():
    other = dict(zoo, pixel_mean=np.array([103.53, 116.28, 123.675], np.float32).reshape(3, 1, 1))   # BGR order
    src = os.path.join(tmp, "model_bgr.pkl")
    with open(src, "wb") as f:
        pickle.dump({"model": other}, f)
    out = os.path.join(tmp, "bgr.h5")
    try:
        convert_pkl_to_h5.convert(src, out, quiet=True)
    except SystemExit as e:
        assert "model_bgr.pkl: pixel_mean is [103.53, 116.28, 123.675]" in str(e.code), e.code
        assert not os.path.exists(out), "an output file was written"
        return
    raise AssertionError("the conversion did not stop")


@test("model-zoo h5 -> .npz round trip equals the pickle")
def _():
    check_npz(os.path.join(tmp, "zoo.h5"), zoo_expected)


@test("R-50.pkl (no backbone. prefix) -> h5 with backbone. added, num_batches_tracked dropped")
def _():
    out = os.path.join(tmp, "r50.h5")
    convert_pkl_to_h5.convert(r50_pkl, out, quiet=True)
    expected = {"backbone." + k: v for k, v in r50.items() if not k.endswith("num_batches_tracked")}
    check_h5(out, expected)
    check_npz(out, expected)


@test("--prefix overrides the detection ('' keeps the names)")
def _():
    out = os.path.join(tmp, "r50-noprefix.h5")
    convert_pkl_to_h5.main([r50_pkl, out, "--prefix", ""])
    check_h5(out, {k: v for k, v in r50.items() if not k.endswith("num_batches_tracked")})


@test("h5 -> .pth without torch is a clear error (or a loadable state_dict with torch)")
def _():
    out = os.path.join(tmp, "zoo.pth")
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None:
        try:
            convert_h5_to_pth.main([os.path.join(tmp, "zoo.h5"), out])
        except SystemExit as e:
            assert "torch is not installed" in str(e) and "--npz" in str(e), str(e)
        else:
            raise AssertionError("no error without torch")
        assert not os.path.exists(out)
    else:
        convert_h5_to_pth.main([os.path.join(tmp, "zoo.h5"), out])
        sd = torch.load(out)
        assert sorted(sd) == sorted(zoo_expected)


@test(f"h5py opens the MaskPilot checkpoint {checkpoint} and lists the reference names")
def _():
    assert checkpoint, "no checkpoint path given"
    with h5py.File(checkpoint, "r") as f:
        assert {"model", "optimizer", "trainer", "meta"} <= set(f.keys()), sorted(f.keys())
        names = list(f["model"].keys())
        listed = f["model"].attrs["names"]
        listed = (listed.decode() if isinstance(listed, bytes) else listed).split("\n")
        assert sorted(listed) == sorted(names), "the names attribute differs from the datasets"
        for required in ("backbone.stem.conv1.weight", "sem_seg_head.predictor.class_embed.weight",
                         "sem_seg_head.predictor.query_feat.weight"):
            assert required in names, f"{required} not in /model"
        assert all(n.startswith(("backbone.", "sem_seg_head.")) for n in names), \
            [n for n in names if not n.startswith(("backbone.", "sem_seg_head."))]
        conv = f["model"]["backbone.stem.conv1.weight"]
        assert conv.ndim == 4 and conv.shape[1] == 3 and conv.shape[2] == conv.shape[3], \
            f"stem conv {conv.shape} is not PyTorch layout [Cout, 3, k, k]"
        assert conv.fletcher32, "no Fletcher32 checksum"
        assert int(f["meta"].attrs["format_version"]) == 1
        print(f"  {checkpoint}: {len(names)} tensors, e.g. " + ", ".join(listed[:3]) + ", …, " + listed[-1])
        values = {n: f["model"][n][()] for n in names}
    check_npz(checkpoint, values)


def expect_exit(src, text):
    """convert(src) stops with a message naming src and holding text, leaving no output or .tmp behind."""
    out = os.path.join(tmp, "refused.h5")
    try:
        convert_pkl_to_h5.convert(src, out, quiet=True)
    except SystemExit as e:
        assert str(e).startswith(src) and text in str(e), str(e)
    else:
        raise AssertionError(f"{src} was converted")
    assert not os.path.exists(out) and not os.path.exists(out + ".tmp")


@test("pickles of every protocol (0-5) convert")
def _():
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        path = os.path.join(tmp, f"protocol{protocol}.pkl")
        with open(path, "wb") as f:
            pickle.dump({"model": zoo}, f, protocol=protocol)
        convert_pkl_to_h5.convert(path, os.path.join(tmp, f"protocol{protocol}.h5"), quiet=True)
        check_h5(os.path.join(tmp, f"protocol{protocol}.h5"), zoo_expected)


@test("a pickle naming any other callable is refused without running it")
def _():
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {os.path.join(tmp, 'PWNED')}",))
    evil = os.path.join(tmp, "evil.pkl")
    with open(evil, "wb") as f:
        pickle.dump({"model": {"a": Payload()}}, f)
    expect_exit(evil, "is not allowed in a weights file")
    assert not os.path.exists(os.path.join(tmp, "PWNED")), "the pickle's code ran"


@test("truncated, empty and random files are refused naming the file")
def _():
    data = open(zoo_pkl, "rb").read()
    for name, content in (("truncated.pkl", data[: len(data) // 2]), ("empty.pkl", b""), ("random.pkl", bytes(rng.integers(0, 256, 300, dtype=np.uint8)))):
        path = os.path.join(tmp, name)
        open(path, "wb").write(content)
        expect_exit(path, "not a readable weights pickle")


@test("names HDF5 cannot hold, and a non-numeric pixel_mean, are refused naming the file")
def _():
    for i, (key, value, text) in enumerate((("", np.zeros(2, np.float32), "is not a MaskPilot name"),
                                            (".", np.zeros(2, np.float32), "is not a MaskPilot name"),
                                            ("a\nb", np.zeros(2, np.float32), "is not a MaskPilot name"),
                                            ("pixel_mean", "abc", "pixel_mean is not numeric"))):
        path = os.path.join(tmp, f"bad-name-{i}.pkl")
        with open(path, "wb") as f:
            pickle.dump({"model": {key: value, "backbone.x": np.ones(2, np.float32)}}, f)
        expect_exit(path, text)


print(f"converters (python): {sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if all(results) else 1)
