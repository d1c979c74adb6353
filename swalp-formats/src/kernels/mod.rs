//! The formats bound to their kernels: each format's module holds its
//! math and parameters and knows nothing of how it is computed; this module
//! implements [`NumberFormat`] for it with the native (Rust loops over `f32`,
//! [`native`]) and tensor (libtorch ops on any device, [`tensor`]) kernels,
//! as candle keeps its backends apart from the ops they implement. Kernels
//! depend on the formats, never the reverse.

pub mod native;
pub mod tensor;

use swalp_core::{tch::Tensor, NumberFormat, RandomStream, Result, Rounding};

use crate::{BlockFloat, FixedPoint, FloatFormat, MxFormat};

impl NumberFormat for FixedPoint {
    fn params(&self) -> toml::Table {
        self.spec_params()
    }

    fn bits_per_value(&self) -> f64 {
        self.value_bits()
    }

    fn name(&self) -> &str {
        "fixed"
    }

    fn quantize_tensor(
        &self,
        x: &Tensor,
        rounding: Rounding,
        random: Option<RandomStream>,
    ) -> Result<Tensor> {
        tensor::fixed(self, x, rounding, random)
    }

    fn has_native(&self) -> bool {
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
        native::fixed(self, x, out, rounding, random);
        Ok(())
    }
}

impl NumberFormat for FloatFormat {
    fn params(&self) -> toml::Table {
        self.spec_params()
    }

    fn bits_per_value(&self) -> f64 {
        self.value_bits()
    }

    fn name(&self) -> &str {
        "float"
    }

    fn quantize_tensor(
        &self,
        x: &Tensor,
        rounding: Rounding,
        random: Option<RandomStream>,
    ) -> Result<Tensor> {
        tensor::float(self, x, rounding, random)
    }

    fn has_native(&self) -> bool {
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
        native::float(self, x, out, rounding, random);
        Ok(())
    }
}

impl NumberFormat for BlockFloat {
    fn params(&self) -> toml::Table {
        self.spec_params()
    }

    fn bits_per_value(&self) -> f64 {
        self.value_bits()
    }

    fn name(&self) -> &str {
        "bfp"
    }

    fn quantize_tensor(
        &self,
        x: &Tensor,
        rounding: Rounding,
        random: Option<RandomStream>,
    ) -> Result<Tensor> {
        tensor::block(self, x, rounding, random)
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
        native::block(self, x, shape, out, rounding, random)
    }
}

impl NumberFormat for MxFormat {
    fn params(&self) -> toml::Table {
        self.spec_params()
    }

    fn bits_per_value(&self) -> f64 {
        self.value_bits()
    }

    fn name(&self) -> &str {
        "mx"
    }

    fn quantize_tensor(
        &self,
        x: &Tensor,
        rounding: Rounding,
        random: Option<RandomStream>,
    ) -> Result<Tensor> {
        tensor::mx(self, x, rounding, random)
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
        native::mx(self, x, shape, out, rounding, random)
    }
}
