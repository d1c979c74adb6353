// swalp.cuh: what every swalp CUDA kernel shares, written once for two
// compilers. NVRTC compiles it (with a format's source) into the GPU kernels
// of swalp's CUDA backend; a C++ compiler compiles the same text into the
// "CPU twin" that the test suite runs against the native Rust kernels, bit
// for bit, on machines without a GPU.
//
// It holds: the kernel arguments (`swalp_args`, mirrored by Rust's
// `swalp_core::cuda::KernelArgs`), the counter-based random draws of
// `swalp_core::rng`, the rounding rule of `swalp_core::rounding::rule` in
// f64, the block layout lookup of `swalp_core::block::BlockLayout`, the
// block-maximum keys, the grid element of fixed point and block floating
// point, the block-maxima kernel and the macro that turns an element
// function into a kernel (and its CPU twin).
//
// Floating-point contract: every operation here is one IEEE operation in
// the precision written; NVRTC runs with --fmad=false and the twin with
// -ffp-contract=off, so no multiply-add is fused (fusing would change
// results and break the equality with the native kernels).
#ifndef SWALP_CUH
#define SWALP_CUH

#if defined(__CUDACC_RTC__) || defined(__CUDACC__)
#define SWALP_DEVICE 1
#define SWALP_FN static __device__ __forceinline__
#else
#define SWALP_DEVICE 0
#define SWALP_FN static inline
#include <math.h>
#include <string.h>
#endif

typedef unsigned int swalp_u32;
typedef unsigned long long swalp_u64;
typedef int swalp_i32;

// The most separating terms a block layout may have (a tensor of rank 8
// with every dimension chunked); layouts with more use the tensor backend.
#define SWALP_MAX_TERMS 8

// Rounding modes, numbered as `swalp_core::cuda::KernelArgs::mode`.
#define SWALP_NEAREST_EVEN 0
#define SWALP_NEAREST_AWAY 1
#define SWALP_NEAREST_UP 2
#define SWALP_TOWARD_ZERO 3
#define SWALP_DOWN 4
#define SWALP_UP 5
#define SWALP_STOCHASTIC 6

// Block-maximum keys (`swalp_core::cuda::MaxKey`).
#define SWALP_KEY_NAN_ZERO 0
#define SWALP_KEY_NAN_INF 1
#define SWALP_KEY_FINITE 2

// One kernel call: input, output, rounding, random stream, block maxima
// and block layout. Laid out as Rust's `KernelArgs` (repr(C)).
typedef struct {
  const float* x;
  float* out;
  swalp_u64 n;
  // Per-block maximum keys (block kernels), and the tensor's (formats with
  // a tensor-level scale); null otherwise.
  const swalp_u32* maxima;
  const swalp_u32* tensor_max;
  // The stream's keys (`swalp_core::rng::RandomStream`).
  swalp_u32 key0;
  swalp_u32 key1;
  swalp_i32 mode;
  // Stochastic rounding with b bits: `sr_shift = 32 - b`, `sr_one = 2^b`.
  swalp_i32 sr_shift;
  double sr_one;
  // `BlockLayout`'s terms: block_of(i) = sum (i / stride % size) / chunk * weight.
  swalp_i32 nterms;
  swalp_i32 reserved;
  swalp_u64 stride[SWALP_MAX_TERMS];
  swalp_u64 size[SWALP_MAX_TERMS];
  swalp_u64 chunk[SWALP_MAX_TERMS];
  swalp_u64 weight[SWALP_MAX_TERMS];
} swalp_args;

// ---- bits ----

SWALP_FN swalp_u32 swalp_f32_bits(float v) {
#if SWALP_DEVICE
  return __float_as_uint(v);
#else
  swalp_u32 b;
  memcpy(&b, &v, sizeof b);
  return b;
#endif
}

SWALP_FN float swalp_f32_from_bits(swalp_u32 b) {
#if SWALP_DEVICE
  return __uint_as_float(b);
#else
  float v;
  memcpy(&v, &b, sizeof v);
  return v;
#endif
}

SWALP_FN swalp_u64 swalp_f64_bits(double v) {
#if SWALP_DEVICE
  return (swalp_u64)__double_as_longlong(v);
#else
  swalp_u64 b;
  memcpy(&b, &v, sizeof b);
  return b;
#endif
}

SWALP_FN double swalp_f64_from_bits(swalp_u64 b) {
#if SWALP_DEVICE
  return __longlong_as_double((long long)b);
#else
  double v;
  memcpy(&v, &b, sizeof v);
  return v;
#endif
}

