//! The `int` format: its parameters and how a tensor splits into blocks
//! sharing a scale.

use swalp_core::{
    block::{resolve_dim, Block},
    spec::invalid,
    Backend, Error, ParamInfo, Result, SpecError,
};

/// `bits`: bits per integer, sign included; `i · m` must be exact in
/// `f64` for an `f32` maximum `m`.
pub const BITS: ParamInfo = ParamInfo::int(
    "bits",
    2,
    24,
    "bits per integer, sign included: integers -(2^(bits-1)-1)..=2^(bits-1)-1",
);

/// `channel_dim`: which elements share a scale.
pub const CHANNEL_DIM: ParamInfo = ParamInfo::other(
    "channel_dim",
    "integer or string",
    "\"tensor\" | a dimension in -64..=63 (negative counts from the last)",
    "one scale max|x|/(2^(bits-1)-1) for the whole tensor, or one per slice along this dimension",
)
.default_str("tensor");

/// Dimensions `channel_dim` may name, counting from the first (`0..`) or
/// the last (`-1`, `-2`, ...).
const DIM_RANGE: std::ops::RangeInclusive<i64> = -64..=63;

/// Which elements share a scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One scale for the whole tensor (`channel_dim = "tensor"`).
    Tensor,
    /// One scale per slice along this dimension; negative counts from the
    /// last (`channel_dim = 0`, `-1`).
    Channel(i64),
}

impl Scope {
    /// Parses a `channel_dim` value: `"tensor"` or an integer.
    pub fn from_toml(value: &toml::Value) -> Result<Self, SpecError> {
        match value {
            toml::Value::String(s) if s == "tensor" => Ok(Scope::Tensor),
            toml::Value::Integer(d) if DIM_RANGE.contains(d) => Ok(Scope::Channel(*d)),
            other => Err(invalid(
                CHANNEL_DIM.name,
                other,
                "\"tensor\" or a dimension, an integer in -64..=63",
            )),
        }
    }

    /// The spec value.
    pub fn to_toml(self) -> toml::Value {
        match self {
            Scope::Tensor => "tensor".into(),
            Scope::Channel(d) => d.into(),
        }
    }
}

/// Symmetric `bits`-bit integers times a scale `m / Q` shared by a block,
/// `m` the block's largest finite magnitude and `Q = 2^(bits-1) - 1`. See
/// the [crate documentation](crate).
///
/// ```
/// use swalp_core::block::Block;
/// use swalp_intscale::{IntScale, Scope};
/// let int8 = IntScale::new(8, Scope::Channel(0)).unwrap();
/// assert_eq!(int8.levels(), 127.0);
/// assert_eq!(int8.block(&[4, 3, 2]).unwrap(), Block::Dims(vec![0])); // 4 channels
/// assert!(int8.block(&[]).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntScale {
    bits: u32,
    scope: Scope,
}

impl IntScale {
    /// The format; fails for `bits` outside 2..=24.
    pub fn new(bits: u32, scope: Scope) -> Result<Self, SpecError> {
        BITS.check(&i64::from(bits).into())?;
        if let Scope::Channel(d) = scope {
            Scope::from_toml(&d.into())?;
        }
        Ok(IntScale { bits, scope })
    }

    /// Bits per integer, sign included.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Which elements share a scale.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// `Q = 2^(bits-1) - 1`, the largest integer.
    pub fn levels(&self) -> f64 {
        f64::from((1u32 << (self.bits - 1)) - 1)
    }

    /// Which elements of a tensor of `shape` share a scale: the whole
    /// tensor, or each slice along the channel dimension; fails when the
    /// tensor has no such dimension.
    pub fn block(&self, shape: &[usize]) -> Result<Block> {
        match self.scope {
            Scope::Tensor => Ok(Block::Tensor),
            Scope::Channel(d) => match resolve_dim(d, shape) {
                Ok(dim) => Ok(Block::Dims(vec![dim])),
                Err(_) => Err(Error::Unsupported {
                    format: "int".into(),
                    backend: Backend::Auto,
                    reason: format!(
                        "channel_dim = {d} but the tensor has {} dimension{}",
                        shape.len(),
                        if shape.len() == 1 { "" } else { "s" }
                    ),
                }),
            },
        }
    }
}
