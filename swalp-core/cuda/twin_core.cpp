// The CPU twin of swalp.cuh's block-maxima kernel (see that file): the
// test suite runs format kernels on the CPU from the same source.
#define SWALP_TWIN_CORE
#include "swalp.cuh"
