// Block floating point (`kernels::native::block`): each block's step from
// its largest magnitude (NaN takes no part), then the elements on it.
#include "swalp.cuh"

typedef struct {
  // The shared exponent's range (`BlockFloat::exponent_range`).
  swalp_i32 exp_lo;
  swalp_i32 exp_hi;
  // The word length.
  swalp_i32 wl;
  swalp_i32 reserved;
  // The element integers' range (`BlockFloat::int_range`).
  double int_lo;
  double int_hi;
} swalp_bfp_params;

SWALP_FN float swalp_bfp_element(const swalp_args* a, const swalp_bfp_params* p, swalp_u64 i) {
  double max_abs = (double)swalp_f32_from_bits(swalp_block_max(a, i));
  // `BlockFloat::shared_exponent`, then `step_exponent`.
  swalp_i32 shared;
  if (max_abs == 0.0) {
    shared = p->exp_lo;
  } else if (swalp_isinf64(max_abs)) {
    shared = p->exp_hi;
  } else {
    shared = swalp_clampi(swalp_exponent(max_abs), p->exp_lo, p->exp_hi);
  }
  swalp_i32 k = shared - (p->wl - 2);
  // `BlockFloat::int_range_at`: symmetric where -2^(wl-1) * 2^k passes f32.
  double lo = k + p->wl - 1 >= 128 ? -p->int_hi : p->int_lo;
  return swalp_grid_element(a, a->x[i], swalp_draw(a, i), swalp_pow2(-k), swalp_pow2(k), lo,
                            p->int_hi);
}

SWALP_KERNEL(swalp_bfp, swalp_bfp_params, swalp_bfp_element)
