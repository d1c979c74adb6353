"""Test vectors for swalp's MX scale rules from torchao 0.18.0.

For every element type torchao's MX code supports (FP8 E4M3/E5M2, FP6
E3M2/E2M3, FP4 E2M1) and every ScaleCalculationMode (FLOOR, CEIL, EVEN,
RCEIL), quantize one input with torchao's to_mx and dequantize with
MXTensor's own path, nearest-even as torchao rounds. The input is
[256 blocks, 32] f32: each block a random normal vector times 2^k with k
spread over [-60, 60], and a first group of blocks whose maximum is
exactly at, or one f32 ulp above or below, a power of two times each
element maximum (where CEIL, EVEN and RCEIL differ from FLOOR).

Blocks whose maximum is below 2^-100 are left out on purpose: for those
torchao 0.18 divides by 2^-126 (FLOOR/CEIL/EVEN clamp the f32 scale to the
smallest normal) or by 1 (RCEIL with a zero exponent) while it multiplies
back by 2^-127; swalp keeps OCP's 2^-127 both ways.

Run with the README's PyTorch environment and torchao installed beside it:
    python3 -m pip install --target /tmp/ao-lib --no-deps torchao==0.18.0
    PYTHONPATH=/tmp/ao-lib python3 gen_mx_scale_rules.py
writes mx_scale_rules.safetensors next to this file.
"""

import os

import torch
from safetensors.torch import save_file
from torchao.prototype.mx_formats.config import ScaleCalculationMode
from torchao.prototype.mx_formats.constants import DTYPE_FP6_E2M3, DTYPE_FP6_E3M2
from torchao.prototype.mx_formats.mx_tensor import MXTensor

ELEMS = {
    "fp8_e4m3": (torch.float8_e4m3fn, 448.0),
    "fp8_e5m2": (torch.float8_e5m2, 57344.0),
    "fp6_e3m2": (DTYPE_FP6_E3M2, 28.0),
    "fp6_e2m3": (DTYPE_FP6_E2M3, 7.5),
    "fp4_e2m1": (torch.float4_e2m1fn_x2, 6.0),
}
MODES = {
    "floor": ScaleCalculationMode.FLOOR,
    "ceil": ScaleCalculationMode.CEIL,
    "even": ScaleCalculationMode.EVEN,
    "rceil": ScaleCalculationMode.RCEIL,
}


def edge_blocks(gen, max_elem):
    """Blocks whose maximum sits at, just above or just below 2^k times the
    element maximum or 2^k itself."""
    blocks = []
    for k in range(-8, 9, 4):
        for base in (max_elem, 1.0, 1.5):
            target = torch.tensor(base * 2.0**k, dtype=torch.float32)
            for step in (-1, 0, 1):
                m = target.view(torch.int32) + step
                m = m.view(torch.float32)
                b = (torch.rand(32, generator=gen) * 2 - 1) * m * 0.999
                b[int(torch.randint(32, (1,), generator=gen))] = m * (1 if step >= 0 else -1)
                blocks.append(b)
    return torch.stack(blocks)


def main():
    gen = torch.Generator().manual_seed(2026)
    tensors = {}
    for name, (dtype, max_elem) in ELEMS.items():
        edges = edge_blocks(gen, max_elem)
        n = 256 - edges.shape[0]
        k = torch.randint(-60, 61, (n, 1), generator=gen).to(torch.float32)
        random = torch.randn(n, 32, generator=gen) * torch.exp2(k)
        x = torch.cat([edges, random]).to(torch.float32).contiguous()
        assert x.abs().amax(1).min() > 2.0**-100
        tensors[f"{name}.input"] = x
        for mode_name, mode in MODES.items():
            mx = MXTensor.to_mx(x, dtype, block_size=32, scaling_mode=mode)
            tensors[f"{name}.{mode_name}"] = mx.dequantize(torch.float32).contiguous()
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mx_scale_rules.safetensors")
    save_file(tensors, out)
    print(f"wrote {len(tensors)} tensors to {out}")


if __name__ == "__main__":
    main()
