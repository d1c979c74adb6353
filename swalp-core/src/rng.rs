//! Seeded, counter-based randomness for stochastic rounding.
//!
//! A [`QuantRng`] hands out one [`RandomStream`] per quantization call. A
//! stream draws the random bits of element `i` as a pure function of
//! `(seed, stream number, i)`: no generator state is shared between threads or
//! devices, so results do not depend on the thread count, and the native CPU
//! kernels and the tensor kernels (on any device) draw identical bits.
//!
//! The mixing function is a 32-bit integer hash (the "lowbias32" constants by
//! C. Wellons), applied twice with two keys. Every intermediate product fits in
//! 63 bits, so the same arithmetic runs as `Int64` tensor ops without overflow.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, TchError, Tensor};

const MASK32: i64 = 0xFFFF_FFFF;
const MUL1: u32 = 0x7feb_352d;
const MUL2: u32 = 0x846c_a68b;
const GOLDEN: u32 = 0x9E37_79B9;

#[inline(always)]
fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(MUL1);
    x ^= x >> 15;
    x = x.wrapping_mul(MUL2);
    x ^= x >> 16;
    x
}

fn mix32_tensor(x: Tensor) -> Result<Tensor, TchError> {
    // x holds values in [0, 2^32) as Int64; products stay below 2^63.
    let x = x.f_bitwise_xor_tensor(&x.f_bitwise_right_shift_tensor_scalar(16)?)?;
    let x = x.f_mul_scalar(i64::from(MUL1))?.f_bitwise_and(MASK32)?;
    let x = x.f_bitwise_xor_tensor(&x.f_bitwise_right_shift_tensor_scalar(15)?)?;
    let x = x.f_mul_scalar(i64::from(MUL2))?.f_bitwise_and(MASK32)?;
    x.f_bitwise_xor_tensor(&x.f_bitwise_right_shift_tensor_scalar(16)?)
}

/// SplitMix64's output function (Steele, Lea and Flood, 2014): a bijective
/// 64-bit mix of `z + γ`, with `γ` the golden-ratio increment.
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The random numbers of one quantization call: element `i` gets
/// [`bits(i)`](Self::bits), whatever backend or thread computes it.
///
/// ```
/// use swalp_core::QuantRng;
/// let mut rng = QuantRng::new(7);
/// let a = rng.next_stream();
/// let b = rng.next_stream();
/// assert_eq!(a.bits(3), QuantRng::new(7).next_stream().bits(3));
/// assert_ne!(a.bits(3), b.bits(3));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomStream {
    key0: u32,
    key1: u32,
}

impl RandomStream {
    fn new(seed: u64, stream: u64) -> Self {
        let k = splitmix64(seed ^ splitmix64(stream));
        RandomStream {
            key0: k as u32,
            key1: (k >> 32) as u32,
        }
    }

    /// The stream's two keys, for kernels that compute the draws themselves
    /// (the CUDA kernels' `swalp_draw`).
    pub fn keys(&self) -> (u32, u32) {
        (self.key0, self.key1)
    }

    /// The uniform 32-bit draw for element `index`.
    #[inline]
    pub fn bits(&self, index: u64) -> u32 {
        self.segment(index).bits(index as u32)
    }

    /// The draws of the `2^32` elements whose indices share `index`'s high
    /// 32 bits, for loops that step the low 32 bits only (native kernels
    /// split their work at multiples of `2^k` that never straddle such a
    /// segment): `segment(i).bits(i as u32) == bits(i)`.
    ///
    /// ```
    /// use swalp_core::QuantRng;
    /// let s = QuantRng::new(5).next_stream();
    /// let i = (3u64 << 32) + 17;
    /// assert_eq!(s.segment(i).bits(i as u32), s.bits(i));
    /// ```
    #[inline]
    pub fn segment(&self, index: u64) -> StreamSegment {
        let hi = (index >> 32) as u32;
        StreamSegment {
            key0: self.key0,
            key1: self.key1 ^ hi.wrapping_mul(GOLDEN),
        }
    }

