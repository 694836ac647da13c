#!/usr/bin/env python3
"""Builds Tests/Fixtures/mask2former-tiny.h5, the reference the Swift parity tests compare against.

The reference implementation is HuggingFace transformers' Mask2FormerForUniversalSegmentation (a port of the
original Mask2Former) with a tiny HF ResNet backbone (basic blocks) and random weights. The script runs one
training step's computation — forward, the HF loss with its Hungarian matcher and uncertainty point sampling,
backward — and stores the weights, the inputs, every intermediate the Swift tests look at, the random points
the loss drew, the matched pairs, the loss terms and every parameter gradient. Tests/Fixtures/README.md
describes the file; this docstring only says how to run the script.

Environment (the versions the checked-in fixture was made with):

    python3 -m venv /tmp/fixture-venv
    /tmp/fixture-venv/bin/pip install torch==2.15.0 transformers==5.23.0 h5py numpy scipy

Usage:

    # write the fixture (default: Tests/Fixtures/mask2former-tiny.h5, seed 1)
    /tmp/fixture-venv/bin/python tools/make_reference_fixtures.py [--out PATH] [--seed N]

    # replay an existing fixture: load its weights, buffers, inputs and recorded points into the HF model,
    # recompute everything and report the largest deviation per group (exit status 1 when out of tolerance)
    /tmp/fixture-venv/bin/python tools/make_reference_fixtures.py --check-against PATH

    # compare two fixture files' layout: dataset paths, shapes, dtypes and attribute names
    /tmp/fixture-venv/bin/python tools/make_reference_fixtures.py --compare-layout A.h5 B.h5
    # PyTorch's own bf16 deviation on a fixture (float32 vs torch.autocast bfloat16: logits, gradient cosines)
    /tmp/fixture-venv/bin/python tools/make_reference_fixtures.py --bf16-deviation PATH

Everything runs on the CPU with one thread, so the same seed and package versions give the same file.
"""
import argparse
import contextlib
import itertools
import json
import logging
import os
import sys

import h5py
import numpy as np
import scipy
import torch
import transformers
from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, ResNetConfig, SwinConfig
from transformers.models.mask2former import modeling_mask2former as hf_m2f

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.normpath(os.path.join(HERE, "..", "Tests", "Fixtures"))
DEFAULT_OUT = {"resnet": os.path.join(FIXTURES, "mask2former-tiny.h5"),
               "swin": os.path.join(FIXTURES, "mask2former-tiny-swin.h5")}

# ---------------------------------------------------------------------------------------------------------
# The problem: configuration, random weights, inputs
# ---------------------------------------------------------------------------------------------------------

BATCH = 2
# (height, width) of the input. The Swin fixture's is non-square and its token maps (32x48, 16x24, 8x12, 4x6) are
# not all multiples of the window (3), so the padding to window multiples and the shifted-window masks run; every
# map stays larger than the window, where HF's Swin (which then shrinks the window and drops the shift) and the
# original D2SwinTransformer (which pads) agree.
IMAGE_SIZE = {"resnet": (64, 64), "swin": (128, 192)}
TARGETS_PER_IMAGE = (3, 2)          # N_b: number of ground-truth masks in image b
NUM_CLASSES = 5

# Random-weight recipe. HF's initialisation leaves many tensors at exact constants (biases 0, norm scales 1,
# the deformable attention's offset/attention-weight projections 0, BatchNorm statistics 0/1). A parity test
# against such values cannot notice a dropped bias or a swapped scale and shift, so every parameter gets
# Gaussian noise on top, and the BatchNorm statistics are drawn so that eval-mode BN is not the identity.
PARAM_NOISE_STD = 0.05
BN_MEAN_STD = 0.1
BN_VAR_RANGE = (1.0, 1.2)

# Deviations the check tolerates (the same bounds the fixture's README promises the Swift port):
# forward values and loss terms relative to the tensor's largest magnitude, gradients likewise.
TOLERANCE = {"forward": 1e-4, "loss": 1e-4, "grads": 1e-3}

# The seed of the checked-in fixture. Among seeds 0-15 it leaves the loss's discrete choices farthest from a
# tie (see decision_margins): best vs second-best matching cost >= 6e-3, uncertainty gap at the top-k cut
# ~1e-4. Seed 0, say, has a top-k gap of 5e-6, which a float32 port could cross with rounding alone.
# The Swin fixture's seed, chosen the same way among seeds 0-8: matching gap 2.0e-3, top-k gap 2.8e-5.
DEFAULT_SEED = {"resnet": 1, "swin": 3}
# Below these margins generate() warns that the fixture may be fragile.
MIN_MATCH_GAP = 1e-3
MIN_TOPK_GAP = 1e-5


