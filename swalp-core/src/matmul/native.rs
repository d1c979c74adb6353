//! The native CPU implementation of [`Accumulation::matmul`]: rows of the
//! output in blocks across libtorch's threads, the `K` loop in order inside
//! each block, every rounding through the formats' [`ValueRounding`] on the
//! `f64` values the tensor implementation rounds. It draws the same streams
//! in the same order, so the two agree bit for bit.

use tch::{Kind, Tensor};

use super::Accumulation;
use crate::backend::Backend;
use crate::error::Result;
use crate::format::ValueRounding;
use crate::kernel::native::parallel_items;
use crate::quantizer::Quantizer;
use crate::rng::{QuantRng, RandomStream};

/// Output rows computed together: each row of `b` is read once per block
/// while it is in cache.
const ROWS: usize = 8;

/// Products below this many multiply-adds run on the calling thread.
const PARALLEL_WORK: usize = 1 << 16;

/// One role's rounding: the format's value rounding and the quantizer's
/// scale (`Q(x·s)/s`, as [`Quantizer::quantize`] computes it).
struct Step {
    rounder: Box<dyn ValueRounding>,
    scale: Option<f64>,
    stochastic: bool,
}

impl Step {
    /// `None` when the format has no value rounding, or the quantizer
    /// asks for the tensor backend (then the whole product takes the
    /// tensor implementation).
    fn of(q: &Quantizer) -> Option<Step> {
        if q.backend() == Backend::Tensor {
            return None;
        }
        Some(Step {
            rounder: q.format().value_rounding(q.rounding())?,
            scale: q.scale(),
            stochastic: q.rounding().is_stochastic(),
        })
    }

    /// The stream this rounding takes from `rng` (none when deterministic),
    /// as a call of [`Quantizer::quantize`] would take it.
    fn take(&self, rng: &mut QuantRng) -> Option<RandomStream> {
        self.stochastic.then(|| rng.next_stream())
    }

    #[inline]
    fn round(&self, values: &mut [f64], random: Option<RandomStream>, first: u64) {
        match self.scale {
            None => self.rounder.round_values(values, random, first),
            Some(s) => {
                values.iter_mut().for_each(|v| *v *= s);
                self.rounder.round_values(values, random, first);
                values.iter_mut().for_each(|v| *v /= s);
            }
        }
    }
}

/// The roles' roundings, when every format has a value rounding.
pub(super) struct Kernel {
    product: Option<Step>,
    accumulator: Step,
    chunk: Option<usize>,
    /// `None`: `f32`.
    chunk_accumulator: Option<Step>,
}

/// The streams of one product, in the order the tensor implementation
/// takes them: per `k`, the product's, then the addition's (the running
/// sum's, or the chunk sum's); per chunk, `Q_acc(t)`'s and the running
/// sum's.
struct Streams {
    product: Vec<Option<RandomStream>>,
    add: Vec<Option<RandomStream>>,
    partial: Vec<Option<RandomStream>>,
    sum: Vec<Option<RandomStream>>,
}

impl Kernel {
    pub(super) fn new(acc: &Accumulation) -> Option<Kernel> {
        let chunk_accumulator = match &acc.chunk_accumulator {
            Some(q) => Some(Step::of(q)?),
            None => None,
        };
        let product = match &acc.product {
            Some(q) => Some(Step::of(q)?),
            None => None,
        };
        Some(Kernel {
            product,
            accumulator: Step::of(&acc.accumulator)?,
            chunk: acc.chunk,
            chunk_accumulator,
        })
    }

    fn streams(&self, k: usize, rng: &mut QuantRng) -> Streams {
        let mut s = Streams {
            product: Vec::with_capacity(k),
            add: Vec::with_capacity(k),
            partial: Vec::new(),
            sum: Vec::new(),
        };
        for i in 0..k {
            s.product
                .push(self.product.as_ref().and_then(|p| p.take(rng)));
            match self.chunk {
                None => s.add.push(self.accumulator.take(rng)),
                Some(c) => {
                    let chunk = self.chunk_accumulator.as_ref();
                    s.add.push(chunk.and_then(|q| q.take(rng)));
                    if (i + 1) % c == 0 || i + 1 == k {
                        s.partial.push(self.accumulator.take(rng));
                        s.sum.push(self.accumulator.take(rng));
                    }
                }
            }
        }
        s
    }

