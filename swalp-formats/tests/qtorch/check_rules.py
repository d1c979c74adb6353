#!/usr/bin/env python3
"""Re-implement the qtorch 0.3.0 nearest-rounding rules stated in README.md in
numpy (float64 arithmetic) and check them bit for bit (including the sign of
zero) against vectors.safetensors.

The only float32 rounding used is `rne32(v)`: cast of an exact float64 value to
float32 (round to nearest, ties to even).  It stands for the single f32 addition
that each qtorch kernel performs; computing that sum exactly in float64 and then
rounding once to f32 is the same as the f32 addition (53 >= 2*24+2, so the
double rounding is innocuous).

For comparison it also counts how many values differ from the "textbook" rule
without that f32 pre-rounding step (the double-rounding quirks).

Needs only numpy and safetensors.
"""
import json
import os
import sys

import numpy as np
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))


def rnd(v, tie):
    """Round float64 v to an integer: tie in {"even", "away", "up"}."""
    if tie == "even":
        return np.rint(v)
    if tie == "away":
        return np.copysign(np.floor(np.abs(v) + 0.5), v)
    return np.floor(v + 0.5)


def rne32(v):
    return np.asarray(v, dtype=np.float64).astype(np.float32).astype(np.float64)


def signbit(x):
    return np.signbit(x)


# ---------------------------------------------------------------------------
# fixed point:  q = s * rint( rne32(x/s + 0.5) - 0.5 ),  s = 2^-fl
#   rint = round half to even; then clamp to [t_min, t_max] if clamp.
#   t_min = -2^(wl-fl-1) (+ s if symmetric), t_max = 2^(wl-fl-1) - s
# ---------------------------------------------------------------------------
def fixed_rule(x, wl, fl, clamp, symmetric, prerounding=True, tie=None):
    x = x.astype(np.float64)
    a = np.ldexp(x, fl)
    if tie is None:
        y = rne32(a + 0.5) if prerounding else a + 0.5
        q = np.ldexp(np.rint(y - 0.5), -fl)
    else:  # textbook alternative, for the discrimination count only
        q = np.ldexp(rnd(a, tie), -fl)
    if clamp:
        tmin = -(2.0 ** (wl - fl - 1))
        tmax = -tmin - 2.0 ** -fl
        if symmetric:
            tmin = -tmax
        q = np.where(q > tmax, tmax, np.where(q < tmin, tmin, q))
    return q.astype(np.float32)


# ---------------------------------------------------------------------------
# float (exp, man): emin = 2 - 2^(exp-1), emax = 2^(exp-1)
#   |x| >= 2^emin: round |x| half AWAY from zero to 2^(floor(log2|x|) - man);
#                  if the result >= 2^(emax+1): sign * 2^emax * (2 - 2^-man)
#   |x| <  2^emin (incl. +-0, f32 subnormals):
#                  h = 2^emin, v = rne32(|x| + h)
#                  q = sign * (round half away of v to grid 2^(emin-man) - h)
#                  (a zero result is +0.0)
# ---------------------------------------------------------------------------
def float_rule(x, exp, man, prerounding=True, tie="away"):
    emin = 2 - 2 ** (exp - 1)
    emax = 2 ** (exp - 1)
    sgn = np.where(signbit(x), -1.0, 1.0)
    ax = np.abs(x.astype(np.float64))
    out = np.empty(x.shape, dtype=np.float64)

    sub = ax < 2.0 ** emin
    # normal path: direct round-half-away on the magnitude
    an = ax[~sub]
    _, e2 = np.frexp(an)  # an = m * 2^e2, m in [0.5, 1)
    g = np.ldexp(1.0, e2 - 1 - man)
    r = rnd(an / g, tie) * g
    maxv = 2.0 ** emax * (2 - 2.0 ** -man)
    r = np.where(r >= 2.0 ** (emax + 1), maxv, r)
    out[~sub] = sgn[~sub] * r

    # subnormal path: rebase onto 2^emin with an f32 add, then round
    h = 2.0 ** emin
    v = rne32(ax[sub] + h) if prerounding else ax[sub] + h
    gs = 2.0 ** (emin - man)
    r = rnd(v / gs, tie) * gs - h
    r = sgn[sub] * r
    out[sub] = np.where(r == 0, 0.0, r)  # -h - (-h) = +0
    return out.astype(np.float32)