def tiny_config(backbone_kind="resnet"):
    """The tiny Mask2Former: ResNet (basic blocks, depths 1,1,1,1, widths 16..128) or Swin (embed 16, depths
    2,2,2,2, heads 1,2,2,4, window 3, MLP ratio 2, no drop path) + 32-wide heads."""
    if backbone_kind == "swin":
        backbone = SwinConfig(
            embed_dim=16,
            depths=[2, 2, 2, 2],
            num_heads=[1, 2, 2, 4],
            window_size=3,
            mlp_ratio=2.0,
            qkv_bias=True,
            drop_path_rate=0.0,
            out_features=["stage1", "stage2", "stage3", "stage4"],
        )
    else:
        backbone = ResNetConfig(
            embedding_size=16,
            hidden_sizes=[16, 32, 64, 128],
            depths=[1, 1, 1, 1],
            layer_type="basic",
            out_features=["stage1", "stage2", "stage3", "stage4"],
        )
    return Mask2FormerConfig(
        backbone_config=backbone,
        feature_size=32,              # pixel decoder width
        mask_feature_size=32,         # mask features (stride 4)
        hidden_dim=32,                # transformer decoder width
        encoder_feedforward_dim=64,
        encoder_layers=2,
        decoder_layers=4,             # HF counts the query-feature prediction: 3 layers, 4 predictions
        num_attention_heads=4,
        dim_feedforward=64,
        num_queries=8,
        num_labels=NUM_CLASSES,
        train_num_points=196,
        output_auxiliary_logits=True,
    )


def build_model(config):
    """The HF model in eval mode: BatchNorm uses its running statistics (dropout is 0 anyway)."""
    model = Mask2FormerForUniversalSegmentation(config)
    model.eval()
    return model


@torch.no_grad()
def randomize_(model):
    """Perturbs HF's initial weights in place (global torch RNG, fixed module order)."""
    for _, param in model.named_parameters():
        param.add_(torch.randn_like(param) * PARAM_NOISE_STD)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn_like(module.running_mean) * BN_MEAN_STD)
            low, high = BN_VAR_RANGE
            module.running_var.copy_(low + (high - low) * torch.rand_like(module.running_var))


def make_inputs(seed, size=(64, 64)):
    """A normalized image batch [2,3,H,W] and ground truth: non-overlapping binary masks with distinct
    classes in [0, 5). Image 0 has two blobs and a band along the bottom border (regions touching the border
    exercise the zero padding of point sampling); image 1 has a large and a small blob."""
    height, width = size
    rng = np.random.default_rng(seed)
    pixel_values = torch.randn(BATCH, 3, height, width)

    yy, xx = np.mgrid[0:height, 0:width]

    def blob(min_radius, max_radius):
        cy, cx = rng.uniform(14, [height - 14, width - 14], size=2)
        ry, rx = rng.uniform(min_radius, max_radius, size=2)
        return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0

    band = yy >= height - 8
    shapes_per_image = [
        [lambda: blob(6, 14), lambda: blob(6, 14), lambda: band],
        [lambda: blob(14, 22), lambda: blob(5, 9)],
    ]
    masks, classes = [], []
    for count, makers in zip(TARGETS_PER_IMAGE, shapes_per_image):
        assert len(makers) == count
        for _ in range(100):  # redraw until every mask keeps a reasonable area after removing overlaps
            taken = np.zeros((height, width), dtype=bool)
            image_masks = []
            for make in makers:
                region = make() & ~taken        # earlier shapes win where shapes overlap
                taken |= region
                image_masks.append(region)
            if min(m.sum() for m in image_masks) >= 80:
                break
        else:
            raise RuntimeError("could not draw non-degenerate target masks")
        masks.append(torch.from_numpy(np.stack(image_masks).astype(np.float32)))
        classes.append(torch.from_numpy(rng.choice(NUM_CLASSES, size=count, replace=False).astype(np.int64)))
    return {"pixel_values": pixel_values, "masks": masks, "classes": classes}


# ---------------------------------------------------------------------------------------------------------
# Recording (or replaying) the loss's random points
# ---------------------------------------------------------------------------------------------------------


