//! The posit kernels, one module per backend. Both look up each value's
//! binade in the same table ([`Posit::binade`](crate::Posit::binade)),
//! compute in `f64` with exactly the same operations and decide through
//! [`swalp_core::Rounding`], so they agree bit for bit.

pub mod native;
pub mod tensor;

use swalp_core::{tch::Tensor, NumberFormat, RandomStream, Result, Rounding};

use crate::{Posit, ES, N};

/// The format bound to its kernels; the format's module knows nothing of
/// them.
impl NumberFormat for Posit {
    fn name(&self) -> &str {
        "posit"
    }

    fn params(&self) -> toml::Table {
        let mut t = toml::Table::new();
        N.put(&mut t, i64::from(self.n()));
        ES.put(&mut t, i64::from(self.es()));
        t
    }

    fn bits_per_value(&self) -> f64 {
        self.n().into()
    }

    fn quantize_tensor(
        &self,
        x: &Tensor,
        rounding: Rounding,
        random: Option<RandomStream>,
    ) -> Result<Tensor> {
        tensor::posit(self, x, rounding, random)
    }

    fn has_native(&self) -> bool {
        true
    }

    /// A posit rounds each value on its own, so it can round running sums.
    fn per_element(&self) -> bool {
        true
    }

    fn quantize_native(
        &self,
        x: &[f32],
        _shape: &[usize],
        out: &mut [f32],
        rounding: Rounding,
        random: Option<RandomStream>,
    ) -> Result<()> {
        native::posit(self, x, out, rounding, random);
        Ok(())
    }
}
