#!/usr/bin/env python3
"""Write prerounding.safetensors: for every case in vectors.safetensors, a uint8
mask `<case>.prerounding` marking the elements where qtorch 0.3.0's single
float32 addition before rounding (see README.md) changes its result compared
with the exact rule (no pre-rounding). swalp rounds exactly, so those are the
only elements where it may differ from qtorch; the Rust test checks every other
element bit for bit (+0 and -0 compared equal, see README.md).

Needs numpy and safetensors (run with the qtorch-ref venv's python).
"""
import json
import os

import numpy as np
from safetensors.numpy import load_file, save_file

from check_rules import block_rule, fixed_rule, float_rule

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    tensors = load_file(os.path.join(HERE, "vectors.safetensors"))
    cases = json.load(open(os.path.join(HERE, "cases.json")))
    masks = {}
    for c in cases:
        x = tensors[c["name"] + ".input"]
        y = tensors[c["name"] + ".expected"]
        if c["kind"] == "fixed":
            exact = fixed_rule(x, c["wl"], c["fl"], c["clamp"], c["symmetric"], prerounding=False)
        elif c["kind"] == "float":
            exact = float_rule(x, c["exp"], c["man"], prerounding=False)
        else:
            exact = block_rule(x, c["wl"], c["dim"], prerounding=False)
        masks[c["name"] + ".prerounding"] = (exact != y).astype(np.uint8)
        print("%-28s %4d of %5d elements changed by qtorch's f32 pre-rounding"
              % (c["name"], int(masks[c["name"] + ".prerounding"].sum()), x.size))
    save_file(masks, os.path.join(HERE, "prerounding.safetensors"))


if __name__ == "__main__":
    main()
