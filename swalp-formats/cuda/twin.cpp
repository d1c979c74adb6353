// The CPU twins of this crate's CUDA kernels: every format source compiled
// as C++ (see swalp-core's cuda/swalp.cuh), for the tests that check them
// against the native kernels bit for bit.
#include "fixed.cu"
#include "float.cu"
#include "bfp.cu"
#include "mx.cu"
#include "nvfp4.cu"
#include "fp8_scaled.cu"
