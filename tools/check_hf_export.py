"""Loads a `maskpilot model export` folder with HF transformers and compares its logits with MaskPilot's.

    python tools/check_hf_export.py EXPORT_FOLDER MODEL_RUN.h5

MODEL_RUN.h5 is `maskpilot model run` output for the same model: its `pixel_values` go through
Mask2FormerForUniversalSegmentation.from_pretrained(EXPORT_FOLDER) (which must load with no missing or unexpected
weights), and class_queries_logits / masks_queries_logits and every auxiliary prediction are compared; prints the
worst deviation relative to each tensor's largest magnitude and exits 1 above 1e-4. Needs torch and transformers
(not part of `make test`: a 6 GB install; see Tests/Fixtures/README.md for the versions).
"""
import sys

import h5py
import numpy as np
import torch
from transformers import Mask2FormerForUniversalSegmentation


def main(folder, run):
    torch.set_num_threads(1)
    model, info = Mask2FormerForUniversalSegmentation.from_pretrained(folder, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if bad:
        print("loading reported", bad)
        return 1
    model.eval()
    with h5py.File(run, "r") as f:
        pixels = torch.from_numpy(f["pixel_values"][()])
        ours = {"class_queries_logits": f["class_queries_logits"][()], "masks_queries_logits": f["masks_queries_logits"][()]}
        aux = sorted(f["aux"].keys(), key=int) if "aux" in f else []
        for i in aux:
            ours[f"aux/{i}/class_queries_logits"] = f["aux"][i]["class_queries_logits"][()]
            ours[f"aux/{i}/masks_queries_logits"] = f["aux"][i]["masks_queries_logits"][()]
    with torch.no_grad():
        out = model(pixel_values=pixels, output_auxiliary_logits=True)
    theirs = {"class_queries_logits": out.class_queries_logits.numpy(), "masks_queries_logits": out.masks_queries_logits.numpy()}
    for i, a in enumerate(out.auxiliary_logits or []):
        theirs[f"aux/{i}/class_queries_logits"] = a["class_queries_logits"].numpy()
        theirs[f"aux/{i}/masks_queries_logits"] = a["masks_queries_logits"].numpy()
    worst = 0.0
    for name, t in ours.items():
        if name not in theirs or theirs[name].shape != t.shape:
            print(f"{name}: ours {t.shape}, HF's {theirs.get(name, np.zeros(0)).shape}")
            return 1
        worst = max(worst, float(np.abs(t - theirs[name]).max() / max(np.abs(theirs[name]).max(), 1e-12)))
    print(f"{len(ours)} tensors, worst relative deviation {worst:.2e}")
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
