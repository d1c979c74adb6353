#!/usr/bin/env python3
"""PyTorch twins of swalp's models, optimizers and recipes.

Every model swalp builds has a twin here, written in plain PyTorch with
PyTorch's state_dict names: VGG and PreResNet as the SWALP seed defines them
(stevenygd/SWALP, models/vgg_low.py and models/preresnet_low.py: the same
layers, the same quantization modules, the same initialisation), and the
small models (mlp, cnn, logreg, linreg) as swalp documents them. The seed's
low-precision training step (its utils.train_batch and models/quantizer.py)
is written here after the seed, in plain PyTorch.

Subcommands (run with the README's PyTorch environment; `safetensors` and,
for `digits`, `scikit-learn` from PyPI):

    twins.py generate [--only CASE...] [--out DIR]
                                          writes the twin cases into cases/
                                          (or DIR)
    twins.py digits DIR                   writes scikit-learn's digits as IDX
    twins.py recipes [--seeds N]          trains the recipes on the digits
    twins.py check-export MODEL WEIGHTS IO
                                          loads swalp's exported weights with
                                          load_state_dict and compares outputs

Tensors both sides need are not stored: each is drawn from libtorch's CPU
generator seeded with a stated seed (`uniform_`, `normal_`, `randint`), which
tch (the same libtorch) reproduces bit for bit. The case files keep the
recipe of every tensor, digests of the initial tensors (to prove the
reproduction), and what training gave: per-step losses and the final state.

What training gives depends on the CPU's kernels: libtorch picks its
convolution and matrix-product kernels by CPU capability (AVX2, AVX512), and
they sum in different orders. Each case records the capability it was made
with; on a CPU of another capability twins.rs regenerates the cases with this
script (`generate --out`), so both sides always use the same kernels.
"""

import argparse
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "cases")

# How much of each final tensor a case keeps: all of it up to this many
# elements, else this many evenly spaced elements (first and last included).
# Initial tensors, reproduced exactly, keep fewer.
SAMPLE = 64
INIT_SAMPLE = 8


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------


class Identity(nn.Module):
    """A quantization module that does nothing (full precision)."""

    def forward(self, x):
        return x


def make_vgg_features(depth, quant, batch_norm, in_channels=3):
    """The seed's make_layers: conv (3x3, padding 1), [BN], ReLU, quant per
    width; 'M' is a 2x2 max-pool. Module indices are the seed's."""
    widths = {
        16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
        19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
             512, 512, 512, 512, "M"],
    }[depth]
    layers = []
    channels = in_channels
    for w in widths:
        if w == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(channels, w, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(w))
        layers += [nn.ReLU(inplace=True), quant()]
        channels = w
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, depth, batch_norm, classes, quant, dropout, in_channels=3):
        super().__init__()
        self.features = make_vgg_features(depth, quant, batch_norm, in_channels)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(512, 512),
            nn.ReLU(True),
            quant(),
            nn.Dropout(dropout),
            nn.Linear(512, 512),
            nn.ReLU(True),
            quant(),
            nn.Linear(512, classes),
        )

    def forward(self, x):
        x = self.features(x)
        return self.classifier(x.view(x.size(0), -1))


class PreActBlock(nn.Module):
    """Basic (two 3x3 convs) or bottleneck (1x1, 3x3, 1x1, expansion 4)
    pre-activation block: quant after every ReLU and after every conv; the
    shortcut conv is not quantized."""

    def __init__(self, inplanes, planes, quant, stride, bottleneck):
        super().__init__()
        self.bottleneck = bottleneck
        expansion = 4 if bottleneck else 1
        if bottleneck:
            self.bn1 = nn.BatchNorm2d(inplanes)
            self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        else:
            self.bn1 = nn.BatchNorm2d(inplanes)
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.downsample = None
        if stride != 1 or inplanes != planes * expansion:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * expansion, 1, stride=stride, bias=False))
        self.quant = quant()

    def forward(self, x):
        pairs = [(self.bn1, self.conv1), (self.bn2, self.conv2)]
        if self.bottleneck:
            pairs.append((self.bn3, self.conv3))
        out = x
        for bn, conv in pairs:
            out = self.quant(conv(self.quant(F.relu(bn(out)))))
        residual = x if self.downsample is None else self.downsample(x)
        return out + residual