// f32's default quiet NaN (Rust's f32::NAN): GPU arithmetic would give
// another pattern, so kernels that make NaN write this one.
SWALP_FN float swalp_nan32(void) { return swalp_f32_from_bits(0x7fc00000u); }

SWALP_FN int swalp_isnan32(float v) { return (swalp_f32_bits(v) & 0x7fffffffu) > 0x7f800000u; }
SWALP_FN int swalp_isfinite32(float v) { return (swalp_f32_bits(v) & 0x7fffffffu) < 0x7f800000u; }
SWALP_FN int swalp_isinf64(double v) {
  return (swalp_f64_bits(v) & 0x7fffffffffffffffull) == 0x7ff0000000000000ull;
}
SWALP_FN int swalp_isnan64(double v) {
  return (swalp_f64_bits(v) & 0x7fffffffffffffffull) > 0x7ff0000000000000ull;
}
SWALP_FN int swalp_isfinite64(double v) {
  return (swalp_f64_bits(v) & 0x7fffffffffffffffull) < 0x7ff0000000000000ull;
}

// 2^k exactly, k in -1022..=1023 (`kernel::native::pow2`).
SWALP_FN double swalp_pow2(swalp_i32 k) { return swalp_f64_from_bits((swalp_u64)(k + 1023) << 52); }

// floor(log2 |x|) of a normal f64 (`kernel::native::exponent`).
SWALP_FN swalp_i32 swalp_exponent(double x) {
  return (swalp_i32)((swalp_f64_bits(x) >> 52) & 0x7ff) - 1023;
}

