// Scaled FP8 (`kernels::native::fp8_scaled`, TransformerEngine's scale):
// each group's multiplier M / amax in f32, then every element multiplied
// onto the FP8 grid, rounded and multiplied back.
#include "swalp_float.cuh"

typedef struct {
  swalp_float_params elem;
  // The element's largest value M.
  float max;
  // Power-of-two multipliers (the mantissa cleared).
  swalp_i32 pow2;
} swalp_fp8_scaled_params;

// `Fp8Scaled::block_scales`, NaN factors for a non-finite group.
SWALP_FN swalp_block_scales swalp_fp8_scales(const swalp_fp8_scaled_params* p, float amax) {
  float m = p->max / amax;
  if ((swalp_f32_bits(m) & 0x7fffffffu) == 0x7f800000u) m = 3.40282347e38f;
  if (amax == 0.0f) m = 1.0f;
  if (p->pow2) m = swalp_f32_from_bits(swalp_f32_bits(m) & 0xff800000u);
  swalp_block_scales s;
  s.mul = m;
  s.dequant = 1.0f / m;
  return swalp_finite_scales(amax, s);
}

SWALP_FN float swalp_fp8_scaled_element(const swalp_args* a, const swalp_fp8_scaled_params* p,
                                        swalp_u64 i) {
  swalp_block_scales s = swalp_fp8_scales(p, swalp_f32_from_bits(swalp_block_max(a, i)));
  return swalp_scaled_element(a, &p->elem, p->max, s, a->x[i], swalp_draw(a, i));
}

SWALP_KERNEL(swalp_fp8_scaled, swalp_fp8_scaled_params, swalp_fp8_scaled_element)