class PointTape:
    """The uniform random points the HF loss draws, captured from its own torch.rand calls, or replayed.

    While the criterion module runs, torch.rand is replaced by a function that walks a schedule of the draws
    the loss is expected to make. The criterion handles the final prediction first and then the auxiliary
    predictions in order; for each it draws
      1. one [1, P, 2] tensor per image for the matcher            -> loss/prediction{k}/matcher_points{b}
      2. one [n, int(P * oversample), 2] tensor for the n pairs     -> loss/prediction{k}/oversample_points
      3. one [n, P - int(P * importance), 2] tensor                 -> loss/prediction{k}/random_points
    In record mode the real torch.rand produces the values and a copy is kept; in replay mode the recorded
    values are returned instead. Any draw that does not fit the schedule is an error, so a change in the HF
    loss's sampling shows up here rather than as a silently different fixture.
    """

    def __init__(self, config, batch, replay=None):
        self.num_points = config.train_num_points
        self.oversampled = int(config.train_num_points * config.oversample_ratio)
        self.num_random = config.train_num_points - int(config.importance_sample_ratio * config.train_num_points)
        self.order = criterion_order(config)
        self.schedule = []
        for k in self.order:
            self.schedule += [(k, f"matcher_points{b}") for b in range(batch)]
            self.schedule += [(k, "oversample_points"), (k, "random_points")]
        self.replay = replay
        self.recorded = {}
        self.position = 0

    def _expected_tail(self, name):
        if name.startswith("matcher_points"):
            return (self.num_points, 2)
        return (self.oversampled, 2) if name == "oversample_points" else (self.num_random, 2)

    def _draw(self, real_rand, size, kwargs):
        if self.position >= len(self.schedule):
            raise RuntimeError(f"unexpected extra torch.rand{tuple(size)} call in the loss")
        k, name = self.schedule[self.position]
        self.position += 1
        shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else tuple(size)
        if shape[1:] != self._expected_tail(name) or (name.startswith("matcher") and shape[0] != 1):
            raise RuntimeError(f"torch.rand{shape} does not match the expected draw {name} of prediction {k}")
        if self.replay is None:
            values = real_rand(*size, **kwargs)
        else:
            values = self.replay[(k, name)].reshape(shape).to(
                device=kwargs.get("device"), dtype=kwargs.get("dtype") or torch.get_default_dtype())
        kept = values.detach().clone()
        self.recorded[(k, name)] = kept[0] if name.startswith("matcher") else kept   # matcher: [P, 2]
        return values

    @contextlib.contextmanager
    def attached(self, criterion):
        """Intercepts torch.rand only while `criterion` (the HF Mask2FormerLoss module) is running."""
        real_rand = torch.rand
        active = {"on": False}

        def rand(*size, **kwargs):
            if not active["on"]:
                return real_rand(*size, **kwargs)
            return self._draw(real_rand, size, kwargs)

        hooks = [criterion.register_forward_pre_hook(lambda m, a: active.update(on=True)),
                 criterion.register_forward_hook(lambda m, a, o: active.update(on=False))]
        torch.rand = rand
        try:
            yield self
        finally:
            torch.rand = real_rand
            for hook in hooks:
                hook.remove()

    def check_complete(self):
        if self.position != len(self.schedule):
            raise RuntimeError(f"the loss made {self.position} point draws, expected {len(self.schedule)}")


def criterion_order(config):
    """Prediction indices k in the order the HF criterion visits them: the final one, then 0, 1, ..."""
    count = config.decoder_layers
    return [count - 1] + list(range(count - 1))


# ---------------------------------------------------------------------------------------------------------
# One reference step
# ---------------------------------------------------------------------------------------------------------


def to_numpy(tensor):
    return tensor.detach().cpu().float().numpy() if tensor.dtype == torch.bfloat16 else tensor.detach().cpu().numpy()


