//! The `int` kernels, one module per backend. Both compute the block maxima,
//! then `round(x·Q/m)` and `i·m/Q` in `f64` with the same operations in the
//! same order, deciding through [`swalp_core::Rounding`], so they agree bit
//! for bit.

pub mod native;
pub mod tensor;

use swalp_core::{tch::Tensor, NumberFormat, RandomStream, Result, Rounding};

use crate::{IntScale, BITS, CHANNEL_DIM};

/// The format bound to its kernels; the format's module knows nothing of
/// them.
impl NumberFormat for IntScale {
    fn name(&self) -> &str {
        "int"
    }

    fn params(&self) -> toml::Table {
        let mut t = toml::Table::new();
        BITS.put(&mut t, i64::from(self.bits()));
        CHANNEL_DIM.put(&mut t, self.scope().to_toml());
        t
    }

    /// The integer's bits; the scale (one `f32` per block) is not counted,
    /// since the block size depends on the tensor.
    fn bits_per_value(&self) -> f64 {
        self.bits().into()
    }

    fn quantize_tensor(
        &self,
        x: &Tensor,
        rounding: Rounding,
        random: Option<RandomStream>,
    ) -> Result<Tensor> {
        tensor::int(self, x, rounding, random)
    }

    fn has_native(&self) -> bool {
        true
    }

    fn quantize_native(
        &self,
        x: &[f32],
        shape: &[usize],
        out: &mut [f32],
        rounding: Rounding,
        random: Option<RandomStream>,
    ) -> Result<()> {
        native::int(self, x, shape, out, rounding, random)
    }
}
