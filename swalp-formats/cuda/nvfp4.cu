// NVFP4 (`kernels::native::nvfp4`, torchao's f32 arithmetic): the tensor
// scale from the tensor's largest magnitude (two-level), each 16-element
// block's E4M3 scale from its own, then every element multiplied onto the
// E2M1 grid, rounded and multiplied back.
#include "swalp_float.cuh"

typedef struct {
  // E2M1 with the call's rounding.
  swalp_float_params elem;
  // Two-level scaling (a tensor scale); `tensor_max` is then set.
  swalp_i32 two_level;
  swalp_i32 reserved;
} swalp_nvfp4_params;

#define SWALP_NVFP4_ELEM_MAX 6.0f
#define SWALP_NVFP4_SCALE_MAX 448.0f
#define SWALP_NVFP4_SCALE_MIN 0.015625f

// x rounded to E4M3, ties to even, for x normal in [2^-6, 448]
// (`nvfp4::e4m3_nearest`).
SWALP_FN float swalp_e4m3_nearest(float x) {
  swalp_u32 biased = (swalp_f32_bits(x) >> 23) & 0xffu;
  float step = swalp_f32_from_bits(((biased - 3u) & 0xffu) << 23);
  float inverse = swalp_f32_from_bits(((254u - biased + 3u) & 0xffu) << 23);
  const float shift = 8388608.0f;
  return ((x * inverse + shift) - shift) * step;
}

// `Nvfp4Format::block_scales`; `t` is the tensor scale, or 0 for none.
SWALP_FN swalp_block_scales swalp_nvfp4_scales(float amax, float t) {
  float b = amax / SWALP_NVFP4_ELEM_MAX;
  swalp_block_scales s;
  if (t == 0.0f) {
    float e = swalp_e4m3_nearest(swalp_clampf(b, SWALP_NVFP4_SCALE_MIN, SWALP_NVFP4_SCALE_MAX));
    s.mul = 1.0f / e;
    s.dequant = e;
  } else {
    float e =
        swalp_e4m3_nearest(swalp_clampf(b / t, SWALP_NVFP4_SCALE_MIN, SWALP_NVFP4_SCALE_MAX));
    s.mul = (1.0f / t) / e;
    s.dequant = t * e;
  }
  return swalp_finite_scales(amax, s);
}

SWALP_FN float swalp_nvfp4_element(const swalp_args* a, const swalp_nvfp4_params* p,
                                   swalp_u64 i) {
  float v = a->x[i];
  float t = 0.0f;
  if (p->two_level) {
    float amax = swalp_f32_from_bits(*a->tensor_max);
    if (!swalp_isfinite32(amax)) return swalp_nan32();
    // `Nvfp4Format::usable_tensor_scale`: too small a tensor becomes zeros.
    t = amax / (SWALP_NVFP4_SCALE_MAX * SWALP_NVFP4_ELEM_MAX);
    if (!swalp_isfinite32((1.0f / t) / SWALP_NVFP4_SCALE_MIN)) return v * 0.0f;
  }
  float amax = swalp_f32_from_bits(swalp_block_max(a, i));
  swalp_block_scales s = swalp_nvfp4_scales(amax, t);
  return swalp_scaled_element(a, &p->elem, SWALP_NVFP4_ELEM_MAX, s, v, swalp_draw(a, i));
}

SWALP_KERNEL(swalp_nvfp4, swalp_nvfp4_params, swalp_nvfp4_element)