# ---------------------------------------------------------------------------
# block (wl, dim): per block M = max|x|, E = floor(log2 M), ulp = 2^(E+2-wl)
#   B = 6 * 2^E;  v = rne32(x + B);  r = floor(v/ulp + 0.5)*ulp   (half UP)
#   q = r - B  (zero is +0.0);  if |q| >= 2^(E+1): q = sign(q) * (2^(E+1) - ulp)
# ---------------------------------------------------------------------------
def block_rule(x, wl, dim, prerounding=True, tie=None):
    x64 = x.astype(np.float64)
    if dim == -1:
        M = np.max(np.abs(x64))
        M = np.full(x.shape, M)
    elif dim == 0:
        M = np.max(np.abs(x64.reshape(x.shape[0], -1)), axis=1)
        M = np.broadcast_to(M.reshape((-1,) + (1,) * (x.ndim - 1)), x.shape)
    else:
        raise ValueError(dim)
    assert np.all(M >= 2.0 ** -126), "zero / f32-subnormal block maxima not modelled"
    _, e2 = np.frexp(M)
    E = e2 - 1
    B = 6.0 * np.ldexp(1.0, E)
    ulp = np.ldexp(1.0, E + 2 - wl)
    if tie is None:
        v = rne32(x64 + B) if prerounding else x64 + B
        r = np.floor(v / ulp + 0.5) * ulp
        q = r - B
    else:  # textbook alternative (no rebase), for the discrimination count only
        q = rnd(x64 / ulp, tie) * ulp
    lim = np.ldexp(1.0, E + 1)
    q = np.where(np.abs(q) >= lim, np.sign(q) * (lim - ulp), q)
    q = np.where(q == 0, 0.0, q)
    return q.astype(np.float32)


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def main():
    tensors = load_file(os.path.join(HERE, "vectors.safetensors"))
    cases = json.load(open(os.path.join(HERE, "cases.json")))
    total = {"fixed": [0, 0, 0, 0], "float": [0, 0, 0, 0], "block": [0, 0, 0, 0]}
    bad_cases = []
    altsum = {}
    for c in cases:
        x = tensors[c["name"] + ".input"]
        y = tensors[c["name"] + ".expected"]
        assert list(x.shape) == c["shape"] and x.shape == y.shape
        if c["kind"] == "fixed":
            f = lambda pre: fixed_rule(x, c["wl"], c["fl"], c["clamp"], c["symmetric"], pre)  # noqa: E731
        elif c["kind"] == "float":
            f = lambda pre: float_rule(x, c["exp"], c["man"], pre)  # noqa: E731
        else:
            f = lambda pre: block_rule(x, c["wl"], c["dim"], pre)  # noqa: E731
        got = f(True)
        mism = int(np.count_nonzero(bits(got) != bits(y)))
        naive = f(False)
        quirk = int(np.count_nonzero(bits(naive) != bits(y)))
        # same as quirk but ignoring the sign of zero
        quirk_nz = int(np.count_nonzero(naive != y))
        alts = {"fixed": ("even", "away", "up"), "float": ("even",), "block": ("even", "away", "up")}[c["kind"]]
        alt = {}
        for tie in alts:
            if c["kind"] == "fixed":
                a = fixed_rule(x, c["wl"], c["fl"], c["clamp"], c["symmetric"], False, tie)
            elif c["kind"] == "float":
                a = float_rule(x, c["exp"], c["man"], False, tie)
            else:
                a = block_rule(x, c["wl"], c["dim"], False, tie)
            alt[tie] = int(np.count_nonzero(a != y))
        t = total[c["kind"]]
        for tie, v in alt.items():
            altsum.setdefault(c["kind"], {}).setdefault(tie, 0)
            altsum[c["kind"]][tie] += v
        t[0] += 1
        t[1] += x.size
        t[2] += mism
        t[3] += quirk_nz
        print("%-28s n=%5d  mismatches=%d  (without f32 pre-rounding: %d differ; plain ties-%s: %s)"
              % (c["name"], x.size, mism, quirk_nz, "/".join(alt), "/".join(str(v) for v in alt.values())))
        if mism:
            bad_cases.append(c["name"])
            idx = np.nonzero(bits(got) != bits(y))[0][:5]
            for i in idx:
                print("    x=%r qtorch=%r rule=%r" % (float(x.flat[i]), float(y.flat[i]), float(got.flat[i])))
        assert quirk >= quirk_nz
    print()
    for k, (nc, nv, mm, nq) in total.items():
        print("%-5s: %2d cases, %6d values, %d bitwise mismatches vs stated rule; "
              "%d values where dropping the f32 pre-rounding would change the result" % (k, nc, nv, mm, nq))
    for k, d in altsum.items():
        print("%-5s: plain textbook rounding (no f32 step) would differ on: %s" % (
            k, ", ".join("ties-%s %d" % kv for kv in d.items())))
    if bad_cases:
        print("FAILED:", bad_cases)
        sys.exit(1)
    print("ALL OK")


if __name__ == "__main__":
    main()