def run_reference(model, inputs, tape):
    """Forward with labels (HF computes its own loss), backward, and everything the fixture stores.

    Returns (datasets, loss_terms, total): datasets maps HDF5 paths to numpy arrays; loss_terms holds the
    criterion's unweighted terms in its own key order; total is HF's weighted loss."""
    config = model.config
    order = criterion_order(config)
    batch = inputs["pixel_values"].shape[0]
    captured = {"assignments": [], "terms": None}

    def on_match(module, args, output):      # the matcher's (query indices, target indices) per image
        captured["assignments"].append([(to_numpy(q), to_numpy(t)) for q, t in output])

    def on_loss(module, args, output):       # unweighted terms: HF scales the same tensors in place afterwards
        captured["terms"] = {key: float(value.detach()) for key, value in output.items()}

    hooks = [model.criterion.matcher.register_forward_hook(on_match),
             model.criterion.register_forward_hook(on_loss)]
    model.zero_grad(set_to_none=True)
    try:
        with tape.attached(model.criterion):
            out = model(
                pixel_values=inputs["pixel_values"],
                mask_labels=inputs["masks"],
                class_labels=inputs["classes"],
                output_hidden_states=True,
                output_auxiliary_logits=True,
                return_dict=True,
            )
        tape.check_complete()
        out.loss.backward()
    finally:
        for hook in hooks:
            hook.remove()

    data = {}
    for i, feature in enumerate(out.encoder_hidden_states):                  # strides 4, 8, 16, 32
        data[f"backbone/stage{i + 1}"] = to_numpy(feature)
    for level, feature in enumerate(out.pixel_decoder_hidden_states):        # strides 32, 16, 8
        data[f"pixel_decoder/multi_scale_{level}"] = to_numpy(feature)
    data["pixel_decoder/mask_features"] = to_numpy(out.pixel_decoder_last_hidden_state)
    predictions = [(aux["class_queries_logits"], aux["masks_queries_logits"]) for aux in out.auxiliary_logits]
    predictions.append((out.class_queries_logits, out.masks_queries_logits))
    for k, (class_logits, mask_logits) in enumerate(predictions):           # k = 0 query features, last = final
        data[f"predictions/prediction{k}/class_logits"] = to_numpy(class_logits)
        data[f"predictions/prediction{k}/mask_logits"] = to_numpy(mask_logits)

    if len(captured["assignments"]) != len(order):
        raise RuntimeError(f"matcher ran {len(captured['assignments'])} times, expected {len(order)}")
    for k, per_image in zip(order, captured["assignments"]):
        for b, (queries, targets) in enumerate(per_image):
            data[f"loss/prediction{k}/assign_query{b}"] = queries.astype(np.int64)
            data[f"loss/prediction{k}/assign_target{b}"] = targets.astype(np.int64)
    for (k, name), values in tape.recorded.items():
        data[f"loss/prediction{k}/{name}"] = to_numpy(values).astype(np.float32)

    for name, param in model.named_parameters():
        grad = param.grad if param.grad is not None else torch.zeros_like(param)
        data[f"grads/{name}"] = to_numpy(grad)

    terms = captured["terms"]
    total = float(out.loss.detach())
    recomputed = sum(config.class_weight * terms[f"loss_cross_entropy{s}"] + config.mask_weight * terms[
        f"loss_mask{s}"] + config.dice_weight * terms[f"loss_dice{s}"] for s in loss_suffixes(config))
    if abs(recomputed - total) > 1e-5 * abs(total):
        raise RuntimeError(f"HF total {total} is not the weighted sum of its terms {recomputed}")
    return data, terms, total


def loss_suffixes(config):
    return [""] + [f"_{i}" for i in range(config.decoder_layers - 1)]


def model_state(model):
    """weights/<name> for every parameter, buffers/<name> for every buffer except BN's batch counters."""
    data = {f"weights/{name}": to_numpy(p) for name, p in model.named_parameters()}
    persistent = set(model.state_dict())          # Swin's relative_position_index is derived, not saved
    for name, buf in model.named_buffers():
        if name in persistent and not name.endswith("num_batches_tracked"):
            data[f"buffers/{name}"] = to_numpy(buf)
    return data


def input_datasets(inputs):
    data = {"input/pixel_values": to_numpy(inputs["pixel_values"])}
    for b, (masks, classes) in enumerate(zip(inputs["masks"], inputs["classes"])):
        data[f"input/target{b}/masks"] = to_numpy(masks).astype(np.float32)
        data[f"input/target{b}/classes"] = to_numpy(classes).astype(np.int64)
    return data


# ---------------------------------------------------------------------------------------------------------
# Robustness of the discrete choices
# ---------------------------------------------------------------------------------------------------------


