//! A model's gradients packed into a few flat buffers for communication.

use tch::{Device, Kind, Tensor};

use super::{DistributedError, ProcessGroup};
use crate::error::Result;
use crate::quantizer::Quantizer;
use crate::rng::QuantRng;

/// Gradients that travel in low precision: each rank's bucket is rounded
/// to `quantizer` before the all-reduce, with draws from `contribution`
/// (a generator of this rank's own), and the summed bucket after it, with
/// draws from `sum` (the same generator on every rank, so that the ranks
/// keep equal gradients). The buckets draw from them in turn.
///
/// The reduction between the two roundings is exact (f32): a model of a
/// reduce-then-broadcast in which the wire and the result are narrow,
/// rather than of a ring that rounds every partial sum.
pub struct Communication<'a> {
    /// The format on the wire.
    pub quantizer: &'a Quantizer,
    /// Draws for this rank's contribution.
    pub contribution: &'a mut QuantRng,
    /// Draws for the sum, the same on every rank.
    pub sum: &'a mut QuantRng,
}

/// The parameters whose gradients share one flat buffer.
struct Bucket {
    flat: Tensor,
    /// Each parameter and where its gradient sits in `flat`.
    members: Vec<(Tensor, i64, i64)>,
}

/// Parameters grouped, in order, into buffers of at most a given size (and
/// one kind and device each), as DistributedDataParallel's buckets: a step
/// copies the gradients in ([`gather`](Self::gather)), reduces the
/// [`buffers`](Self::buffers) and copies the results back
/// ([`scatter`](Self::scatter)). The buffers are made once and reused.
///
/// ```
/// use swalp_core::distributed::GradientBuckets;
/// use swalp_core::tch::{Kind, Tensor};
/// let w = Tensor::ones([3, 2], (Kind::Float, swalp_core::tch::Device::Cpu)).set_requires_grad(true);
/// let b = Tensor::zeros([3], (Kind::Float, swalp_core::tch::Device::Cpu)).set_requires_grad(true);
/// (&w * 2.0).sum(Kind::Float).backward();
/// (&b * 3.0).sum(Kind::Float).backward();
/// let mut buckets = GradientBuckets::new(&[w.shallow_clone(), b.shallow_clone()], 1 << 20).unwrap();
/// assert_eq!(buckets.buffers().len(), 1);
/// buckets.gather().unwrap();
/// let _ = buckets.buffers()[0].g_mul_scalar_(0.5); // what a reduction would change
/// buckets.scatter().unwrap();
/// assert_eq!(w.grad().double_value(&[0, 0]), 1.0);
/// assert_eq!(b.grad().double_value(&[2]), 1.5);
/// ```
pub struct GradientBuckets {
    buckets: Vec<Bucket>,
}

impl GradientBuckets {
    /// DistributedDataParallel's default bucket size, 25 MiB.
    pub const DEFAULT_CAP_BYTES: usize = 25 << 20;

    /// Buckets for `params`, in order, each at most `cap_bytes` (a larger
    /// parameter gets a bucket of its own).
    pub fn new(params: &[Tensor], cap_bytes: usize) -> Result<GradientBuckets, DistributedError> {
        let mut groups: Vec<(Kind, Device, Vec<Tensor>, usize)> = Vec::new();
        for p in params {
            let kind = p.kind();
            let bytes = p.numel() * kind.elt_size_in_bytes();
            match groups.last_mut() {
                Some((k, d, members, size))
                    if *k == kind && *d == p.device() && *size + bytes <= cap_bytes =>
                {
                    members.push(p.shallow_clone());
                    *size += bytes;
                }
                _ => groups.push((kind, p.device(), vec![p.shallow_clone()], bytes)),
            }
        }
        let buckets = groups
            .into_iter()
            .map(|(kind, device, params, _)| {
                let mut offset = 0;
                let members = params
                    .into_iter()
                    .map(|p| {
                        let n = p.numel() as i64;
                        let member = (p, offset, n);
                        offset += n;
                        member
                    })
                    .collect();
                let flat = Tensor::f_zeros([offset], (kind, device))?;
                Ok(Bucket { flat, members })
            })
            .collect::<Result<_, DistributedError>>()?;
        Ok(GradientBuckets { buckets })
    }

    /// The flat buffers, for the collectives.
    pub fn buffers(&self) -> Vec<Tensor> {
        self.buckets
            .iter()
            .map(|b| b.flat.shallow_clone())
            .collect()
    }

    /// Copies every parameter's gradient into its place (zeros for a
    /// parameter without one).
    pub fn gather(&mut self) -> Result<(), DistributedError> {
        let _guard = tch::no_grad_guard();
        for bucket in &mut self.buckets {
            for (p, offset, n) in &bucket.members {
                let mut slot = bucket.flat.narrow(0, *offset, *n);
                let grad = p.grad();
                let done = if grad.defined() {
                    slot.f_copy_(&grad.reshape([-1]))
                } else {
                    slot.f_zero_().map(|_| ())
                };
                done?;
            }
        }
        Ok(())
    }

    /// Sums the gradients across `group`'s ranks, in low precision when
    /// `communication` says so, and `extra` tensors (summed exactly) in the
    /// same round of collectives.
    pub fn all_reduce_sum(
        &mut self,
        group: &ProcessGroup,
        extra: &[Tensor],
        communication: Option<Communication<'_>>,
    ) -> Result<()> {
        self.gather()?;
        let buffers = self.buffers();
        let mut communication = communication;
        if let Some(c) = communication.as_mut() {
            round_in_place(&buffers, c.quantizer, c.contribution)?;
        }
        let mut tensors = buffers
            .iter()
            .map(Tensor::shallow_clone)
            .collect::<Vec<_>>();
        tensors.extend(extra.iter().map(Tensor::shallow_clone));
        group.all_reduce_sum(&tensors, "all-reduce of the gradients")?;
        if let Some(c) = communication.as_mut() {
            round_in_place(&buffers, c.quantizer, c.sum)?;
        }
        self.scatter()?;
        Ok(())
    }

    /// Copies the buffers back into the gradients (of the parameters that
    /// have one).
    pub fn scatter(&mut self) -> Result<(), DistributedError> {
        let _guard = tch::no_grad_guard();
        for bucket in &self.buckets {
            for (p, offset, n) in &bucket.members {
                let mut grad = p.grad();
                if grad.defined() {
                    let slot = bucket.flat.narrow(0, *offset, *n).view_as(&grad);
                    grad.f_copy_(&slot)?;
                }
            }
        }
        Ok(())
    }
}

/// Rounds each buffer to `quantizer` in place, one stream of `rng` each.
fn round_in_place(buffers: &[Tensor], quantizer: &Quantizer, rng: &mut QuantRng) -> Result<()> {
    let _guard = tch::no_grad_guard();
    for b in buffers {
        let rounded = quantizer.quantize(b, rng)?;
        b.shallow_clone().f_copy_(&rounded)?;
    }
    Ok(())
}
