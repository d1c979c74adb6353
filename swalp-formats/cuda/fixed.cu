// Fixed point (`kernels::native::fixed`): round on the 2^k grid, clamp the
// integer.
#include "swalp.cuh"

typedef struct {
  // 2^-k and 2^k.
  double scale;
  double step;
  // The integer range (+-infinity when the format does not clamp).
  double lo;
  double hi;
} swalp_fixed_params;

SWALP_FN float swalp_fixed_element(const swalp_args* a, const swalp_fixed_params* p,
                                   swalp_u64 i) {
  return swalp_grid_element(a, a->x[i], swalp_draw(a, i), p->scale, p->step, p->lo, p->hi);
}

SWALP_KERNEL(swalp_fixed, swalp_fixed_params, swalp_fixed_element)