def decision_margins(config, data, inputs):
    """How far the fixture's discrete choices are from a tie, so a float32 port that differs in the last
    bits cannot pick differently: (a) for each prediction and image, the gap between the best and the
    second-best Hungarian assignment cost (brute force over all assignments), (b) for each matched pair, the
    gap between the uncertainties of the last kept and the first dropped oversampled candidate."""
    match_gap, topk_gap = np.inf, np.inf
    kept = int(config.importance_sample_ratio * config.train_num_points)
    with torch.no_grad():
        for k in range(config.decoder_layers):
            class_logits = torch.from_numpy(data[f"predictions/prediction{k}/class_logits"])
            mask_logits = torch.from_numpy(data[f"predictions/prediction{k}/mask_logits"])
            pairs = []
            for b in range(class_logits.shape[0]):
                points = torch.from_numpy(data[f"loss/prediction{k}/matcher_points{b}"])[None]
                labels = inputs["classes"][b]
                target = hf_m2f.sample_point(inputs["masks"][b][:, None], points.repeat(len(labels), 1, 1),
                                             align_corners=False).squeeze(1)
                pred = hf_m2f.sample_point(mask_logits[b][:, None], points.repeat(mask_logits.shape[1], 1, 1),
                                           align_corners=False).squeeze(1)
                cost = (config.mask_weight * hf_m2f.pair_wise_sigmoid_cross_entropy_loss(pred, target)
                        + config.dice_weight * hf_m2f.pair_wise_dice_loss(pred, target)
                        - config.class_weight * class_logits[b].softmax(-1)[:, labels]).numpy()
                totals = sorted(sum(cost[q, t] for t, q in enumerate(perm))
                                for perm in itertools.permutations(range(cost.shape[0]), cost.shape[1]))
                match_gap = min(match_gap, totals[1] - totals[0])
                queries = data[f"loss/prediction{k}/assign_query{b}"]
                pairs += [mask_logits[b, q] for q in queries]
            candidates = torch.from_numpy(data[f"loss/prediction{k}/oversample_points"])
            logits = hf_m2f.sample_point(torch.stack(pairs)[:, None], candidates, align_corners=False)[:, 0]
            uncertainty = (-logits.abs()).sort(dim=1, descending=True).values
            topk_gap = min(topk_gap, float((uncertainty[:, kept - 1] - uncertainty[:, kept]).min()))
    return float(match_gap), topk_gap


# ---------------------------------------------------------------------------------------------------------
# Writing and reading fixture files
# ---------------------------------------------------------------------------------------------------------

LOSS_NOTE = (
    "loss/prediction{k}: assignments, the random points drawn, and each loss term for that prediction. "
    "matcher_points[b] are uniform points in [0,1]^2 as (x, y), shared by all queries and targets of image b; "
    "oversample_points and random_points are drawn for the matched pairs in batch order; the loss keeps the "
    "int(0.75*P) most uncertain oversampled points (uncertainty = -|logit|, torch.topk order) then appends "
    "random_points. Point sampling is bilinear with align_corners=False, zero padding, coordinate 2*p-1 "
    "(grid_sample).")
TERMS_NOTE = (
    "Unweighted terms; keys without suffix belong to the final prediction, key_{i} to prediction i. loss_mask "
    "and loss_dice are sums over matched pairs divided by the number of target masks in the batch (5); "
    "loss_cross_entropy is the class-weighted mean (no-object weight 0.1). total = sum over predictions of "
    "2*ce + 5*mask + 5*dice.")
DESCRIPTION = (
    "Tiny Mask2Former reference (HF transformers port of the original implementation), random weights, "
    "eval-mode BatchNorm. Tensors are in PyTorch layout (NCHW; Linear weight [out,in]; Conv weight "
    "[out,in,kh,kw]).")
ORDER_NOTE = "prediction{k}: k=0 is the first (query-feature) prediction, the last is the final layer"