    /// The draws for elements `0..numel` laid out in `shape` (row-major), as an
    /// `Int64` tensor on `device`; equal to [`bits`](Self::bits) elementwise.
    pub fn bits_tensor(&self, shape: &[i64], device: Device) -> Result<Tensor, TchError> {
        let numel: i64 = shape.iter().product();
        let index = Tensor::f_arange(numel, (Kind::Int64, device))?;
        let lo = index.f_bitwise_and(MASK32)?;
        let mut inner = mix32_tensor(lo.f_bitwise_xor(i64::from(self.key0))?)?
            .f_bitwise_xor(i64::from(self.key1))?;
        if numel > MASK32 {
            let hi = index.f_bitwise_right_shift_tensor_scalar(32)?;
            let salt = hi.f_mul_scalar(i64::from(GOLDEN))?.f_bitwise_and(MASK32)?;
            inner = inner.f_bitwise_xor_tensor(&salt)?;
        }
        mix32_tensor(inner)?.f_view(shape)
    }
}

/// The draws of one `2^32`-element segment of a [`RandomStream`]; see
/// [`RandomStream::segment`]. The default segment (zero keys) stands in
/// where no draws are used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamSegment {
    key0: u32,
    key1: u32,
}

impl StreamSegment {
    /// The draw of the element whose low 32 index bits are `lo`.
    #[inline(always)]
    pub fn bits(&self, lo: u32) -> u32 {
        mix32(mix32(lo ^ self.key0) ^ self.key1)
    }
}

/// The seeded source of random streams for stochastic rounding.
///
/// Each stochastic quantization takes the next stream, so repeated calls on
/// the same tensor draw fresh numbers while a run stays reproducible: the same
/// seed gives the same outputs, call after call. The state is two integers and
/// serialises for checkpoints.
///
/// ```
/// use swalp_core::QuantRng;
/// let mut rng = QuantRng::new(42);
/// rng.next_stream();
/// let saved = rng.clone();
/// assert_eq!(rng.next_stream(), saved.clone().next_stream());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuantRng {
    seed: u64,
    next: u64,
}

impl QuantRng {
    /// A generator whose first stream depends only on `seed`.
    pub fn new(seed: u64) -> Self {
        QuantRng { seed, next: 0 }
    }

    /// The seed this generator was created with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// How many streams have been handed out.
    pub fn streams_used(&self) -> u64 {
        self.next
    }

    /// Hands out the next stream.
    pub fn next_stream(&mut self) -> RandomStream {
        let stream = RandomStream::new(self.seed, self.next);
        self.next += 1;
        stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_draws_equal_scalar_draws() {
        let s = QuantRng::new(3).next_stream();
        let t = s.bits_tensor(&[5, 7], Device::Cpu).unwrap();
        let v: Vec<i64> = Vec::try_from(t.flatten(0, -1)).unwrap();
        for (i, x) in v.iter().enumerate() {
            assert_eq!(*x, i64::from(s.bits(i as u64)), "element {i}");
        }
    }

    #[test]
    fn draws_look_uniform() {
        // Mean of 2^16 uniform draws in [0, 1): standard error ~ 0.0011.
        let s = QuantRng::new(11).next_stream();
        let n = 1u64 << 16;
        let mean = (0..n)
            .map(|i| f64::from(s.bits(i)) / 2f64.powi(32))
            .sum::<f64>()
            / n as f64;
        assert!((mean - 0.5).abs() < 0.006, "mean {mean}");
        // Each of 16 buckets of the top 4 bits gets about n/16 draws.
        let mut buckets = [0u64; 16];
        for i in 0..n {
            buckets[(s.bits(i) >> 28) as usize] += 1;
        }
        let expected = n as f64 / 16.0;
        let chi2: f64 = buckets
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 40.0, "chi-square {chi2} over 15 degrees of freedom");
    }

    #[test]
    fn seeds_and_streams_differ() {
        let a = QuantRng::new(1).next_stream();
        let b = QuantRng::new(2).next_stream();
        let same = (0..1000).filter(|&i| a.bits(i) == b.bits(i)).count();
        assert!(same < 3);
    }
}
