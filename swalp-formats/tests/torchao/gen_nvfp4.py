"""Test vectors for swalp's NVFP4 from torchao 0.18.0.

torchao's own path, as NVFP4Tensor uses it: `per_tensor_amax_to_scale` for
the tensor scale (two-level) or none (single-level), `nvfp4_quantize` for
the E4M3 block scales and the packed E2M1 elements (nearest-even), and
`NVFP4Tensor.dequantize` for the values. Inputs are f32:

- `wide`: [64, 64], each 16-element block a normal vector times 2^k with k
  uniform in [-40, 40], so single-level scaling meets the E4M3 clamps at
  both ends and two-level scaling flushes the smallest blocks;
- `narrow`: [8, 4, 32] (three dimensions, blocks along the last), k in
  [-10, 10];
- `ties`: [32, 16], blocks whose largest element is 6 times an E4M3 value
  and whose other elements are multiples of a quarter of it, so that the
  element rounding meets its ties (x.25, x.75, 2.5, 5) exactly in
  single-level scaling.

Run with the README's PyTorch environment and torchao installed beside it:
    python3 -m pip install --target /tmp/ao-lib --no-deps torchao==0.18.0
    PYTHONPATH=/tmp/ao-lib python3 gen_nvfp4.py
writes nvfp4.safetensors next to this file.
"""

import os

import torch
from safetensors.torch import save_file
from torchao.prototype.mx_formats.nvfp4_tensor import NVFP4Tensor, per_tensor_amax_to_scale


def spread(gen, shape, lo, hi):
    blocks = torch.randn(*shape, generator=gen).reshape(-1, 16)
    k = torch.randint(lo, hi + 1, (blocks.shape[0], 1), generator=gen).to(torch.float32)
    return (blocks * torch.exp2(k)).reshape(shape).contiguous()


def ties(gen):
    rows = []
    e4m3 = torch.arange(0, 127, dtype=torch.uint8).view(torch.float8_e4m3fn).float()
    e4m3 = e4m3[(e4m3 >= 2.0**-6) & (e4m3 <= 448)]
    for i in range(32):
        s = e4m3[int(torch.randint(len(e4m3), (1,), generator=gen))]
        quarters = torch.randint(-24, 25, (16,), generator=gen).float()
        quarters[int(torch.randint(16, (1,), generator=gen))] = 24.0 * (1 if i % 2 else -1)
        rows.append(quarters / 4 * s)
    return torch.stack(rows).contiguous()


def main():
    gen = torch.Generator().manual_seed(2026)
    inputs = {
        "wide": spread(gen, (64, 64), -40, 40),
        "narrow": spread(gen, (8, 4, 32), -10, 10),
        "ties": ties(gen),
    }
    tensors = {}
    for name, x in inputs.items():
        tensors[f"{name}.input"] = x
        for level, use_tensor_scale in (("single", False), ("two", True)):
            scale = per_tensor_amax_to_scale(x.abs().max()) if use_tensor_scale else None
            q = NVFP4Tensor.to_nvfp4(x, per_tensor_scale=scale)
            tensors[f"{name}.{level}"] = q.dequantize(torch.float32).contiguous()
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nvfp4.safetensors")
    save_file(tensors, out)
    print(f"wrote {len(tensors)} tensors to {out}")


if __name__ == "__main__":
    main()