def write_fixture(path, config, data, terms, total, seed, backbone_kind="resnet"):
    """Writes every dataset uncompressed (contiguous), plus the root, `loss` and `predictions` attributes."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = path + ".tmp"
    with h5py.File(temporary, "w") as f:
        for name in sorted(data):
            f.create_dataset(name, data=data[name])
        f.attrs["description"] = DESCRIPTION
        f.attrs["loss_terms"] = json.dumps(terms)
        f.attrs["loss_terms_note"] = TERMS_NOTE
        f.attrs["mask2former_config"] = config.to_json_string()
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["transformers_version"] = str(transformers.__version__)
        f.attrs["numpy_version"] = str(np.__version__)
        f.attrs["scipy_version"] = str(scipy.__version__)
        f.attrs["seed"] = np.int64(seed)
        f.attrs["generator"] = "tools/make_reference_fixtures.py %s--seed %d" % (
            "" if backbone_kind == "resnet" else "--backbone %s " % backbone_kind, seed)
        f["loss"].attrs["note"] = LOSS_NOTE
        f["loss"].attrs["total"] = np.float64(total)
        f["predictions"].attrs["order"] = ORDER_NOTE
    os.replace(temporary, path)


def read_datasets(f):
    data = {}
    f.visititems(lambda name, obj: data.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return data


def load_fixture(path):
    """The fixture's configuration, datasets, loss terms and total."""
    with h5py.File(path, "r") as f:
        config = Mask2FormerConfig.from_dict(json.loads(f.attrs["mask2former_config"]))
        return config, read_datasets(f), json.loads(f.attrs["loss_terms"]), float(f["loss"].attrs["total"])


def inputs_from(data, batch):
    return {
        "pixel_values": torch.from_numpy(data["input/pixel_values"]),
        "masks": [torch.from_numpy(data[f"input/target{b}/masks"]).float() for b in range(batch)],
        "classes": [torch.from_numpy(data[f"input/target{b}/classes"]).long() for b in range(batch)],
    }


# ---------------------------------------------------------------------------------------------------------
# Modes
# ---------------------------------------------------------------------------------------------------------


def generate(out_path, seed, backbone_kind="resnet"):
    torch.manual_seed(seed)
    config = tiny_config(backbone_kind)
    model = build_model(config)          # HF initialisation draws from the global torch RNG
    randomize_(model)
    inputs = make_inputs(seed, IMAGE_SIZE[backbone_kind])   # pixels from torch's RNG, mask shapes from numpy's
    torch.manual_seed(seed + 1)          # the loss's point draws depend only on the seed
    tape = PointTape(config, BATCH)
    data, terms, total = run_reference(model, inputs, tape)
    data.update(model_state(model))
    data.update(input_datasets(inputs))
    write_fixture(out_path, config, data, terms, total, seed, backbone_kind)

    match_gap, topk_gap = decision_margins(config, data, inputs)
    print(f"wrote {out_path} ({os.path.getsize(out_path) / 1e6:.2f} MB): {len(data)} datasets, "
          f"total loss {total:.6f}")
    print(f"  loss terms: {json.dumps(terms)}")
    print(f"  margins: Hungarian best vs second-best cost {match_gap:.3g}; "
          f"uncertainty gap at the top-k cut {topk_gap:.3g}")
    if match_gap < MIN_MATCH_GAP or topk_gap < MIN_TOPK_GAP:
        print("  WARNING: a discrete choice is close to a tie; a float32 port may legitimately differ. "
              "Consider another --seed.")


def relative_error(ours, reference, floor=0.0):
    """max |ours - ref| over the tensor, divided by max(max |ref|, floor) (the plain difference when both
    are 0). The floor keeps tensors whose exact value is 0 (only rounding noise on both sides) from
    dominating a group."""
    if reference.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(reference))), floor)
    diff = float(np.max(np.abs(ours.astype(np.float64) - reference)))
    return diff / scale if scale > 0 else diff


