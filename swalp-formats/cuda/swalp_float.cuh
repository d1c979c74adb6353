// swalp_float.cuh: a value rounded onto a float grid (the formats "float",
// "bfloat16", "fp16", "fp8_*", and the elements of NVFP4 and scaled FP8),
// as `kernels::native::float_element` computes it in f64.
#ifndef SWALP_FLOAT_CUH
#define SWALP_FLOAT_CUH

#include "swalp.cuh"

// A float format with the overflow values of the call's rounding
// (`FloatParams` in kernels/native.rs; laid out by kernels/cuda.rs).
typedef struct {
  double max;
  // [positive, negative]: what a value beyond `max` becomes, what an
  // infinity becomes.
  double overflow[2];
  double infinity[2];
  swalp_i32 emin;
  swalp_i32 emax;
  swalp_i32 man;
  // The step exponent below 2^emin.
  swalp_i32 below_emin;
} swalp_float_params;

// v on the grid of its binade, then the overflow rule; NaN quieted.
SWALP_FN float swalp_float_element(const swalp_args* a, const swalp_float_params* p, float v,
                                   swalp_u32 draw) {
  double x = (double)v;
  // The binade from the f32 exponent field: zeros and subnormals read as
  // -127, infinities and NaN as 128 (see float_element).
  swalp_i32 e = (swalp_i32)((swalp_f32_bits(v) >> 23) & 0xff) - 127;
  e = e < p->emax ? e : p->emax;
  swalp_i32 k = e >= p->emin ? e - p->man : p->below_emin;
  double y = swalp_round(a, x * swalp_pow2(-k), draw) * swalp_pow2(k);
  int negative = x < 0.0;
  double overflow = negative ? p->overflow[1] : p->overflow[0];
  double infinity = negative ? p->infinity[1] : p->infinity[0];
  if (fabs(y) > p->max) y = overflow;
  if (swalp_isinf64(x)) y = infinity;
  if (swalp_isnan32(v)) return swalp_f32_from_bits(swalp_f32_bits(v) | 0x00400000u);
  return (float)y;
}

// A scaled float block's factors (`nvfp4::BlockScales`).
typedef struct {
  float mul;
  float dequant;
} swalp_block_scales;

// round(clamp(v * mul, +-max)) * dequant in f32, the element on the float
// grid of `elem` (`ScaledElement` in kernels/native.rs).
SWALP_FN float swalp_scaled_element(const swalp_args* a, const swalp_float_params* elem,
                                    float max, swalp_block_scales s, float v, swalp_u32 draw) {
  float t = swalp_clampf(v * s.mul, -max, max);
  return swalp_float_element(a, elem, t, draw) * s.dequant;
}

// NaN factors for a block whose maximum is not finite, so that its
// elements become NaN (`ScaledBlocks::scale`).
SWALP_FN swalp_block_scales swalp_finite_scales(float amax, swalp_block_scales s) {
  if (!swalp_isfinite32(amax)) {
    s.mul = swalp_nan32();
    s.dequant = swalp_nan32();
  }
  return s;
}

#endif  // SWALP_FLOAT_CUH
