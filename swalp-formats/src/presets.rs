//! Standard floating-point formats by name: `bfloat16`, `fp16`, `fp8_e4m3`
//! (OCP FP8 E4M3: no infinities, one NaN code, max 448) and `fp8_e5m2`.
//!
//! Each is a [`FloatFormat`] under its own registry name; the spec may
//! override `subnormals` and `overflow`. With `nearest-even` and default
//! options, `bfloat16` and `fp16` equal tch's casts (`to_kind(BFloat16)` /
//! `to_kind(Half)` and back) bit for bit.

use swalp_core::{
    cuda::CudaKernel, format::ValueRounding, tch::Tensor, FormatFactory, NumberFormat, ParamInfo,
    Params, RandomStream, Result, Rounding, SpecError,
};

use crate::float::{FloatFormat, Specials, OVERFLOW_NAMES, SUBNORMALS};

/// A named standard float.
///
/// ```
/// use swalp_core::{NumberFormat, Quantizer};
/// use swalp_formats as _;
/// let q: Quantizer = r#"{ format = "fp8_e4m3" }"#.parse().unwrap();
/// assert_eq!(q.format().bits_per_value(), 8.0);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preset {
    name: &'static str,
    float: FloatFormat,
}

impl Preset {
    /// The underlying float format.
    ///
    /// ```
    /// use swalp_formats::{presets::Preset, FloatFormat};
    /// // Presets reach callers as `dyn NumberFormat`; code holding one can
    /// // read the float behind it:
    /// fn mantissa_bits(preset: &Preset) -> u32 {
    ///     let float: &FloatFormat = preset.float();
    ///     float.man_bits()
    /// }
    /// # let _ = mantissa_bits;
    /// ```
    pub fn float(&self) -> &FloatFormat {
        &self.float
    }
}

impl NumberFormat for Preset {
    fn name(&self) -> &str {
        self.name
    }

    fn params(&self) -> toml::Table {
        let mut t = self.float.option_params();
        t.remove("specials");
        t
    }

    fn bits_per_value(&self) -> f64 {
        self.float.bits_per_value()
    }

    fn quantize_tensor(
        &self,
        x: &Tensor,
        rounding: Rounding,
        random: Option<RandomStream>,
    ) -> Result<Tensor> {
        self.float.quantize_tensor(x, rounding, random)
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
        self.float.quantize_native(x, shape, out, rounding, random)
    }

    fn cuda_kernel(&self, shape: &[usize], rounding: Rounding) -> Result<Option<CudaKernel>> {
        self.float.cuda_kernel(shape, rounding)
    }

    fn per_element(&self) -> bool {
        true
    }

    fn value_rounding(&self, rounding: Rounding) -> Option<Box<dyn ValueRounding>> {
        self.float.value_rounding(rounding)
    }
}

/// A preset's `overflow`: the `float` choices, with the default of its
/// encoding.
const PRESET_OVERFLOW: ParamInfo = ParamInfo::choice(
    "overflow",
    &OVERFLOW_NAMES,
    "what values beyond the largest finite become",
);

const IEEE_PARAMS: [ParamInfo; 2] = [SUBNORMALS, PRESET_OVERFLOW.default_str("infinity")];
const FN_PARAMS: [ParamInfo; 2] = [SUBNORMALS, PRESET_OVERFLOW.default_str("saturate")];

fn build_preset(
    p: &mut Params<'_>,
    name: &'static str,
    exp: u32,
    man: u32,
    specials: Specials,
) -> Result<Box<dyn NumberFormat>, SpecError> {
    let overflow_param = match specials {
        Specials::Ieee => &IEEE_PARAMS[1],
        Specials::None | Specials::Fn => &FN_PARAMS[1],
    };
    let (subnormals, _, overflow) = FloatFormat::read_options(p, Some(specials), overflow_param)?;
    let float = FloatFormat::new(exp, man, subnormals, specials, overflow)?;
    Ok(Box::new(Preset { name, float }))
}

macro_rules! preset {
    ($fn_name:ident, $name:literal, $exp:literal, $man:literal, $specials:expr, $params:ident, $summary:literal) => {
        fn $fn_name(p: &mut Params<'_>) -> Result<Box<dyn NumberFormat>, SpecError> {
            build_preset(p, $name, $exp, $man, $specials)
        }
        swalp_core::register_format!(FormatFactory {
            name: $name,
            summary: $summary,
            params: &$params,
            build: $fn_name,
        });
    };
}

preset!(
    build_bfloat16,
    "bfloat16",
    8,
    7,
    Specials::Ieee,
    IEEE_PARAMS,
    "bfloat16: 8 exponent, 7 mantissa bits, IEEE specials"
);
preset!(
    build_fp16,
    "fp16",
    5,
    10,
    Specials::Ieee,
    IEEE_PARAMS,
    "IEEE binary16: 5 exponent, 10 mantissa bits"
);
preset!(
    build_fp8_e4m3,
    "fp8_e4m3",
    4,
    3,
    Specials::Fn,
    FN_PARAMS,
    "OCP FP8 E4M3: no Inf, one NaN code, max 448; saturates by default"
);
preset!(
    build_fp8_e5m2,
    "fp8_e5m2",
    5,
    2,
    Specials::Ieee,
    IEEE_PARAMS,
    "OCP FP8 E5M2: IEEE-style specials, max 57344"
);