SWALP_FN swalp_i32 swalp_clampi(swalp_i32 v, swalp_i32 lo, swalp_i32 hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// Rust's f32::clamp: NaN stays NaN.
SWALP_FN float swalp_clampf(float v, float lo, float hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// ---- random draws (swalp_core::rng) ----

SWALP_FN swalp_u32 swalp_mix32(swalp_u32 x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// The uniform 32-bit draw of element i (`RandomStream::bits`); 0 for a
// deterministic rounding.
SWALP_FN swalp_u32 swalp_draw(const swalp_args* a, swalp_u64 i) {
  if (a->mode != SWALP_STOCHASTIC) return 0;
  swalp_u32 key1 = a->key1 ^ ((swalp_u32)(i >> 32) * 0x9E3779B9u);
  return swalp_mix32(swalp_mix32((swalp_u32)i ^ a->key0) ^ key1);
}

// ---- the rounding rule (swalp_core::rounding::rule) ----

// floor + 1 where `up`, else floor, with v's sign on a zero result.
SWALP_FN double swalp_floor_or_up(double v, double fl, int up) {
  double r = up ? fl + 1.0 : fl;
  return copysign(fabs(r), v);
}

// v rounded to an integer with the call's mode; `draw` is read by
// stochastic rounding only.
SWALP_FN double swalp_round(const swalp_args* a, double v, swalp_u32 draw) {
  switch (a->mode) {
    case SWALP_NEAREST_EVEN:
      return rint(v);
    case SWALP_TOWARD_ZERO:
      return trunc(v);
    case SWALP_DOWN:
      return floor(v);
    case SWALP_UP:
      return ceil(v);
    default:
      break;
  }
  double fl = floor(v);
  double frac = v - fl;
  int up;
  if (a->mode == SWALP_NEAREST_AWAY) {
    up = frac > 0.5 || (frac == 0.5 && v > 0.0);
  } else if (a->mode == SWALP_NEAREST_UP) {
    up = frac >= 0.5;
  } else {
    // floor(frac * 2^b) + draw >= 2^b, exactly (see rule.rs).
    double threshold = a->sr_one - (double)(draw >> a->sr_shift);
    up = frac * a->sr_one >= threshold;
  }
  return swalp_floor_or_up(v, fl, up);
}

// ---- grids ----

// round(v * scale) clamped to [lo, hi] (NaN stays NaN), times step, as f32
// (`kernel::native::grid_element`).
SWALP_FN float swalp_grid_element(const swalp_args* a, float v, swalp_u32 draw, double scale,
                                  double step, double lo, double hi) {
  double n = swalp_round(a, (double)v * scale, draw);
  n = n < lo ? lo : n;
  n = n > hi ? hi : n;
  return (float)(n * step);
}

// ---- blocks ----

// The block of element i (`BlockLayout::block_of`). Tensors of fewer than
// 2^32 elements (all in practice) take 32-bit divisions, several times
// cheaper than 64-bit ones on a GPU: every stride, size, weight and block
// index is then below 2^32, and a chunk beyond that divides to 0 as the
// clamped one does.
SWALP_FN swalp_u64 swalp_block_of(const swalp_args* a, swalp_u64 i) {
  if (a->n <= 0xffffffffull) {
    swalp_u32 j = (swalp_u32)i, b = 0;
    for (int t = 0; t < a->nterms; t++) {
      swalp_u32 chunk = a->chunk[t] > 0xffffffffull ? 0xffffffffu : (swalp_u32)a->chunk[t];
      b += (j / (swalp_u32)a->stride[t] % (swalp_u32)a->size[t]) / chunk * (swalp_u32)a->weight[t];
    }
    return b;
  }
  swalp_u64 b = 0;
  for (int t = 0; t < a->nterms; t++) {
    b += (i / a->stride[t] % a->size[t]) / a->chunk[t] * a->weight[t];
  }
  return b;
}

// The block-maximum key of v (`kernel::native::abs_bits_*`).
SWALP_FN swalp_u32 swalp_key(int key, float v) {
  swalp_u32 m = swalp_f32_bits(v) & 0x7fffffffu;
  if (key == SWALP_KEY_NAN_ZERO) return m > 0x7f800000u ? 0u : m;
  if (key == SWALP_KEY_FINITE) return m >= 0x7f800000u ? 0u : m;
  return m < 0x7f800000u ? m : 0x7f800000u;
}

// The largest key of element i's block.
SWALP_FN swalp_u32 swalp_block_max(const swalp_args* a, swalp_u64 i) {
  return a->maxima[swalp_block_of(a, i)];
}

// ---- kernels ----

#if SWALP_DEVICE

// Every block's largest key into `maxima` (zeroed by the caller): one
// atomic maximum per warp where the warp's 32 elements share a block (the
// common case: runs of 16 or more), one per element otherwise.
extern "C" __global__ void swalp_block_maxima(swalp_args a, swalp_i32 key, swalp_u32* maxima) {
  swalp_u64 step = (swalp_u64)gridDim.x * blockDim.x;
  for (swalp_u64 i = (swalp_u64)blockIdx.x * blockDim.x + threadIdx.x; i < a.n; i += step) {
    swalp_u32 k = swalp_key(key, a.x[i]);
    swalp_u64 b = swalp_block_of(&a, i);
    unsigned mask = __activemask();
    if (mask == 0xffffffffu) {
      swalp_u64 b0 = __shfl_sync(mask, b, 0);
      if (__all_sync(mask, b == b0)) {
        swalp_u32 m = __reduce_max_sync(mask, k);
        if ((threadIdx.x & 31) == 0) atomicMax(&maxima[b], m);
        continue;
      }
    }
    atomicMax(&maxima[b], k);
  }
}

// `entry`, a kernel writing out[i] = element(&args, &params, i) for every i.
#define SWALP_KERNEL(entry, Params, element)                                                 \
  extern "C" __global__ void entry(swalp_args a, Params p) {                                \
    swalp_u64 step = (swalp_u64)gridDim.x * blockDim.x;                                     \
    for (swalp_u64 i = (swalp_u64)blockIdx.x * blockDim.x + threadIdx.x; i < a.n; i += step) \
      a.out[i] = element(&a, &p, i);                                                        \
  }

#else

// The CPU twin of `swalp_block_maxima`, defined once (in swalp-core).
#ifdef SWALP_TWIN_CORE
extern "C" void swalp_twin_block_maxima(const swalp_args* a, swalp_i32 key, swalp_u32* maxima) {
  for (swalp_u64 i = 0; i < a->n; i++) {
    swalp_u32 k = swalp_key(key, a->x[i]);
    swalp_u64 b = swalp_block_of(a, i);
    if (k > maxima[b]) maxima[b] = k;
  }
}

// Element i's block, for the test that both paths equal BlockLayout's.
extern "C" swalp_u64 swalp_twin_block_of(const swalp_args* a, swalp_u64 i) {
  return swalp_block_of(a, i);
}

// Element i's draw, for the test that it equals RandomStream::bits.
extern "C" swalp_u32 swalp_twin_draw(const swalp_args* a, swalp_u64 i) { return swalp_draw(a, i); }
#endif

// The CPU twin of `entry`: the same element function in a loop.
#define SWALP_KERNEL(entry, Params, element)                                    \
  extern "C" void swalp_twin_##entry(const swalp_args* a, const void* params) { \
    const Params* p = (const Params*)params;                                  \
    for (swalp_u64 i = 0; i < a->n; i++) a->out[i] = element(a, p, i);       \
  }

#endif

#endif  // SWALP_CUH
