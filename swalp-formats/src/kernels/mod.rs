//! The formats bound to their kernels: each format's module holds its
//! math and parameters and knows nothing of how it is computed; this module
//! implements [`NumberFormat`] for it with the native (Rust loops over `f32`,
//! [`native`]), tensor (libtorch ops on any device, [`tensor`]) and CUDA
//! (CUDA C compiled at run time, [`cuda`]) kernels,
//! as candle keeps its backends apart from the ops they implement. Kernels
//! depend on the formats, never the reverse.

pub mod cuda;
pub mod native;
pub mod tensor;

use swalp_core::{
    cuda::CudaKernel, format::ValueRounding, tch::Tensor, NumberFormat, RandomStream, Result,
    Rounding,
};

use crate::{BlockFloat, FixedPoint, FloatFormat, Fp8Scaled, MxFormat, Nvfp4Format};

/// Implements [`NumberFormat`] for a format of this crate: its name, its
/// `spec_params`/`value_bits` (the format's math) and its two kernels,
/// which every format here has with the same signatures.
macro_rules! bind_kernels {
    ($format:ty, $name:literal, $kernel:ident) => {
        bind_kernels!($format, $name, $kernel, {});
    };
    ($format:ty, $name:literal, $kernel:ident, { $($extra:item)* }) => {
        impl NumberFormat for $format {
            $($extra)*

            fn name(&self) -> &str {
                $name
            }

            fn params(&self) -> toml::Table {
                self.spec_params()
            }

            fn bits_per_value(&self) -> f64 {
                self.value_bits()
            }

            fn quantize_tensor(
                &self,
                x: &Tensor,
                rounding: Rounding,
                random: Option<RandomStream>,
            ) -> Result<Tensor> {
                tensor::$kernel(self, x, rounding, random)
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
                native::$kernel(self, x, shape, out, rounding, random)
            }

            fn cuda_kernel(&self, shape: &[usize], rounding: Rounding) -> Result<Option<CudaKernel>> {
                cuda::$kernel(self, shape, rounding)
            }
        }
    };
}

bind_kernels!(FixedPoint, "fixed", fixed, {
    fn per_element(&self) -> bool {
        true
    }

    fn value_rounding(&self, rounding: Rounding) -> Option<Box<dyn ValueRounding>> {
        Some(native::fixed_values(self, rounding))
    }
});
bind_kernels!(FloatFormat, "float", float, {
    fn per_element(&self) -> bool {
        true
    }

    fn value_rounding(&self, rounding: Rounding) -> Option<Box<dyn ValueRounding>> {
        Some(native::float_values(self, rounding))
    }
});
bind_kernels!(BlockFloat, "bfp", block);
bind_kernels!(MxFormat, "mx", mx);
bind_kernels!(Nvfp4Format, "nvfp4", nvfp4, {
    fn keeps(&self, shape: &[usize]) -> bool {
        self.keeps_shape(shape)
    }
});
bind_kernels!(Fp8Scaled, "fp8_scaled", fp8_scaled);
