#!/usr/bin/env python3
"""Writes Tests/Fixtures/hf/: tiny HF transformers Mask2Former checkpoints as `save_pretrained` writes them, and
HF's outputs on a fixed input, for the `maskpilot model import` / `model run` tests (cluster/test-converters.sh).

  hf/swin/        config.json + model.safetensors   (Swin backbone, the tiny model of mask2former-tiny-swin.h5)
  hf/resnet-bin/  config.json + pytorch_model.bin   (ResNet backbone, the tiny model of mask2former-tiny.h5; the
                                                     state dict torch.save'd, as save_pretrained(safe_serialization=False)
                                                     wrote it before transformers 5: torch's zip pickle)
  hf/<name>/expected.h5   pixel_values [1, 3, H, W] (standard normal, taken as normalized), and HF's
                          class_queries_logits, masks_queries_logits and aux/<i>/ (auxiliary_logits) in eval mode

Random weights: HF's initialisation plus N(0, 0.05^2) noise and drawn BatchNorm statistics, as the parity fixtures.
Environment and versions as tools/make_reference_fixtures.py (torch 2.15.0, transformers 5.23.0, h5py, numpy).

Usage: /tmp/fixture-venv/bin/python tools/make_hf_checkpoints.py [--out Tests/Fixtures/hf]
"""
import argparse
import json
import logging
import os
import shutil
import sys

import h5py
import numpy as np
import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_reference_fixtures as ref  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "Tests", "Fixtures", "hf"))

# name -> (backbone, input height x width, safetensors?, seed)
CASES = {
    "swin": ("swin", (128, 192), True, 11),
    "resnet-bin": ("resnet", (64, 96), False, 12),
}


@torch.no_grad()
def write_case(out, name):
    backbone, (height, width), safetensors, seed = CASES[name]
    torch.manual_seed(seed)
    model = ref.build_model(ref.tiny_config(backbone))
    ref.randomize_(model)
    folder = os.path.join(out, name)
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder)
    if not safetensors:                   # transformers 5 writes safetensors only; the pickle older versions wrote
        os.remove(os.path.join(folder, "model.safetensors"))
        torch.save(model.state_dict(), os.path.join(folder, "pytorch_model.bin"))
    pixel_values = torch.randn(1, 3, height, width)
    result = model(pixel_values=pixel_values, output_auxiliary_logits=True, return_dict=True)
    with h5py.File(os.path.join(folder, "expected.h5"), "w") as f:
        f.create_dataset("pixel_values", data=pixel_values.numpy())
        f.create_dataset("class_queries_logits", data=result.class_queries_logits.numpy())
        f.create_dataset("masks_queries_logits", data=result.masks_queries_logits.numpy())
        for i, aux in enumerate(result.auxiliary_logits):
            f.create_dataset(f"aux/{i}/class_queries_logits", data=aux["class_queries_logits"].numpy())
            f.create_dataset(f"aux/{i}/masks_queries_logits", data=aux["masks_queries_logits"].numpy())
        f.attrs["generator"] = "tools/make_hf_checkpoints.py"
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["transformers_version"] = str(transformers.__version__)
    files = sorted(os.listdir(folder))
    print(f"wrote {folder}: {', '.join(files)}; final logits {tuple(result.class_queries_logits.shape)}, "
          f"{tuple(result.masks_queries_logits.shape)}, {len(result.auxiliary_logits)} auxiliary")
    with open(os.path.join(folder, "config.json")) as f:
        json.load(f)                                       # written and readable


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    for name in CASES:
        write_case(args.out, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
