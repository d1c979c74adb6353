#!/usr/bin/env python3
"""Generate QPyTorch 0.3.0 reference vectors for swalp-formats.

Runs qtorch.quant.{fixed_point_quantize, float_quantize, block_quantize} with
rounding="nearest" on the CPU kernels and writes, next to this script:

  vectors.safetensors  float32 tensors "<case>.input" / "<case>.expected"
  cases.json           list of {"name", "kind", <qtorch params>, "shape"}

Deterministic: every input is built with numpy from fixed seeds; qtorch's
nearest-rounding kernels are deterministic.  See README.md for the setup.
"""
import json
import os
import sys

# qtorch JIT-compiles its C++ kernels with ninja at import time; the ninja
# binary lives next to this venv's python.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import qtorch  # noqa: E402
from qtorch.quant import block_quantize, fixed_point_quantize, float_quantize  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
F32_MAX = float(np.finfo(np.float32).max)

torch.manual_seed(0)


def f32(a):
    return np.asarray(a, dtype=np.float64).astype(np.float32)


def signs(rng, n):
    return np.where(rng.random(n) < 0.5, -1.0, 1.0)


def near(t):
    """f32 neighbours one ulp above and below each value."""
    t = f32(t)
    return np.concatenate([np.nextafter(t, np.float32(np.inf)), np.nextafter(t, np.float32(-np.inf))])


# ----------------------------------------------------------------------------
# fixed point
# ----------------------------------------------------------------------------
def fixed_inputs(rng, wl, fl):
    s = 2.0 ** -fl
    R = 2.0 ** (wl - fl - 1)  # |t_min|
    n = 2 ** (wl - 1)  # t_min = -n*s
    parts = []
    # random normals at several scales (sub-step .. well beyond the range)
    for scale in (s * 0.5, s * 2, s * 8, R * 0.25, R * 0.5, R, R * 2, R * 8):
        parts.append(rng.standard_normal(100) * scale)
    # exact ties: odd multiples of s/2, small and across (and past) the range
    k = np.concatenate([np.arange(-12, 12), rng.integers(-n - 8, n + 8, 200)])
    ties = (k + 0.5) * s
    parts.append(ties)
    # ties just outside the range, and at larger magnitudes
    parts.append(np.array([-(n + 0.5), n - 0.5, n + 0.5, -(n - 0.5), -(n - 1.5), n - 1.5]) * s)
    kb = rng.integers(n, 64 * n, 40)
    parts.append(signs(rng, 40) * (kb + 0.5) * s)
    # near ties: one f32 ulp either side (exposes the a+0.5 f32 double rounding)
    parts.append(near(np.concatenate([np.array([0.5, -0.5, 1.5, -1.5, 2.5, -2.5]) * s, ties[:24], ties[-100:]])))
    # exact representable values, range edges and one step past them
    kg = np.concatenate([np.arange(-8, 9), rng.integers(-n - 4, n + 4, 150), [-n, n - 1, -n + 1, -n - 1, n, n + 1]])
    parts.append(kg * s)
    parts.append([0.0, -0.0, 0.0, -0.0])
    # tiny magnitudes (pin the sign of zero results: -tiny -> +0.0, -0.3*s -> -0.0)
    parts.append(np.outer([1, -1], s * 2.0 ** -np.arange(23, 31)).ravel())
    parts.append([1e-30, -1e-30, 0.3 * s, -0.3 * s])
    # scaled magnitudes in [2^23, 2^24): f32 spacing there is exactly 1 step,
    # and odd multiples hit the "a + 0.5f" tie quirk (only visible unclamped)
    big = f32(rng.uniform(2.0 ** 23, 2.0 ** 24, 40) * s)
    parts.append(signs(rng, 40) * big)
    parts.append(np.array([2 ** 23 + 1, 2 ** 23 + 3, -(2 ** 23 + 1), -(2 ** 23 + 3), 2 ** 24 - 1, -(2 ** 24 - 1)]) * s)
    # huge values
    parts.append(np.array([1e3, -1e3, 1e5, -1e5, 1e7, -1e7]) * R)
    return f32(np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in parts]))


