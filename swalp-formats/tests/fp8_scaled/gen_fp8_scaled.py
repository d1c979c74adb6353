"""Test vectors for swalp's scaled FP8 (format = "fp8_scaled") from an
independent numpy reference of the documented formula.

For each group G sharing a scale (the tensor, a row, 1 x N blocks along the
last dimension, N x N tiles over the last two), in float32:
    a = max |x| over G
    m = M / a          (M = 448 for E4M3, 57344 for E5M2)
    m = FLT_MAX if m overflows; m = 1 if a == 0
    m = m with its mantissa bits cleared          if pow2
    e = nearest-even FP8 value of clip(x * m, -M, M)
    y = e * (1 / m)
The FP8 grid is built here by enumerating every code (sign, exponent and
mantissa fields, subnormals included); rounding picks the nearer neighbour,
ties to the even code. Nothing is shared with swalp or torch.

Run with any Python that has numpy and safetensors (the README's PyTorch
environment has both):
    python3 gen_fp8_scaled.py
writes fp8_scaled.safetensors next to this file.
"""

import os

import numpy as np
from safetensors.numpy import save_file

F32 = np.float32
FLT_MAX = np.finfo(np.float32).max

ELEMS = {
    # name: (exponent bits, mantissa bits, bias, largest value)
    "e4m3": (4, 3, 7, 448.0),
    "e5m2": (5, 2, 15, 57344.0),
}


def grid(elem):
    """Every non-negative finite value of the element, ascending; its index
    is its code, so index parity is the code's parity."""
    ebits, mbits, bias, top = ELEMS[elem]
    values = []
    for e in range(2**ebits):
        for m in range(2**mbits):
            if e == 0:
                v = m / 2**mbits * 2.0 ** (1 - bias)
            else:
                v = (1 + m / 2**mbits) * 2.0 ** (e - bias)
            if v <= top:
                values.append(v)
    return np.array(values, dtype=np.float64)


def round_nearest_even(t, elem):
    table = grid(elem)
    a = np.abs(t.astype(np.float64))
    hi = np.searchsorted(table, a, side="left").clip(0, len(table) - 1)
    lo = (hi - 1).clip(0)
    exact = table[hi] == a
    dlo, dhi = a - table[lo], table[hi] - a
    pick_hi = (dhi < dlo) | ((dhi == dlo) & (hi % 2 == 0))
    v = np.where(exact, table[hi], np.where(pick_hi, table[hi], table[lo]))
    return np.copysign(v, t.astype(np.float64)).astype(F32)


def group_amax(x, gran):
    a = np.abs(x)
    if gran == "tensor" or x.ndim == 0:
        return np.full_like(x, a.max())
    if gran == "row":
        return np.broadcast_to(a.max(axis=-1, keepdims=True), x.shape).copy()
    kind, n = gran
    if kind == "block" or x.ndim == 1:
        cols = x.shape[-1]
        pad = -cols % n
        p = np.pad(a, [(0, 0)] * (x.ndim - 1) + [(0, pad)])
        g = p.reshape(p.shape[:-1] + (p.shape[-1] // n, n)).max(axis=-1, keepdims=True)
        g = np.broadcast_to(g, p.shape[:-1] + (p.shape[-1] // n, n)).reshape(p.shape)
        return g[..., :cols].copy()
    rows, cols = x.shape[-2:]
    pr, pc = -rows % n, -cols % n
    p = np.pad(a, [(0, 0)] * (x.ndim - 2) + [(0, pr), (0, pc)])
    R, C = p.shape[-2] // n, p.shape[-1] // n
    t = p.reshape(p.shape[:-2] + (R, n, C, n)).max(axis=(-3, -1), keepdims=True)
    t = np.broadcast_to(t, p.shape[:-2] + (R, n, C, n)).reshape(p.shape)
    return t[..., :rows, :cols].copy()


def quantize(x, elem, gran, pow2):
    top = F32(ELEMS[elem][3])
    a = group_amax(x, gran).astype(F32)
    with np.errstate(divide="ignore", over="ignore"):
        m = (top / a).astype(F32)
    m = np.where(np.isinf(m), F32(FLT_MAX), m).astype(F32)
    m = np.where(a == 0, F32(1), m).astype(F32)
    if pow2:
        m = (m.view(np.uint32) & np.uint32(0xFF800000)).view(F32)
    d = (F32(1) / m).astype(F32)
    t = np.clip((x * m).astype(F32), -top, top).astype(F32)
    return (round_nearest_even(t, elem) * d).astype(F32)


def spread(rng, shape, lo, hi, group):
    x = rng.standard_normal(shape).astype(F32)
    flat = x.reshape(-1, group)
    k = rng.integers(lo, hi + 1, size=(flat.shape[0], 1))
    return (flat * np.exp2(k).astype(F32)).reshape(shape).astype(F32)


def main():
    rng = np.random.default_rng(2026)
    inputs = {
        "rows": spread(rng, (16, 300), -30, 30, 300),
        "blocks": spread(rng, (4, 2, 256), -20, 20, 128),
        "tiles": spread(rng, (130, 140), -10, 10, 10),
        "flat": spread(rng, (1000,), -6, 6, 8),
    }
    # A zero row and a row so small that M / a overflows.
    inputs["rows"][3] = 0
    inputs["rows"][5] = rng.standard_normal(300).astype(F32) * F32(1e-39)
    grans = {
        "tensor": "tensor",
        "row": "row",
        "block128": ("block", 128),
        "block2d128": ("block2d", 128),
        "block32": ("block", 32),
    }
    # Which granularities each input is rounded with.
    used = {
        "rows": ["tensor", "row", "block128", "block2d128"],
        "blocks": ["row", "block128", "block32"],
        "tiles": ["tensor", "block2d128"],
        "flat": ["row", "block32", "block2d128"],
    }
    tensors = {}
    for name, x in inputs.items():
        tensors[f"{name}.input"] = x
        for elem in ELEMS:
            for gname in used[name]:
                gran = grans[gname]
                for pow2 in (False, True):
                    key = f"{name}.{elem}.{gname}.{'pow2' if pow2 else 'exact'}"
                    tensors[key] = quantize(x, elem, gran, pow2)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fp8_scaled.safetensors")
    save_file(tensors, out)
    print(f"wrote {len(tensors)} tensors to {out}")


if __name__ == "__main__":
    main()