class PreResNet(nn.Module):
    def __init__(self, depth, classes, quant, in_channels=3):
        super().__init__()
        bottleneck = depth >= 44
        n = (depth - 2) // 9 if bottleneck else (depth - 2) // 6
        expansion = 4 if bottleneck else 1
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        inplanes = 16
        for stage, planes in enumerate([16, 32, 64]):
            blocks = []
            for b in range(n):
                stride = 2 if stage > 0 and b == 0 else 1
                blocks.append(PreActBlock(inplanes, planes, quant, stride, bottleneck))
                inplanes = planes * expansion
            setattr(self, "layer%d" % (stage + 1), nn.Sequential(*blocks))
        self.bn = nn.BatchNorm2d(inplanes)
        self.fc = nn.Linear(inplanes, classes)
        self.quant = quant()

    def forward(self, x):
        x = self.quant(self.conv1(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.avg_pool2d(F.relu(self.bn(x)), 8)
        return self.fc(x.view(x.size(0), -1))


class MLP(nn.Module):
    def __init__(self, inputs, classes, quant):
        super().__init__()
        self.fc1 = nn.Linear(inputs, 512)
        self.fc2 = nn.Linear(512, 512)
        self.fc3 = nn.Linear(512, classes)
        self.q1, self.q2 = quant(), quant()

    def forward(self, x):
        x = x.flatten(1)
        x = self.q1(F.relu(self.fc1(x)))
        x = self.q2(F.relu(self.fc2(x)))
        return self.fc3(x)


class CNN(nn.Module):
    def __init__(self, shape, classes, quant):
        super().__init__()
        c, h, w = shape
        self.conv1 = nn.Conv2d(c, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(64 * (h // 4) * (w // 4), 256)
        self.fc2 = nn.Linear(256, classes)
        self.q1, self.q2, self.q3 = quant(), quant(), quant()

    def forward(self, x):
        x = F.max_pool2d(self.q1(F.relu(self.conv1(x))), 2)
        x = F.max_pool2d(self.q2(F.relu(self.conv2(x))), 2)
        x = self.q3(F.relu(self.fc1(x.flatten(1))))
        return self.fc2(x)


class Linear(nn.Module):
    def __init__(self, inputs, outputs):
        super().__init__()
        self.linear = nn.Linear(inputs, outputs)

    def forward(self, x):
        return self.linear(x.flatten(1))


def build(model, shape, classes, quant=Identity, dropout=0.0):
    """The twin of swalp's `model.name = model` for inputs of `shape`."""
    if model.startswith("vgg"):
        return VGG(int(model[3:5]), model.endswith("bn"), classes, quant, dropout, shape[0])
    if model.startswith("preresnet"):
        return PreResNet(int(model[len("preresnet"):]), classes, quant, shape[0])
    inputs = math.prod(shape)
    if model == "mlp":
        return MLP(inputs, classes, quant)
    if model == "cnn":
        return CNN(shape, classes, quant)
    if model == "logreg":
        return Linear(inputs, classes)
    if model == "linreg":
        return Linear(inputs, 1)  # classes is None: regression
    raise SystemExit("unknown model %r" % model)


def init_recipes(model_name, model):
    """The distribution each state entry starts from, by state_dict name:
    the SWALP seed's for VGG and PreResNet convs (normal with std
    sqrt(2 / (k*k*out_channels)), zero bias), PyTorch's defaults otherwise
    (uniform +-1/sqrt(fan_in) for Linear and Conv2d weights and biases;
    BatchNorm weight 1, bias 0, running mean 0, running var 1)."""
    seed_convs = model_name.startswith(("vgg", "preresnet"))
    recipes = {}
    for module_name, m in model.named_modules():
        entries = list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False))
        for leaf, t in entries:
            key = module_name + "." + leaf if module_name else leaf
            if isinstance(m, nn.BatchNorm2d):
                recipes[key] = {"weight": ["const", 1.0], "running_var": ["const", 1.0],
                                "bias": ["const", 0.0], "running_mean": ["const", 0.0],
                                "num_batches_tracked": ["const", 0]}[leaf]
            elif isinstance(m, nn.Conv2d) and seed_convs:
                k = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                recipes[key] = ["normal", 0.0, math.sqrt(2.0 / k)] if leaf == "weight" \
                    else ["const", 0.0]
            else:
                bound = 1.0 / math.sqrt(m.weight[0].numel())
                recipes[key] = ["uniform", -bound, bound]
    return recipes


# --------------------------------------------------------------------------
# Seeded tensors: what both sides draw from libtorch's CPU generator
# --------------------------------------------------------------------------


def seeded(recipe, shape, seed):
    """A tensor drawn as the recipe says, from a generator seeded `seed`."""
    g = torch.Generator().manual_seed(seed)
    kind = recipe[0]
    if kind == "uniform":
        return torch.empty(shape).uniform_(recipe[1], recipe[2], generator=g)
    if kind == "normal":
        return torch.empty(shape).normal_(recipe[1], recipe[2], generator=g)
    if kind == "randint":
        return torch.randint(0, recipe[1], shape, generator=g)
    if kind == "const":
        if isinstance(recipe[1], int):
            return torch.full(shape, recipe[1], dtype=torch.int64)
        return torch.full(shape, float(recipe[1]))
    raise ValueError(recipe)


def sample_indices(n, k):
    """k evenly spaced indices of n elements, first and last included (all
    of them when n <= k); swalp's tests compute the same."""
    if n <= k:
        return list(range(n))
    return [(i * (n - 1) + (k - 1) // 2) // (k - 1) for i in range(k)]


def digest(t, k=SAMPLE):
    """Sum and sum of squares in f64, and k sampled elements (each printed
    with the 9 digits that identify an f32)."""
    d = t.detach().double()
    flat = t.detach().reshape(-1)
    return {
        "sum": d.sum().item(),
        "sumsq": (d * d).sum().item(),
        "sample": [float("%.9g" % flat[i].item()) for i in sample_indices(flat.numel(), k)],
    }


# --------------------------------------------------------------------------
# The seed's quantizer and training step, after stevenygd/SWALP
# --------------------------------------------------------------------------


def block_quantize(x, wl, per_row, mode, ebit=8):
    """The seed's block_quantize: one exponent per tensor, or per slice
    along dim 0 (small-block FC for tensors of more than one dimension).
    The exponent is floor(log2(max|x|)) computed as the seed computes it."""
    lo, hi = -2 ** (ebit - 1), 2 ** (ebit - 1) - 1
    if not per_row:
        m = x.abs().max().item()
        if m == 0:
            return x
        e = min(max(math.floor(math.log2(m)), lo), hi)
    else:
        m = x.abs().view(x.size(0), -1).max(1)[0]
        e = torch.floor(torch.log2(m)).clamp(lo, hi)
        e = e.view([x.size(0)] + [1] * (x.dim() - 1))
    i = x * 2 ** (-e + (wl - 2))
    if mode == "stochastic":
        i = (i + torch.rand_like(i)).floor()
    else:
        i = i.round()
    i = i.clamp(-2 ** (wl - 1), 2 ** (wl - 1) - 1)
    out = i * 2 ** (e - (wl - 2))
    # Where the seed's code gives NaN, for a slice of zeros (its exponent is
    # clamped to -128 and 0 * 2^134 is NaN in f32), keep the zeros.
    return out if not per_row else torch.where(m.view(e.shape) == 0, x, out)


def small_block_fc(x, wl, mode):
    """The seed's weight/gradient/momentum/accumulator rule: small-block FC."""
    return block_quantize(x, wl, x.dim() > 1, mode)


class BlockRounding(torch.autograd.Function):
    """Forward quantizes the value, backward the gradient: one exponent per
    tensor (the seed's BlockQuantizer ignores its small-block argument)."""

    @staticmethod
    def forward(ctx, x, wl, mode):
        ctx.wl, ctx.mode = wl, mode
        return block_quantize(x, wl, False, mode)

    @staticmethod
    def backward(ctx, g):
        return block_quantize(g, ctx.wl, False, ctx.mode), None, None


def seed_quant(wl, mode):
    class Q(nn.Module):
        def forward(self, x):
            return BlockRounding.apply(x, wl, mode)
    return Q


def seed_step(model, optimizer, acc, x, y, loss_fn, wl, mode):
    """One step of the seed's train_batch: quantize gradients, swap in the
    accumulators, SGD step, quantize accumulators, weights from them,
    momentum with the gradient quantizer."""
    out = model(x)
    loss = loss_fn(out, y)
    optimizer.zero_grad()
    loss.backward()
    q = lambda t: small_block_fc(t, wl, mode)
    params = list(model.named_parameters())
    for _, p in params:
        p.grad.data = q(p.grad.data)
    for name, p in params:
        p.data = acc[name]
    optimizer.step()
    for name, p in params:
        acc[name] = q(p.data)
        p.data = q(acc[name])
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state[p]
            if "momentum_buffer" in state:
                state["momentum_buffer"] = q(state["momentum_buffer"])
    return loss.item()


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

IMAGE = [3, 32, 32]
DIGIT = [1, 8, 8]

# name: model, input shape, classes (None: regression), batch, steps,
# optimizer settings, quantization ("fp", "nearest", "stochastic").
SGD = {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4,
       "dampening": 0.0, "nesterov": False}


def case(model, shape, classes, batch, optim=SGD, quant="fp", steps=20, seeds=1):
    return {"model": model, "input_shape": shape, "classes": classes, "batch": batch,
            "steps": steps, "optim": dict(optim), "quant": quant, "seeds": seeds}


def cases():
    all_cases = {
        "linreg": case("linreg", [16], None, 32),
        "logreg": case("logreg", [64], 10, 32),
        "mlp": case("mlp", [64], 10, 16),
        "cnn": case("cnn", DIGIT, 10, 16),
        "vgg16": case("vgg16", IMAGE, 10, 2),
        "vgg16bn": case("vgg16bn", IMAGE, 10, 2),
        "vgg19": case("vgg19", IMAGE, 10, 2),
        "vgg19bn": case("vgg19bn", IMAGE, 10, 2),
        "preresnet20": case("preresnet20", IMAGE, 10, 4),
        "preresnet164": case("preresnet164", IMAGE, 10, 2),
        # Every optimizer setting swalp offers, on one model.
        "mlp_nesterov": case("mlp", [64], 10, 16, optim=dict(
            SGD, nesterov=True, dampening=0.0, weight_decay=1e-3)),
        "mlp_dampening": case("mlp", [64], 10, 16, optim=dict(SGD, dampening=0.3)),
        "mlp_adam": case("mlp", [64], 10, 16, optim={
            "name": "adam", "lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
            "weight_decay": 5e-4}),
        "mlp_adamw": case("mlp", [64], 10, 16, optim={
            "name": "adamw", "lr": 1e-3, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6,
            "weight_decay": 1e-2}),
        # The seed's low-precision step, 8-bit small-block BFP everywhere.
        "cnn_bfp8_nearest": case("cnn", DIGIT, 10, 16, quant="nearest"),
        "vgg16_bfp8_nearest": case("vgg16", IMAGE, 10, 2, quant="nearest"),
        "preresnet20_bfp8_nearest": case("preresnet20", IMAGE, 10, 4, quant="nearest"),
        "cnn_bfp8_stochastic": case("cnn", DIGIT, 10, 16, quant="stochastic", seeds=20),
    }
    return all_cases


def lr_at(optim, step, steps):
    """A step schedule, so that the twins also check rate changes."""
    return optim["lr"] * (0.5 if step >= steps // 2 else 1.0)


def make_optimizer(optim, params):
    name = optim["name"]
    if name == "sgd":
        return torch.optim.SGD(params, lr=optim["lr"], momentum=optim["momentum"],
                               dampening=optim["dampening"], nesterov=optim["nesterov"],
                               weight_decay=optim["weight_decay"])
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return cls(params, lr=optim["lr"], betas=(optim["beta1"], optim["beta2"]),
               eps=optim["eps"], weight_decay=optim["weight_decay"])


def loss_fn(classes):
    if classes is None:
        return lambda out, y: 0.5 * (out - y).square().mean()
    return F.cross_entropy


# Training cycles over this many batches, so that the loss falls.
DISTINCT_BATCHES = 4


def batch_recipes(spec, seed_base):
    """Recipes of the training batches (a cycle of DISTINCT_BATCHES) and
    of one evaluation batch."""
    shape = [spec["batch"]] + spec["input_shape"]
    recipes = []
    for k in range(DISTINCT_BATCHES + 1):
        x = {"recipe": ["normal", 0.0, 1.0], "shape": shape, "seed": seed_base + 2 * k}
        if spec["classes"] is None:
            y = {"recipe": ["normal", 0.0, 1.0], "shape": [spec["batch"], 1],
                 "seed": seed_base + 2 * k + 1}
        else:
            y = {"recipe": ["randint", spec["classes"]], "shape": [spec["batch"]],
                 "seed": seed_base + 2 * k + 1}
        recipes.append({"x": x, "y": y})
    train = [recipes[k % DISTINCT_BATCHES] for k in range(spec["steps"])]
    return train, recipes[-1]


def draw(t):
    return seeded(t["recipe"], t["shape"], t["seed"])


def run_case(name, spec):
    torch.manual_seed(0)
    model_name = spec["model"]
    quant = Identity if spec["quant"] == "fp" else seed_quant(8, spec["quant"])
    model = build(model_name, spec["input_shape"], spec["classes"], quant)
    recipes = init_recipes(model_name, model)
    state = model.state_dict()
    init = []
    for i, (key, t) in enumerate(state.items()):
        recipe = recipes[key]
        seed = 1000 + i
        value = seeded(recipe, list(t.shape), seed)
        state[key].copy_(value)
        init.append({"name": key, "shape": list(t.shape), "recipe": recipe, "seed": seed,
                     "dtype": str(t.dtype).replace("torch.", ""), "digest": digest(value, INIT_SAMPLE)})
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    batches, eval_batch = batch_recipes(spec, 5000)
    batch_digests = [{"x": digest(draw(b["x"]), INIT_SAMPLE), "y": digest(draw(b["y"]), INIT_SAMPLE)}
                     for b in batches[:2]]
    losses = []
    finals = []
    for s in range(spec["seeds"]):
        model.load_state_dict(initial)
        torch.manual_seed(s)
        losses.append(train(model, spec, batches))
        finals.append(model)
    model.eval()
    with torch.no_grad():
        x, y = draw(eval_batch["x"]), draw(eval_batch["y"])
        eval_loss = loss_fn(spec["classes"])(model(x), y).item()
    out = {
        "name": name,
        "spec": spec,
        "init": init,
        "batches": batches,
        "eval_batch": eval_batch,
        "batch_digests": batch_digests,
        "losses": losses if spec["seeds"] > 1 else losses[0],
        "eval_loss": eval_loss,
        "final": {k: digest(v) for k, v in model.state_dict().items()},
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    write_json(os.path.join(CASES, name + ".json"), out)
    last = losses[-1]
    print("%-26s first %.6f last %.6f eval %.6f" % (name, last[0], last[-1], eval_loss))


def train(model, spec, batches):
    model.train()
    optim = spec["optim"]
    optimizer = make_optimizer(optim, model.parameters())
    fn = loss_fn(spec["classes"])
    acc = {n: p.data.clone() for n, p in model.named_parameters()}
    losses = []
    for k, b in enumerate(batches):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(optim, k, spec["steps"])
        x, y = draw(b["x"]), draw(b["y"])
        if spec["quant"] == "fp":
            out = model(x)
            loss = fn(out, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        else:
            losses.append(seed_step(model, optimizer, acc, x, y, fn, 8, spec["quant"]))
    return losses


# --------------------------------------------------------------------------
# Digits as IDX, and the recipes on them
# --------------------------------------------------------------------------

DIGITS_TRAIN = 1297  # the rest (500) is the test set


def write_idx(path, array, magic):
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with open(path + ".tmp", "wb") as f:
        f.write(header + array.tobytes())
    os.replace(path + ".tmp", path)


def digits(out_dir):
    """scikit-learn's 1,797 real 8x8 digits (pixel values 0..16, scaled to
    0..255) as MNIST's four IDX files: the first 1,297 for training, the
    last 500 for testing."""
    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)
    labels = d.target.astype(np.uint8)
    os.makedirs(out_dir, exist_ok=True)
    parts = {"train": slice(0, DIGITS_TRAIN), "t10k": slice(DIGITS_TRAIN, None)}
    for prefix, part in parts.items():
        write_idx(os.path.join(out_dir, prefix + "-images-idx3-ubyte"), images[part], 0x803)
        write_idx(os.path.join(out_dir, prefix + "-labels-idx1-ubyte"), labels[part], 0x801)
    print("wrote %d training and %d test digits to %s"
          % (DIGITS_TRAIN, len(labels) - DIGITS_TRAIN, out_dir))


def read_idx(path):
    import numpy as np
    with open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data[4 + 4 * dims:], dtype=np.uint8).reshape(shape)


# MNIST's normalisation, which swalp applies to data.name = "mnist".
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def normalize(x):
    """swalp's (and torchvision's) normalisation of uint8 images."""
    mean = torch.tensor([MNIST_MEAN]).view(1, 1, 1)
    std = torch.tensor([MNIST_STD]).view(1, 1, 1)
    return (x.float() / 255.0 - mean) / std


def load_digits_idx(directory, upsample=1, subset=None):
    """The digits as swalp reads them with data.name = "mnist": [N, 1, H, W]
    normalised floats; `upsample` repeats each pixel (8x8 -> 32x32 for the
    CIFAR models); `subset` keeps the first training examples."""
    def images(prefix, n=None):
        x = torch.from_numpy(read_idx(os.path.join(directory, prefix + "-images-idx3-ubyte")).copy())
        x = x[:n].unsqueeze(1)
        if upsample > 1:
            x = x.repeat_interleave(upsample, 2).repeat_interleave(upsample, 3)
        return normalize(x)

    def labels(prefix, n=None):
        return torch.from_numpy(
            read_idx(os.path.join(directory, prefix + "-labels-idx1-ubyte")).copy()).long()[:n]

    return (images("train", subset), labels("train", subset), images("t10k"), labels("t10k"))


def swalp_schedule(epoch, lr_init, swa_start, swa_lr):
    """The seed's learning-rate schedule."""
    t = epoch / swa_start
    if t <= 0.5:
        factor = 1.0
    elif t <= 0.9:
        factor = 1.0 - (1.0 - 0.01) * (t - 0.5) / 0.4
    elif t < 1.0:
        factor = 0.01
    else:
        factor = swa_lr / lr_init
    return lr_init * factor


def recipe_fp(recipe, data, seed):
    """The recipe in full precision in PyTorch, reported as the seed
    reports: the SGD model after swa_start epochs, the average after
    epochs - 1 epochs (averaging after every epoch from swa_start, or
    every step when the recipe says so)."""
    xtr, ytr, xte, yte = data
    torch.manual_seed(seed)
    model = build(recipe["model"], list(xtr.shape[1:]), 10)
    if recipe["model"] == "logreg":
        nn.init.zeros_(model.linear.weight)
        nn.init.zeros_(model.linear.bias)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe["lr"], momentum=recipe["momentum"],
                                weight_decay=recipe["weight_decay"])
    avg = [p.detach().clone().zero_() for p in model.parameters()]
    count = 0
    n = xtr.shape[0]
    res = {}
    g = torch.Generator().manual_seed(seed)

    def average():
        nonlocal count
        for a, p in zip(avg, model.parameters()):
            a.mul_(count / (count + 1)).add_(p.detach() / (count + 1))
        count += 1

    def error(params):
        saved = [p.detach().clone() for p in model.parameters()]
        with torch.no_grad():
            for p, v in zip(model.parameters(), params):
                p.copy_(v)
            model.eval()
            wrong = (model(xte).argmax(1) != yte).sum().item()
            for p, v in zip(model.parameters(), saved):
                p.copy_(v)
            model.train()
        return 100.0 * wrong / xte.shape[0]

    for epoch in range(recipe["epochs"]):
        lr = swalp_schedule(epoch, recipe["lr"], recipe["swa_start"], recipe["swa_lr"])
        for group in optimizer.param_groups:
            group["lr"] = lr
        order = torch.randperm(n, generator=g)
        for start in range(0, n, recipe["batch_size"]):
            idx = order[start:start + recipe["batch_size"]]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if recipe.get("every_step") and epoch >= recipe["swa_start"]:
                average()
        if not recipe.get("every_step") and epoch + 1 >= recipe["swa_start"]:
            average()
        if epoch + 1 == recipe["swa_start"]:
            res["sgd"] = error([p.detach() for p in model.parameters()])
        if epoch + 1 == recipe["epochs"] - 1 and count > 0:
            res["swa"] = error(avg)
    res["final_sgd"] = error([p.detach() for p in model.parameters()])
    return res


# The two CPU recipes of exp/, as PyTorch runs them on the digits; the
# hyper-parameters are the exp files' own (tests/recipes.rs checks that).
RECIPES = {
    "mnist_cnn_bfp8": {"model": "cnn", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4,
                       "batch_size": 32, "epochs": 12, "swa_start": 8, "swa_lr": 0.01},
    "logreg_swalp": {"model": "logreg", "lr": 0.1, "momentum": 0.0, "weight_decay": 1e-4,
                     "batch_size": 128, "epochs": 20, "swa_start": 10, "swa_lr": 0.01,
                     "every_step": True},
}


def recipes(args):
    data = load_digits_idx(args.digits)
    out = {}
    for name, recipe in RECIPES.items():
        runs = [recipe_fp(recipe, data, seed) for seed in range(args.seeds)]
        mean = {k: sum(r[k] for r in runs) / len(runs) for k in runs[0]}
        out[name] = {"recipe": recipe, "seeds": args.seeds, "runs": runs, "mean": mean}
        print("%-16s PyTorch full precision on the digits, %d seeds: %s"
              % (name, args.seeds, ", ".join("%s %.2f%%" % kv for kv in mean.items())))
    path = os.path.join(CASES, "recipes.json")
    with open(path + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    os.replace(path + ".tmp", path)


# --------------------------------------------------------------------------
# The trainer, whole: full-batch runs on the digits
# --------------------------------------------------------------------------

DIGITS = os.path.join(HERE, "..", "data", "digits")

# One step per epoch (the batch is the whole training set), so that swalp's
# shuffling cannot change what is computed; the SWALP schedule, averaging
# after every epoch from swa_start, and the seed's evaluation.
TRAINER_CASES = {
    "trainer_cnn": {"model": "cnn", "upsample": 1, "subset": None, "epochs": 10,
                    "swa_start": 6, "lr": 0.05, "swa_lr": 0.01, "momentum": 0.9,
                    "weight_decay": 5e-4},
    "trainer_preresnet20": {"model": "preresnet20", "upsample": 4, "subset": 256, "epochs": 6,
                            "swa_start": 3, "lr": 0.1, "swa_lr": 0.01, "momentum": 0.9,
                            "weight_decay": 3e-4},
}


def bn_update(model, x):
    """The seed's bn_update over one batch (the whole training set): the
    running statistics become that batch's."""
    momenta = {}
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean = torch.zeros_like(m.running_mean)
            m.running_var = torch.ones_like(m.running_var)
            momenta[m] = m.momentum
    if not momenta:
        return
    model.train()
    n = 0
    with torch.no_grad():
        b = x.shape[0]
        for m in momenta:
            m.momentum = b / (n + b)
        model(x)
    for m, momentum in momenta.items():
        m.momentum = momentum


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        out = model(x)
        loss = F.cross_entropy(out, y).item()
        error = 100.0 * (out.argmax(1) != y).sum().item() / y.shape[0]
    return loss, error


def trainer_case(name, spec):
    xtr, ytr, xte, yte = load_digits_idx(DIGITS, spec["upsample"], spec["subset"])
    shape = list(xtr.shape[1:])
    model = build(spec["model"], shape, 10)
    average = build(spec["model"], shape, 10)
    recipes = init_recipes(spec["model"], model)
    state = model.state_dict()
    init = []
    for i, (key, t) in enumerate(state.items()):
        value = seeded(recipes[key], list(t.shape), 3000 + i)
        state[key].copy_(value)
        init.append({"name": key, "shape": list(t.shape), "recipe": recipes[key],
                     "seed": 3000 + i, "digest": digest(value, INIT_SAMPLE)})
    optimizer = torch.optim.SGD(model.parameters(), lr=spec["lr"], momentum=spec["momentum"],
                                weight_decay=spec["weight_decay"])
    avg = [p.detach().clone().zero_() for p in model.parameters()]
    count = 0
    epochs = []
    for epoch in range(spec["epochs"]):
        lr = swalp_schedule(epoch, spec["lr"], spec["swa_start"], spec["swa_lr"])
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        out = model(xtr)
        loss = F.cross_entropy(out, ytr)
        wrong = (out.argmax(1) != ytr).sum().item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        line = {"epoch": epoch, "lr": lr, "train_loss": loss.item(),
                "train_error": 100.0 * wrong / ytr.shape[0]}
        if epoch + 1 >= spec["swa_start"]:
            with torch.no_grad():
                for a, p in zip(avg, model.parameters()):
                    a.mul_(1.0 - 1.0 / (count + 1)).add_(p.detach() * (1.0 / (count + 1)))
            count += 1
        bn_update(model, xtr)
        line["test_loss"], line["test_error"] = evaluate(model, xte, yte)
        if count > 0:
            with torch.no_grad():
                for p, a in zip(average.parameters(), avg):
                    p.copy_(a)
            bn_update(average, xtr)
            line["swa_test_loss"], line["swa_test_error"] = evaluate(average, xte, yte)
        epochs.append(line)
        print("%s epoch %d: loss %.5f test %.2f%% swa %s" % (
            name, epoch, line["train_loss"], line["test_error"], line.get("swa_test_error")))
    out = {
        "name": name,
        "spec": spec,
        "init": init,
        "epochs": epochs,
        "final_sgd": {k: digest(v) for k, v in model.state_dict().items()},
        "final_swa": {k: digest(v) for k, v in average.state_dict().items()},
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    write_json(os.path.join(CASES, name + ".json"), out)


def write_json(path, value):
    with open(path + ".tmp", "w") as f:
        json.dump(value, f, separators=(",", ":"))
        f.write("\n")
    os.replace(path + ".tmp", path)


# --------------------------------------------------------------------------
# Weights out of swalp, into PyTorch
# --------------------------------------------------------------------------


def check_export(args):
    """Loads swalp's exported state with load_state_dict (strict), runs the
    model in eval mode on the inputs in IO and compares with swalp's outputs
    there. Prints the largest difference; exits 1 above 1e-5."""
    from safetensors.torch import load_file

    io = load_file(args.io)
    x, expected = io["input"], io["output"]
    classes = expected.shape[1]
    model = build(args.model, list(x.shape[1:]), classes)
    model.load_state_dict(load_file(args.weights))
    model.eval()
    with torch.no_grad():
        out = model(x)
    diff = (out - expected).abs().max().item()
    print("load_state_dict: ok; largest output difference %.3g" % diff)
    sys.exit(0 if diff <= 1e-5 else 1)


def main():
    global CASES
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--only", nargs="*")
    g.add_argument("--out", help="where the cases go (default: cases/ beside this file)")
    d = sub.add_parser("digits")
    d.add_argument("dir")
    r = sub.add_parser("recipes")
    r.add_argument("--digits", default=DIGITS)
    r.add_argument("--seeds", type=int, default=5)
    c = sub.add_parser("check-export")
    c.add_argument("model")
    c.add_argument("weights")
    c.add_argument("io")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("TWINS_THREADS", "2")))
    if args.command == "generate":
        CASES = args.out or CASES
        os.makedirs(CASES, exist_ok=True)
        for name, spec in cases().items():
            if not args.only or name in args.only:
                run_case(name, spec)
        for name, spec in TRAINER_CASES.items():
            if not args.only or name in args.only:
                trainer_case(name, spec)
    elif args.command == "digits":
        digits(args.dir)
    elif args.command == "recipes":
        recipes(args)
    else:
        check_export(args)


if __name__ == "__main__":
    main()