def check_against(path):
    """Replays the fixture at `path` through the HF model and reports the deviation per group."""
    config, stored, stored_terms, stored_total = load_fixture(path)
    batch = stored["input/pixel_values"].shape[0]
    model = build_model(config)
    state = {name.split("/", 1)[1]: torch.from_numpy(value) for name, value in stored.items()
             if name.startswith(("weights/", "buffers/"))}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("num_batches_tracked")]
    if missing or unexpected:
        sys.exit(f"{path}: weights do not fit the model: missing {missing}, unexpected {unexpected}")
    inputs = inputs_from(stored, batch)
    replay = {}
    for k in range(config.decoder_layers):
        for name in [f"matcher_points{b}" for b in range(batch)] + ["oversample_points", "random_points"]:
            replay[(k, name)] = torch.from_numpy(stored[f"loss/prediction{k}/{name}"])
    data, terms, total = run_reference(model, inputs, PointTape(config, batch, replay=replay))

    groups = {}                                     # group -> (worst relative error, worst tensor)

    def note(group, name, err):
        if group not in groups or err > groups[group][0]:
            groups[group] = (err, name)

    # Gradients are judged against their own largest entry, but never against less than 1e-3 of the largest
    # gradient in the model: e.g. the pixel decoder's input-projection conv biases feed a GroupNorm with one
    # channel per group, so their exact gradient is 0 and both sides hold only rounding noise.
    grad_floor = 1e-3 * max(float(np.max(np.abs(v))) for k, v in stored.items() if k.startswith("grads/"))
    assignment_mismatches = []
    for name, ours in sorted(data.items()):
        if name not in stored:
            sys.exit(f"{path}: has no dataset {name}")
        ref = stored[name]
        if ours.shape != ref.shape:
            sys.exit(f"{path}: {name} has shape {ref.shape}, the replay gives {ours.shape}")
        if "/assign_" in name:
            if not np.array_equal(ours, ref):
                assignment_mismatches.append(name)
            continue
        if name.startswith("loss/"):
            continue                                # the replayed points themselves
        group = "grads" if name.startswith("grads/") else name.split("/")[0]
        note(group, name, relative_error(ours, ref, grad_floor if group == "grads" else 0.0))
    if set(terms) != set(stored_terms):
        sys.exit(f"{path}: loss terms {sorted(stored_terms)}, the replay gives {sorted(terms)}")
    for key, want in stored_terms.items():
        note("loss_terms", key, abs(terms[key] - want) / abs(want))
    note("total", "loss/total", abs(total - stored_total) / abs(stored_total))
    extra = sorted(set(k for k in stored if k.startswith(("backbone/", "pixel_decoder/", "predictions/",
                                                         "grads/", "loss/"))) - set(data))
    if extra:
        sys.exit(f"{path}: datasets the replay does not produce: {extra[:5]}...")

    print(f"replayed {path} with torch {torch.__version__}, transformers {transformers.__version__}")
    print(f"  file made with torch {h5_attr(path, 'torch_version')}, "
          f"transformers {h5_attr(path, 'transformers_version')}")
    ok = not assignment_mismatches
    for group in ["backbone", "pixel_decoder", "predictions", "loss_terms", "total", "grads"]:
        err, name = groups[group]
        limit = TOLERANCE["grads" if group == "grads" else "loss" if group in ("loss_terms", "total")
                          else "forward"]
        verdict = "ok" if err <= limit else "FAIL"
        ok &= err <= limit
        print(f"  {group:14s} max relative error {err:.3e}  (limit {limit:g}, worst: {name})  {verdict}")
    n_assign = sum(1 for k in data if "/assign_" in k)
    print(f"  assignments    {n_assign - len(assignment_mismatches)}/{n_assign} identical"
          + (f"  FAIL: {assignment_mismatches}" if assignment_mismatches else "  ok"))
    match_gap, topk_gap = decision_margins(config, stored, inputs)
    print(f"  margins: Hungarian best vs second-best cost {match_gap:.3g}; "
          f"uncertainty gap at the top-k cut {topk_gap:.3g}")
    print("check passed" if ok else "check FAILED")
    return 0 if ok else 1


def h5_attr(path, name):
    with h5py.File(path, "r") as f:
        return f.attrs.get(name, "?")


def layout(path):
    """{path: (shape, dtype)} for every dataset and {object path: sorted attribute names}."""
    datasets, attributes = {}, {"/": None}
    with h5py.File(path, "r") as f:
        attributes["/"] = sorted(f.attrs.keys())

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                datasets[name] = (obj.shape, obj.dtype.str)
            if obj.attrs.keys():
                attributes[name] = sorted(obj.attrs.keys())
        f.visititems(visit)
    return datasets, attributes


def compare_layout(a, b):
    """Prints every difference between two fixtures' dataset paths, shapes, dtypes and attribute names."""
    (da, aa), (db, ab) = layout(a), layout(b)
    differences = 0
    for name in sorted(set(da) | set(db)):
        if da.get(name) != db.get(name):
            differences += 1
            print(f"  {name}: {da.get(name, 'absent')} vs {db.get(name, 'absent')}")
    for name in sorted(set(aa) | set(ab)):
        if aa.get(name) != ab.get(name):
            only_a = sorted(set(aa.get(name) or []) - set(ab.get(name) or []))
            only_b = sorted(set(ab.get(name) or []) - set(aa.get(name) or []))
            differences += 1
            print(f"  attributes of {name}: only in {a}: {only_a}; only in {b}: {only_b}")
    print(f"{len(da)} vs {len(db)} datasets; {differences} difference(s)")
    return 0 if differences == 0 else 1