# ----------------------------------------------------------------------------
# low-precision float
# ----------------------------------------------------------------------------
def float_inputs(rng, exp, man):
    emin = 2 - 2 ** (exp - 1)  # smallest normal exponent
    emax = 2 ** (exp - 1)  # largest exponent (no Inf/NaN encoding reserved)
    top = min(emax, 127)
    maxv = 2.0 ** emax * (2 - 2.0 ** -man)
    sub = 2.0 ** (emin - man)  # subnormal spacing
    mn = 2.0 ** emin  # smallest normal
    parts = []
    # log-uniform magnitudes from below the smallest subnormal to 4x max
    e = rng.uniform(emin - man - 3, top + 2, 800)
    parts.append(signs(rng, 800) * rng.uniform(1, 2, 800) * 2.0 ** e)
    # random normals at several scales
    for scale in (1.0, mn, mn * 2.0 ** -man, 2.0 ** top):
        parts.append(rng.standard_normal(100) * scale)
    # exact ties between adjacent normals
    e = rng.integers(emin, top + 1, 250)
    m = rng.integers(2 ** man, 2 ** (man + 1), 250)
    nties = signs(rng, 250) * (m + 0.5) * 2.0 ** (e - man)
    parts.append(nties)
    # exact ties in the subnormal range (incl. half the smallest subnormal)
    ks = np.concatenate([np.arange(0, min(2 ** man, 64)), rng.integers(0, 2 ** man, 40)])
    sties = np.concatenate([(ks + 0.5) * sub, -(ks + 0.5) * sub])
    parts.append(sties)
    # tie between min normal and max subnormal, and between max and 2^(emax+1)
    parts.append([mn - sub / 2, -(mn - sub / 2), maxv + 2.0 ** (emax - man - 1), -(maxv + 2.0 ** (emax - man - 1))])
    # near ties: one f32 ulp either side
    parts.append(near(np.concatenate([nties[:120], sties[:40], sties[-40:]])))
    # near subnormal ties by less than the f32 ulp of 2^emin (double rounding in x + 2^emin)
    st = sties[np.abs(sties) < mn]
    for d in (2.0 ** (emin - 24), 2.0 ** (emin - 25), 3 * 2.0 ** (emin - 26)):
        parts.append(st[:30] - np.sign(st[:30]) * d)
        parts.append(st[:30] + np.sign(st[:30]) * d)
    # exact representable values
    e = rng.integers(emin, top + 1, 150)
    m = rng.integers(2 ** man, 2 ** (man + 1), 150)
    parts.append(signs(rng, 150) * m * 2.0 ** (e - man))
    parts.append(signs(rng, 50) * rng.integers(1, 2 ** man, 50) * sub)
    parts.append([maxv, -maxv, mn, -mn, sub, -sub, mn - sub, -(mn - sub)])
    parts.append([0.0, -0.0, 0.0, -0.0])
    # f32 subnormals
    parts.append(signs(rng, 20) * rng.uniform(0, 1, 20) * 2.0 ** -126)
    parts.append([2.0 ** -149, -(2.0 ** -149), 2.0 ** -127, -(2.0 ** -127)])
    # beyond max
    parts.append(np.outer([1, -1], maxv * np.array([1.01, 1.2, 2, 10, 1e3])).ravel())
    x = np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in parts])
    x = x[np.isfinite(x) & (np.abs(x) <= F32_MAX)]
    return f32(x)


# ----------------------------------------------------------------------------
# block floating point
# ----------------------------------------------------------------------------
def block_input(rng, shape, wl, dim):
    x = rng.standard_normal(shape)
    nb = shape[0] if dim == 0 else 1
    out = np.empty_like(x)
    for b in range(nb):
        v = (x[b] if dim == 0 else x).reshape(-1).copy()
        E = int(rng.integers(-12, 12))
        mode = (b + int(rng.integers(0, 3))) % 3 if dim == -1 else b % 3
        if mode == 0:
            target = 2.0 ** E  # max exactly a power of two
        elif mode == 1:
            target = 2.0 ** E * rng.uniform(1, 2)
        else:
            target = 2.0 ** (E + 1) - 2.0 ** (E - 23)  # largest f32 below 2^(E+1)
        target = float(f32(target))
        imax = int(np.argmax(np.abs(v)))
        v = v / np.abs(v[imax]) * target
        if dim == -1:
            # make the whole-tensor block uneven: shrink most slices
            sl = int(np.prod(shape[1:]))
            for i in range(shape[0]):
                if imax // sl != i:
                    v[i * sl:(i + 1) * sl] *= 2.0 ** -rng.integers(0, 10)
        M = target
        ulp = 2.0 ** (E + 2 - wl)
        h = 2 ** (wl - 1)
        cand = []
        k = rng.integers(-h, h, 80)
        ties = (k + 0.5) * ulp
        cand.append(ties)
        cand.append((np.arange(-4, 4) + 0.5) * ulp)
        for d in (2.0 ** (E - 23), 2.0 ** (E - 22), 3 * 2.0 ** (E - 23)):
            cand.append(ties[:12] - d)
            cand.append(ties[:12] + d)
        cand.append(rng.integers(-h + 1, h, 40) * ulp)
        cand.append(np.array([h - 0.5, -(h - 0.5), -(h - 0.25), h - 0.25, h - 1, -(h - 1), -h]) * ulp)
        cand.append([0.0, -0.0, 2.0 ** (E - 30), -(2.0 ** (E - 30)), ulp / 4, -ulp / 4])
        cand = f32(np.concatenate([np.asarray(c, dtype=np.float64) for c in cand]))
        cand = cand[np.abs(cand.astype(np.float64)) <= M]
        rng.shuffle(cand)
        pos = np.array([p for p in rng.permutation(v.size) if p != imax])
        nspec = min(len(cand), int(0.4 * v.size))
        v[pos[:nspec]] = cand[:nspec]
        v = f32(v)
        assert float(np.max(np.abs(v))) == M
        if dim == 0:
            out[b] = v.reshape(shape[1:])
        else:
            out = v.reshape(shape)
    return f32(out)


