// Floating point and the float presets (`kernels::native::float`).
#include "swalp_float.cuh"

SWALP_FN float swalp_float_kernel_element(const swalp_args* a, const swalp_float_params* p,
                                          swalp_u64 i) {
  return swalp_float_element(a, p, a->x[i], swalp_draw(a, i));
}

SWALP_KERNEL(swalp_float, swalp_float_params, swalp_float_kernel_element)
