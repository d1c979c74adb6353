"""Reference vectors for swalp_core::matmul::Accumulation.

Follows the definition in swalp-core/src/matmul/mod.rs literally, one output
element and one addition at a time, in plain Python floats (IEEE binary64),
with its own float and fixed-point rounding and its own copy of swalp's
counter-based random draws: nothing here comes from swalp. Writes
vectors.toml next to this file:

    python3 swalp-core/tests/matmul/gen_matmul.py
"""

import math
import os
import random
import struct

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF
MODES = ["nearest-even", "nearest-away", "nearest-up", "toward-zero", "down", "up", "stochastic"]


# ---- swalp_core::rng ----

def splitmix64(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def mix32(x):
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    return x ^ (x >> 16)


class Rng:
    """QuantRng: stream n of seed s has keys from splitmix64(s ^ splitmix64(n))."""

    def __init__(self, seed):
        self.seed, self.next = seed, 0

    def stream(self):
        k = splitmix64(self.seed ^ splitmix64(self.next))
        self.next += 1
        return (k & M32, k >> 32)

    @staticmethod
    def draw(keys, i):
        k0, k1 = keys
        k1 ^= ((i >> 32) * 0x9E3779B9) & M32
        return mix32(mix32((i & M32) ^ k0) ^ k1)


# ---- rounding (the textbook rule on floor and fraction) ----

def round_int(v, mode, r):
    fl = math.floor(v)
    frac = v - fl
    if frac == 0.0:
        return v
    if mode == "nearest-even":
        up = frac > 0.5 or (frac == 0.5 and fl % 2 != 0)
    elif mode == "nearest-away":
        up = frac > 0.5 or (frac == 0.5 and v > 0)
    elif mode == "nearest-up":
        up = frac >= 0.5
    elif mode == "toward-zero":
        up = v < 0
    elif mode == "down":
        up = False
    elif mode == "up":
        up = True
    else:  # stochastic, 32 bits
        up = math.floor(frac * 2.0**32) + r >= 2**32
    return math.copysign(abs(float(fl + 1 if up else fl)), v)


def shrinks(mode, negative):
    return mode == "toward-zero" or (mode == "down" and not negative) or (mode == "up" and negative)


def q_float(v, exp, man, mode, r):
    """IEEE-style float with subnormals, overflow to infinity."""
    if v == 0.0 or math.isinf(v) or math.isnan(v):
        return v
    bias = 2 ** (exp - 1) - 1
    emin, emax = 1 - bias, bias
    maxv = (2.0 - 2.0**-man) * 2.0**emax
    e = min(math.frexp(v)[1] - 1, emax)
    k = max(e, emin) - man
    y = math.ldexp(round_int(math.ldexp(v, -k), mode, r), k)
    if abs(y) > maxv:
        y = math.copysign(maxv if shrinks(mode, v < 0) else math.inf, v)
    return y


def q_fixed(v, wl, fl, mode, r):
    n = round_int(math.ldexp(v, fl), mode, r)
    n = min(max(n, -(2.0 ** (wl - 1))), 2.0 ** (wl - 1) - 1)
    return math.ldexp(n, -fl)


def f32(v):
    return struct.unpack("<f", struct.pack("<f", v))[0]


def f32_bits(v):
    return struct.unpack("<I", struct.pack("<f", v))[0]


class Fmt:
    def __init__(self, kind, a, b):
        self.kind, self.a, self.b = kind, a, b

    def spec(self, mode):
        if self.kind == "float":
            return f'{{ format = "float", exp = {self.a}, man = {self.b}, rounding = "{mode}" }}'
        return f'{{ format = "fixed", wl = {self.a}, fl = {self.b}, rounding = "{mode}" }}'

    def q(self, v, mode, r):
        f = q_float if self.kind == "float" else q_fixed
        return f(v, self.a, self.b, mode, r)


def quantize_matrix(fmt, mat, mode, rng):
    """One Quantizer::quantize call on an [M, N] matrix: one stream when
    stochastic, element (i, j) drawing i*N + j."""
    keys = rng.stream() if mode == "stochastic" else None
    n = len(mat[0])
    return [[fmt.q(v, mode, Rng.draw(keys, i * n + j) if keys else 0)
             for j, v in enumerate(row)] for i, row in enumerate(mat)]


def reference(a, b, product, acc, chunk, chunk_acc, mode, seed):
    return product_with(a, b, product, acc, chunk, chunk_acc, mode, Rng(seed))


def product_with(a, b, product, acc, chunk, chunk_acc, mode, rng):
    """The product a . b drawing its streams from rng (continued)."""
    m, k, n = len(a), len(b), len(b[0])
    zeros = lambda: [[0.0] * n for _ in range(m)]
    s, t = zeros(), zeros()
    for kk in range(k):
        p = [[a[i][kk] * b[kk][j] for j in range(n)] for i in range(m)]  # exact
        if product:
            p = quantize_matrix(product, p, mode, rng)
        if chunk is None:
            s = quantize_matrix(acc, [[s[i][j] + p[i][j] for j in range(n)] for i in range(m)], mode, rng)
            continue
        t = [[t[i][j] + p[i][j] for j in range(n)] for i in range(m)]
        t = quantize_matrix(chunk_acc, t, mode, rng) if chunk_acc else [[f32(v) for v in row] for row in t]
        if (kk + 1) % chunk == 0 or kk + 1 == k:
            partial = quantize_matrix(acc, t, mode, rng)
            s = quantize_matrix(acc, [[s[i][j] + partial[i][j] for j in range(n)] for i in range(m)], mode, rng)
            t = zeros()
    return [[f32(v) for v in row] for row in s]


def operands(rnd, m, k, n, positive):
    def value():
        v = rnd.uniform(0.5, 2.0) * 2.0 ** rnd.randint(-4, 0)
        return f32(v if positive or rnd.random() < 0.6 else -v)
    return ([[value() for _ in range(k)] for _ in range(m)],
            [[value() for _ in range(n)] for _ in range(k)])


def transpose(mat):
    return [list(col) for col in zip(*mat)]


def arithmetic_toml(products, mode):
    """[quant.matmul] text giving each product its own table."""
    lines = []
    for role, (product, acc, chunk, chunk_acc) in products.items():
        keys = ["product = " + (product.spec(mode) if product else '"none"'),
                "accumulator = " + acc.spec(mode),
                f"chunk = {chunk}" if chunk else 'chunk = "none"']
        if chunk_acc:
            keys.append("chunk_accumulator = " + chunk_acc.spec(mode))
        lines.append(f"{role} = {{ {', '.join(keys)} }}")
    return "\n".join(lines)


def layer_cases(rnd, e5m2, fp16, bf16, fx_prod, fx_acc):
    """A linear layer y = x . W^T (no bias) through the autograd node: the
    forward product, then the input gradient g . W, then the weight
    gradient (x^T . g)^T, drawing from one generator in that order."""
    same = (e5m2, fp16, 4, None)
    configs = [
        ("the same arithmetic for all three products",
         {"forward": same, "input_grad": same, "weight_grad": same}),
        ("three different arithmetics",
         {"forward": (e5m2, fp16, None, None),
          "input_grad": (None, bf16, 3, None),
          "weight_grad": (fx_prod, fx_acc, 2, fx_acc)}),
    ]
    out = []
    batch, inputs, outputs = 5, 6, 3
    bits = lambda mat: [f32_bits(v) for row in mat for v in row]
    for c, (name, products) in enumerate(configs):
        x, _ = operands(rnd, batch, inputs, 1, False)
        w, _ = operands(rnd, outputs, inputs, 1, False)
        g, _ = operands(rnd, batch, outputs, 1, False)
        for mode in ["nearest-even", "stochastic"]:
            seed = 200 + c
            rng = Rng(seed)
            y = product_with(x, transpose(w), *products["forward"], mode, rng)
            gx = product_with(g, w, *products["input_grad"], mode, rng)
            gw = transpose(product_with(transpose(x), g, *products["weight_grad"], mode, rng))
            out.append("[[layer]]")
            out.append(f'name = "{name}, {mode}"')
            out.append(f"seed = {seed}")
            out.append(f"batch = {batch}\ninputs = {inputs}\noutputs = {outputs}")
            out.append("arithmetic = '''\n" + arithmetic_toml(products, mode) + "\n'''")
            out.append(f"x = {bits(x)}")
            out.append(f"w = {bits(w)}")
            out.append(f"g = {bits(g)}")
            out.append(f"y = {bits(y)}")
            out.append(f"grad_x = {bits(gx)}")
            out.append(f"grad_w = {bits(gw)}")
            out.append("")
    return out


def main():
    e5m2, fp16, bf16 = Fmt("float", 5, 2), Fmt("float", 5, 10), Fmt("float", 8, 7)
    e3m2 = Fmt("float", 3, 2)
    fx_prod, fx_acc = Fmt("fixed", 12, 8), Fmt("fixed", 16, 8)
    configs = [
        # name, product, accumulator, chunk, chunk accumulator, positive data
        ("e5m2 products, fp16 sum", e5m2, fp16, None, None, True),
        ("e5m2 products, fp16 sum, chunk 1", e5m2, fp16, 1, None, True),
        ("e5m2 products, fp16 sum, chunks of 8 in f32", e5m2, fp16, 8, None, True),
        ("e5m2 products, fp16 sum, chunks of 8 in fp16", e5m2, fp16, 8, fp16, False),
        ("exact products, bfloat16 sum", None, bf16, None, None, False),
        ("exact products, e3m2 sum, chunks of 5 in f32", None, e3m2, 5, None, True),
        ("fixed products, fixed sum, chunks of 4", fx_prod, fx_acc, 4, fx_acc, False),
    ]
    rnd = random.Random(2026)
    out = ["# Generated by gen_matmul.py: swalp_core::matmul reference vectors.",
           "# a, b, expected: f32 bit patterns, row-major.", ""]
    for c, (name, product, acc, chunk, chunk_acc, positive) in enumerate(configs):
        m, k, n = 3, 37, 4
        a, b = operands(rnd, m, k, n, positive)
        for mode in MODES:
            seed = 100 + c
            y = reference(a, b, product, acc, chunk, chunk_acc, mode, seed)
            out.append("[[case]]")
            out.append(f'name = "{name}, {mode}"')
            out.append(f"seed = {seed}")
            out.append(f"m = {m}\nk = {k}\nn = {n}")
            out.append(f"product = '{product.spec(mode)}'" if product else 'product = "none"')
            out.append(f"accumulator = '{acc.spec(mode)}'")
            out.append(f"chunk = {chunk}" if chunk else 'chunk = "none"')
            out.append(f"chunk_accumulator = '{chunk_acc.spec(mode)}'" if chunk_acc else 'chunk_accumulator = "f32"')
            out.append(f"a = {[f32_bits(v) for row in a for v in row]}")
            out.append(f"b = {[f32_bits(v) for row in b for v in row]}")
            out.append(f"expected = {[f32_bits(v) for row in y for v in row]}")
            out.append("")
    out += layer_cases(rnd, e5m2, fp16, bf16, fx_prod, fx_acc)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors.toml")
    with open(path, "w") as f:
        f.write("\n".join(out))
    print(f"wrote {len(configs) * len(MODES)} cases and 4 layer cases to {path}")


if __name__ == "__main__":
    main()
