// OCP MX (`kernels::native::mx`): each block's E8M0 scale from its largest
// magnitude by the format's scale rule (a NaN or infinity makes the block
// NaN), then each element on the scaled element grid, clamped to the
// element's max normal.
#include "swalp.cuh"

#define SWALP_MX_FLOOR 0
#define SWALP_MX_CEIL 1
#define SWALP_MX_EVEN 2
#define SWALP_MX_RCEIL 3
// No scale: the block is not finite.
#define SWALP_MX_NONE (-100000)

typedef struct {
  // The element's largest value, and as f32 (the rceil rule's divisor).
  double max;
  float max32;
  swalp_i32 emin;
  swalp_i32 emax;
  swalp_i32 man;
  swalp_i32 rule;
  swalp_i32 scale_min;
  swalp_i32 scale_max;
  swalp_i32 reserved;
} swalp_mx_params;

// `MxFormat::shared_exponent`.
SWALP_FN swalp_i32 swalp_mx_scale(const swalp_mx_params* p, double max_abs) {
  if (!swalp_isfinite64(max_abs)) return SWALP_MX_NONE;
  swalp_i32 e = max_abs == 0.0 ? -1000 : swalp_exponent(max_abs);
  e = e > -1000 ? e : -1000;
  swalp_i32 s;
  if (p->rule == SWALP_MX_FLOOR) {
    s = e - p->emax;
  } else if (p->rule == SWALP_MX_CEIL) {
    s = e + (max_abs > swalp_pow2(e) ? 1 : 0) - p->emax;
  } else if (p->rule == SWALP_MX_EVEN) {
    double steps = floor(max_abs / swalp_pow2(e - p->man) + 0.5);
    swalp_i32 e2 = e + (steps >= swalp_pow2(p->man + 1) ? 1 : 0);
    if (e2 >= 128 && max_abs <= 3.4028234663852886e38) return SWALP_MX_NONE;
    s = e2 - p->emax;
  } else {
    float d = (float)max_abs / p->max32;
    float l = (float)log2((double)d);
    float c = ceilf(l);
    c = c < -1000.0f ? -1000.0f : (c > 1000.0f ? 1000.0f : c);
    s = (swalp_i32)c;
  }
  return swalp_clampi(s, p->scale_min, p->scale_max);
}

SWALP_FN float swalp_mx_element(const swalp_args* a, const swalp_mx_params* p, swalp_u64 i) {
  swalp_i32 s = swalp_mx_scale(p, (double)swalp_f32_from_bits(swalp_block_max(a, i)));
  if (s == SWALP_MX_NONE) return swalp_nan32();
  double limit = p->max * swalp_pow2(s);
  double x = (double)a->x[i];
  swalp_i32 k = swalp_clampi(swalp_exponent(x) - s, p->emin, p->emax) - p->man + s;
  double y = swalp_round(a, x * swalp_pow2(-k), swalp_draw(a, i)) * swalp_pow2(k);
  if (fabs(y) > limit) y = copysign(limit, y);
  return (float)y;
}

SWALP_KERNEL(swalp_mx, swalp_mx_params, swalp_mx_element)