    /// `a · b` for contiguous `f64` operands `[m, k]` and `[k, n]`.
    pub(super) fn matmul(&self, a: &Tensor, b: &Tensor, rng: &mut QuantRng) -> Result<Tensor> {
        let (m, k) = (a.size()[0] as usize, a.size()[1] as usize);
        let n = b.size()[1] as usize;
        let a: Vec<f64> = Vec::try_from(&a.f_contiguous()?.f_view([-1])?)?;
        let b: Vec<f64> = Vec::try_from(&b.f_contiguous()?.f_view([-1])?)?;
        let streams = self.streams(k, rng);
        let mut out = vec![0f64; m * n];
        let out_ptr = SyncPtr(out.as_mut_ptr());
        let blocks = m.div_ceil(ROWS);
        parallel_items(blocks, m * n * k >= PARALLEL_WORK, |first, last| {
            for block in first..last {
                let rows = block * ROWS..(m.min((block + 1) * ROWS));
                // SAFETY: each block index is handed to exactly one call and
                // owns the rows `rows` of `out`, which outlives the loop.
                let y = unsafe {
                    std::slice::from_raw_parts_mut(
                        out_ptr.get().add(rows.start * n),
                        rows.len() * n,
                    )
                };
                self.rows_simd(&a, &b, rows.start, (k, n), &streams, y);
            }
        });
        Ok(Tensor::from_slice(&out)
            .f_view([m as i64, n as i64])?
            .f_to_kind(Kind::Double)?)
    }

    /// [`rows`](Self::rows) compiled for the best vector extension the CPU
    /// has (the loops between roundings vectorise; every variant computes
    /// the same IEEE operations).
    fn rows_simd(
        &self,
        a: &[f64],
        b: &[f64],
        row0: usize,
        kn: (usize, usize),
        streams: &Streams,
        y: &mut [f64],
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F.
                return unsafe { self.rows_avx512(a, b, row0, kn, streams, y) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2.
                return unsafe { self.rows_avx2(a, b, row0, kn, streams, y) };
            }
        }
        self.rows(a, b, row0, kn, streams, y)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn rows_avx512(
        &self,
        a: &[f64],
        b: &[f64],
        row0: usize,
        kn: (usize, usize),
        streams: &Streams,
        y: &mut [f64],
    ) {
        self.rows(a, b, row0, kn, streams, y)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn rows_avx2(
        &self,
        a: &[f64],
        b: &[f64],
        row0: usize,
        kn: (usize, usize),
        streams: &Streams,
        y: &mut [f64],
    ) {
        self.rows(a, b, row0, kn, streams, y)
    }

    /// The output rows starting at `row0` (as many as `y` holds).
    #[inline(always)]
    fn rows(
        &self,
        a: &[f64],
        b: &[f64],
        row0: usize,
        (k, n): (usize, usize),
        streams: &Streams,
        y: &mut [f64],
    ) {
        let rows = y.len() / n;
        let mut chunk_sum = vec![0f64; y.len()];
        let mut p = vec![0f64; n];
        let mut chunk_index = 0;
        y.fill(0.0);
        for i in 0..k {
            let b_row = &b[i * n..(i + 1) * n];
            let last_of_chunk = self.chunk.is_some_and(|c| (i + 1) % c == 0 || i + 1 == k);
            for r in 0..rows {
                let first = ((row0 + r) * n) as u64;
                let a_ri = a[(row0 + r) * k + i];
                p.iter_mut().zip(b_row).for_each(|(p, b)| *p = a_ri * b);
                if let Some(q) = &self.product {
                    q.round(&mut p, streams.product[i], first);
                }
                let s = &mut y[r * n..(r + 1) * n];
                match self.chunk {
                    None => {
                        s.iter_mut().zip(&p).for_each(|(s, p)| *s += p);
                        self.accumulator.round(s, streams.add[i], first);
                    }
                    Some(_) => {
                        let t = &mut chunk_sum[r * n..(r + 1) * n];
                        match &self.chunk_accumulator {
                            Some(q) => {
                                t.iter_mut().zip(&p).for_each(|(t, p)| *t += p);
                                q.round(t, streams.add[i], first)
                            }
                            // f32 chunk sums: add and round in one pass.
                            None => t
                                .iter_mut()
                                .zip(&p)
                                .for_each(|(t, p)| *t = f64::from((*t + p) as f32)),
                        }
                        if last_of_chunk {
                            self.accumulator
                                .round(t, streams.partial[chunk_index], first);
                            s.iter_mut().zip(t.iter()).for_each(|(s, t)| *s += t);
                            self.accumulator.round(s, streams.sum[chunk_index], first);
                            t.fill(0.0);
                        }
                    }
                }
            }
            if last_of_chunk {
                chunk_index += 1;
            }
        }
    }
}

#[derive(Clone, Copy)]
struct SyncPtr(*mut f64);
// SAFETY: used only to hand disjoint row blocks to parallel workers.
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}
impl SyncPtr {
    fn get(self) -> *mut f64 {
        self.0
    }
}