def bf16_deviation(path):
    """Replays the fixture at `path` in float32 and under torch.autocast("cpu", bfloat16) and prints how far the
    bf16 run is from the float32 one: norm-wise relative error of every prediction's logits and the cosine
    similarity of every parameter gradient (those above 1e-6 of the largest) -- what PyTorch's own mixed precision
    gives on this model, the yardstick for MaskPilot's bf16."""
    config, stored, _, _ = load_fixture(path)
    batch = stored["input/pixel_values"].shape[0]
    state = {name.split("/", 1)[1]: torch.from_numpy(value) for name, value in stored.items()
             if name.startswith(("weights/", "buffers/"))}
    replay = {}
    for k in range(config.decoder_layers):
        for name in [f"matcher_points{b}" for b in range(batch)] + ["oversample_points", "random_points"]:
            replay[(k, name)] = torch.from_numpy(stored[f"loss/prediction{k}/{name}"])
    runs = []
    for bf16 in (False, True):
        model = build_model(config)
        model.load_state_dict(state, strict=False)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            data, _, _ = run_reference(model, inputs_from(stored, batch), PointTape(config, batch, replay=replay))
        runs.append(data)
    fp32, low = runs

    def rel(a, b):
        a, b = a.astype(np.float64), b.astype(np.float64)
        return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-30))

    print(f"bf16 autocast vs float32 on {path} (torch {torch.__version__}):")
    for k in range(config.decoder_layers):
        c = rel(fp32[f"predictions/prediction{k}/class_logits"], low[f"predictions/prediction{k}/class_logits"])
        m = rel(fp32[f"predictions/prediction{k}/mask_logits"], low[f"predictions/prediction{k}/mask_logits"])
        print(f"  prediction {k}: class logits {c:.4f}, mask logits {m:.4f} (norm-wise relative error)")
    grads = {k: v.astype(np.float64) for k, v in fp32.items() if k.startswith("grads/")}
    top = max(float(np.max(np.abs(v))) for v in grads.values())
    cosines = []
    for name, g in sorted(grads.items()):
        h = low[name].astype(np.float64)
        if np.linalg.norm(g) <= 1e-6 * top:
            continue
        cosines.append((float(np.dot(g.ravel(), h.ravel()) / (np.linalg.norm(g) * max(np.linalg.norm(h), 1e-30))), name))
    cosines.sort()
    values = np.array([c for c, _ in cosines])
    print(f"  gradient cosine over {len(values)} parameters: min {values.min():.4f} ({cosines[0][1]}), "
          f"median {np.median(values):.4f}, share >= 0.999: {np.mean(values >= 0.999):.2f}")
    same = sum(np.array_equal(fp32[k], low[k]) for k in fp32 if "/assign_" in k)
    print(f"  assignments identical: {same}/{sum(1 for k in fp32 if '/assign_' in k)}")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", choices=["resnet", "swin"], default="resnet",
                        help="the tiny model's backbone (default: %(default)s)")
    parser.add_argument("--out", help="fixture to write (default: Tests/Fixtures/mask2former-tiny.h5, "
                                      "or mask2former-tiny-swin.h5 with --backbone swin)")
    parser.add_argument("--seed", type=int,
                        help="seed for weights, inputs and points (default: 1 for resnet, 3 for swin)")
    parser.add_argument("--check-against", metavar="PATH", help="replay PATH and compare instead of writing")
    parser.add_argument("--compare-layout", nargs=2, metavar=("A", "B"), help="compare two files' layout")
    parser.add_argument("--bf16-deviation", metavar="PATH", help="replay PATH in float32 and bf16 autocast and compare")
    args = parser.parse_args()

    torch.set_num_threads(1)                                  # reproducible reductions
    transformers.logging.set_verbosity_error()                # "resnet is not a supported backbone" etc.
    logging.getLogger("transformers").setLevel(logging.ERROR)
    if args.compare_layout:
        return compare_layout(*args.compare_layout)
    if args.check_against:
        return check_against(args.check_against)
    if args.bf16_deviation:
        return bf16_deviation(args.bf16_deviation)
    seed = DEFAULT_SEED[args.backbone] if args.seed is None else args.seed
    generate(args.out or DEFAULT_OUT[args.backbone], seed, args.backbone)
    return 0


if __name__ == "__main__":
    sys.exit(main())