# ----------------------------------------------------------------------------
def main():
    tensors = {}
    cases = []

    def add(name, kind, params, x, y):
        x = x.contiguous()
        assert x.dtype == torch.float32 and y.dtype == torch.float32
        assert torch.isfinite(x).all(), name
        assert torch.isfinite(y).all(), name
        tensors[name + ".input"] = x
        tensors[name + ".expected"] = y.contiguous()
        cases.append(dict(name=name, kind=kind, **params, shape=list(x.shape)))

    fixed = [
        (8, 6, True, False), (8, 6, True, True), (8, 6, False, False),
        (8, 4, True, False), (8, 4, False, False),
        (4, 2, True, False), (4, 2, True, True),
        (16, 8, True, False), (16, 8, False, False),
        (6, 0, True, False), (6, 0, True, True),
        (12, 12, True, False), (12, 12, True, True), (12, 12, False, False),
    ]
    for i, (wl, fl, clamp, sym) in enumerate(fixed):
        rng = np.random.default_rng(1000 + i)
        name = "fixed_wl%d_fl%d_%s" % (wl, fl, ("clamp_sym" if sym else "clamp") if clamp else "noclamp")
        x = torch.from_numpy(fixed_inputs(rng, wl, fl))
        y = fixed_point_quantize(x, wl, fl, clamp=clamp, symmetric=sym, rounding="nearest")
        add(name, "fixed", dict(wl=wl, fl=fl, clamp=clamp, symmetric=sym), x, y)

    floats = [(5, 2), (4, 3), (5, 10), (8, 7), (3, 2), (2, 1), (6, 9)]
    for i, (exp, man) in enumerate(floats):
        rng = np.random.default_rng(2000 + i)
        x = torch.from_numpy(float_inputs(rng, exp, man))
        y = float_quantize(x, exp, man, rounding="nearest")
        keep = torch.isfinite(y)  # (8, m): values rounding past 2^128 become Inf; drop them
        assert exp == 8 or bool(keep.all())
        x, y = x[keep], y[keep]
        add("float_e%d_m%d" % (exp, man), "float", dict(exp=exp, man=man), x, y)

    i = 0
    for shape in ([64, 33], [8, 4, 3, 3]):
        for wl in (4, 8, 16):
            for dim in (-1, 0):
                rng = np.random.default_rng(3000 + i)
                i += 1
                x = torch.from_numpy(block_input(rng, shape, wl, dim))
                y = block_quantize(x, wl, dim=dim, rounding="nearest")
                name = "block_wl%d_%s_%s" % (wl, "all" if dim == -1 else "dim0", "x".join(map(str, shape)))
                add(name, "block", dict(wl=wl, dim=dim), x, y)

    out = os.path.join(HERE, "vectors.safetensors")
    save_file(tensors, out,
              # one key only: safetensors writes metadata from a hash map, so
              # several keys would make the header order (and bytes) vary
              metadata={"generator": "qtorch %s rounding=nearest, torch %s"
                                     % (getattr(qtorch, "__version__", "0.3.0"), torch.__version__)})
    os.chmod(out, 0o644)
    with open(os.path.join(HERE, "cases.json"), "w") as f:
        f.write("[\n" + ",\n".join(" " + json.dumps(c) for c in cases) + "\n]\n")
    n = sum(t.numel() for k, t in tensors.items() if k.endswith(".input"))
    print("wrote %d cases, %d values" % (len(cases), n))


if __name__ == "__main__":
    main()
