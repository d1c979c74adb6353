//! The random Hadamard transform (RHT) of a quantization point: the
//! quantizer key `rht = 16`.
//!
//! RHT multiplies groups of `n` consecutive elements along one dimension by
//! a fixed random orthogonal matrix before rounding. An outlier is spread
//! over its whole group, so the values a block-scaled format (NVFP4, MX,
//! BFP) sees are closer to Gaussian and the block's scale wastes fewer
//! levels on one element. NVIDIA's NVFP4 training recipe ("Pretraining Large
//! Language Models with NVFP4", 2025) applies a 16 × 16 RHT to both operands
//! of the weight-gradient GEMM.
//!
//! # What is simulated
//!
//! On hardware both operands of a GEMM `A · Bᵀ` are rotated along the
//! reduction dimension with the same matrix `H` and quantized, and the GEMM
//! runs in the rotated basis: `Q(A·Hᵀ) · Q(B·Hᵀ)ᵀ`. Because `H` is
//! orthogonal, that equals `(Q(A·Hᵀ)·H) · (Q(B·Hᵀ)·H)ᵀ`, so a quantization
//! point here rotates, quantizes and rotates back: it returns values in the
//! original basis, and only the quantization error differs from rounding
//! without RHT. Giving the same `rht` (size, seed, and the reduction
//! dimension as `dim`) to the points of both operands of a GEMM simulates
//! RHT applied to that GEMM, up to the `f32` rounding of the rotated-back
//! values; a point whose tensor feeds no GEMM along `dim` simply gets a
//! rounding error with another distribution.
//!
//! # The matrix
//!
//! `H = n^-1/2 · S_n · diag(s)`, with `S_n` the Sylvester–Hadamard matrix
//! (`S_n[i][j] = (-1)^popcount(i & j)`) and the signs `s_j = ±1` the top
//! bits of the first `n` outputs of SplitMix64 seeded with `seed` (output `j`
//! is the SplitMix64 mix of `seed + (j + 1)·γ`): a pure function of
//! `(seed, j)`, independent of torch's global generator and of the
//! stochastic-rounding streams. For `n` a power of 4 the entries
//! `±2^-log4(n)` are exact, so `H·Hᵀ = I` exactly in `f64`; for other
//! powers of two `n^-1/2` is irrational and `H·Hᵀ = I` holds to within an
//! `f64` rounding.
//!
//! ```
//! use swalp_core::{rht::Rht, tch::Tensor};
//! let rht = Rht::new(4, -1, 0)?;
//! let x = Tensor::from_slice(&[8.0f32, 0.0, 0.0, 0.0]).reshape([1, 4]);
//! let y = rht.forward(&x)?; // the outlier spread evenly: ±8 / 2
//! let y = Vec::<f64>::try_from(&y.reshape([-1]))?;
//! assert!(y.iter().all(|v| v.abs() == 4.0));
//! let back = Vec::<f64>::try_from(&rht.inverse(&rht.forward(&x)?)?.reshape([-1]))?;
//! assert_eq!(back, [8.0, 0.0, 0.0, 0.0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use tch::{Kind, TchError, Tensor};

use crate::backend::Backend;
use crate::block::resolve_dim;
use crate::error::{Error, SpecError};
use crate::rng::splitmix64;
pub use crate::spec::RHT_SYNTAX;
use crate::spec::{int_in, invalid, reject_unknown_keys};

/// The group sizes allowed: powers of two up to 256 (16 is NVIDIA's).
const SIZES: std::ops::RangeInclusive<usize> = 2..=256;

/// A random Hadamard transform: groups of [`size`](Self::size) elements
/// along [`dim`](Self::dim) multiplied by a seeded random-sign Hadamard
/// matrix (see the [module docs](self)).
///
/// Spec syntax: `rht = 16` (size 16 along the last dimension, seed 0) or
/// `rht = { size = 16, dim = 1, seed = 7 }` (each key optional: size 16,
/// dim -1, seed 0). `dim = 1` rotates convolution tensors (`[N, C, H, W]`
/// activations, `[O, I, kh, kw]` weights) along their channels.
///
/// ```
/// use swalp_core::rht::Rht;
/// let spec: toml::Table = toml::from_str("rht = { size = 16, dim = 1, seed = 7 }")?;
/// let rht = Rht::from_toml("rht", &spec["rht"])?;
/// assert_eq!((rht.size(), rht.dim(), rht.seed()), (16, 1, 7));
/// assert_eq!(rht.to_toml(), spec["rht"]);
/// assert_eq!(Rht::new(16, -1, 0)?.to_toml(), toml::Value::Integer(16));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rht {
    size: usize,
    dim: i64,
    seed: u64,
}

impl Rht {
    /// A transform of groups of `size` (a power of two in `2..=256`) along
    /// `dim` (`-64..=63`, negative counts from the end) with the signs of
    /// `seed` (`0..=i64::MAX`, what a TOML integer holds).
    ///
    /// ```
    /// use swalp_core::rht::Rht;
    /// assert!(Rht::new(16, -1, 0).is_ok());
    /// let err = Rht::new(12, -1, 0).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid value 12 for `rht.size`: expected a power of two in 2..=256");
    /// ```
    pub fn new(size: usize, dim: i64, seed: u64) -> Result<Rht, SpecError> {
        // As TOML values, for the spec checks and their messages; a number
        // beyond i64 (no TOML integer) becomes a string they refuse.
        let int = |v: u64| {
            i64::try_from(v)
                .map_or_else(|_| toml::Value::String(v.to_string()), toml::Value::Integer)
        };
        check_size("rht.size", &int(size as u64))?;
        int_in("rht.dim", &toml::Value::Integer(dim), -64..=63)?;
        int_in("rht.seed", &int(seed), 0..=i64::MAX)?;
        Ok(Rht { size, dim, seed })
    }

    /// Parses the spec value of the key `key` (named in errors): a group
    /// size, or a table of `size`, `dim` and `seed`.
    ///
    /// ```
    /// use swalp_core::{rht::Rht, SpecError};
    /// let rht = Rht::from_toml("rht", &toml::Value::Integer(16))?;
    /// assert_eq!((rht.size(), rht.dim(), rht.seed()), (16, -1, 0));
    /// let spec: toml::Table = toml::from_str("rht = { size = 16, dimm = 1 }")?;
    /// let err = Rht::from_toml("rht", &spec["rht"]).unwrap_err();
    /// assert!(err.to_string().contains("did you mean `dim`"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_toml(key: &str, value: &toml::Value) -> Result<Rht, SpecError> {
        const KEYS: [&str; 3] = ["size", "dim", "seed"];
        let table = match value {
            toml::Value::Integer(_) => {
                let size = check_size(key, value)?;
                return Ok(Rht {
                    size,
                    dim: -1,
                    seed: 0,
                });
            }
            toml::Value::Table(t) => t,
            _ => return Err(invalid(key, value, RHT_SYNTAX)),
        };
        reject_unknown_keys(key, table, &KEYS)?;
        let size = match table.get("size") {
            None => 16,
            Some(v) => check_size(&format!("{key}.size"), v)?,
        };
        let dim = match table.get("dim") {
            None => -1,
            Some(v) => int_in(&format!("{key}.dim"), v, -64..=63)?,
        };
        let seed = match table.get("seed") {
            None => 0,
            Some(v) => int_in(&format!("{key}.seed"), v, 0..=i64::MAX)? as u64,
        };
        Ok(Rht { size, dim, seed })
    }

    /// The spec value, as [`from_toml`](Self::from_toml) reads it: the
    /// bare size when `dim` and `seed` are the defaults, else the table.
    ///
    /// ```
    /// use swalp_core::rht::Rht;
    /// assert_eq!(Rht::new(16, 1, 7)?.to_toml().to_string(), "{ size = 16, dim = 1, seed = 7 }");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_toml(&self) -> toml::Value {
        let size = toml::Value::Integer(self.size as i64);
        if self.dim == -1 && self.seed == 0 {
            return size;
        }
        let mut t = toml::Table::new();
        t.insert("size".into(), size);
        t.insert("dim".into(), self.dim.into());
        // `new` and `from_toml` keep the seed within i64.
        t.insert("seed".into(), (self.seed as i64).into());
        toml::Value::Table(t)
    }

    /// Elements per group: the matrix is `size × size`.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The dimension the groups run along (negative counts from the end).
    pub fn dim(&self) -> i64 {
        self.dim
    }

    /// The seed of the signs.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The signs `s_j = ±1` of the matrix's columns (see the module docs).
    ///
    /// ```
    /// use swalp_core::rht::Rht;
    /// let signs = Rht::new(16, -1, 0)?.signs();
    /// assert!(signs.iter().all(|s| s.abs() == 1.0));
    /// assert_ne!(signs, Rht::new(16, -1, 1)?.signs());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn signs(&self) -> Vec<f64> {
        const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..self.size as u64)
            .map(|j| {
                // `splitmix64` adds γ itself: this is output j of the
                // SplitMix64 generator seeded with `seed`.
                let bits = splitmix64(self.seed.wrapping_add(j.wrapping_mul(GAMMA)));
                if bits >> 63 == 0 {
                    1.0
                } else {
                    -1.0
                }
            })
            .collect()
    }

    /// The matrix `H`, row-major `size × size`: entry `(i, j)` is
    /// `(-1)^popcount(i & j) · s_j / √size`.
    ///
    /// ```
    /// use swalp_core::rht::Rht;
    /// let h = Rht::new(4, -1, 0)?.matrix();
    /// assert!(h.iter().all(|v| v.abs() == 0.5));
    /// // Orthogonal: H·Hᵀ = I, exactly for sizes that are powers of 4.
    /// let dot = |i: usize, k: usize| (0..4).map(|j| h[4 * i + j] * h[4 * k + j]).sum::<f64>();
    /// assert_eq!((dot(0, 0), dot(0, 1)), (1.0, 0.0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn matrix(&self) -> Vec<f64> {
        let n = self.size;
        let scale = 1.0 / (n as f64).sqrt();
        let signs = self.signs();
        let mut h = Vec::with_capacity(n * n);
        for i in 0..n {
            for (j, s) in signs.iter().enumerate() {
                let sylvester = if (i & j).count_ones() % 2 == 0 {
                    1.0
                } else {
                    -1.0
                };
                h.push(sylvester * s * scale);
            }
        }
        h
    }

    /// Rotates `x`: each group `g` of [`size`](Self::size) elements along
    /// [`dim`](Self::dim) becomes `H·g`. Computed and returned in `f64`
    /// (`Double`), detached, on `x`'s device, with `x`'s shape.
    ///
    /// ```
    /// use swalp_core::{rht::{Rht, RhtError}, tch::Tensor};
    /// let rht = Rht::new(16, -1, 0)?;
    /// let err = rht.forward(&Tensor::zeros([3, 20], (tch::Kind::Float, tch::Device::Cpu)));
    /// assert!(matches!(err, Err(RhtError::Unaligned { len: 20, .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, RhtError> {
        // Rows times Hᵀ: each group, a row, becomes (H·g)ᵀ.
        self.apply(x, true)
    }

    /// Rotates back: each group `y` becomes `Hᵀ·y`, undoing
    /// [`forward`](Self::forward). In `f64`, like it.
    ///
    /// ```
    /// use swalp_core::{rht::Rht, tch::Tensor};
    /// let rht = Rht::new(16, 0, 3)?;
    /// let x = Tensor::arange(32, (tch::Kind::Float, tch::Device::Cpu)).reshape([16, 2]) / 64.0;
    /// let back = rht.inverse(&rht.forward(&x)?)?;
    /// assert!(back.equal(&x.to_kind(tch::Kind::Double)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn inverse(&self, y: &Tensor) -> Result<Tensor, RhtError> {
        self.apply(y, false)
    }

    /// The dimension `dim` of a tensor of `shape`, non-negative, checked to
    /// hold whole groups.
    ///
    /// ```
    /// use swalp_core::rht::Rht;
    /// let rht = Rht::new(16, 1, 0)?;
    /// assert_eq!(rht.check(&[8, 32, 3, 3]).ok(), Some(1));
    /// let err = rht.check(&[3, 20]).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "rht groups of 16 along dimension 1 need its length to be a multiple of 16; \
    ///      a tensor of shape [3, 20] has 20"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check(&self, shape: &[usize]) -> Result<usize, RhtError> {
        let dim = resolve_dim(self.dim, shape).map_err(|_| RhtError::MissingDim {
            shape: shape.to_vec(),
            dim: self.dim,
            size: self.size,
        })?;
        if shape[dim] % self.size != 0 {
            return Err(RhtError::Unaligned {
                shape: shape.to_vec(),
                dim: self.dim,
                size: self.size,
                len: shape[dim],
            });
        }
        Ok(dim)
    }

    /// Multiplies the groups of `x` by `Hᵀ` (`forward`) or `H`, in `f64`.
    fn apply(&self, x: &Tensor, forward: bool) -> Result<Tensor, RhtError> {
        let shape = x.size();
        let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        let dim = self.check(&dims)? as i64;
        let n = self.size as i64;
        let h = Tensor::f_from_slice(&self.matrix())?
            .f_reshape([n, n])?
            .f_to(x.device())?;
        let h = if forward { h.f_transpose(0, 1)? } else { h };
        // The groups as rows: `dim` last, split into [len / n, n].
        let moved = x
            .f_detach()?
            .f_to_kind(Kind::Double)?
            .f_movedim([dim], [-1])?;
        let moved_shape = moved.size();
        let mut grouped = moved_shape.clone();
        let len = grouped.pop().unwrap_or(0);
        grouped.extend([len / n, n]);
        moved
            .f_reshape(&grouped)?
            .f_matmul(&h)?
            .f_reshape(&moved_shape)?
            .f_movedim([-1], [dim])
            .map_err(RhtError::from)
    }
}

/// A group size: a power of two in [`SIZES`].
fn check_size(key: &str, value: &toml::Value) -> Result<usize, SpecError> {
    match value.as_integer().map(usize::try_from) {
        Some(Ok(n)) if n.is_power_of_two() && SIZES.contains(&n) => Ok(n),
        _ => Err(invalid(
            key,
            value,
            &format!("a power of two in {}..={}", SIZES.start(), SIZES.end()),
        )),
    }
}

/// Why a tensor could not be transformed.
#[derive(Debug)]
pub enum RhtError {
    /// The tensor has no dimension `dim`.
    MissingDim {
        /// The tensor's shape.
        shape: Vec<usize>,
        /// The dimension asked for, as given.
        dim: i64,
        /// The group size.
        size: usize,
    },
    /// The length along `dim` is not a multiple of the group size.
    Unaligned {
        /// The tensor's shape.
        shape: Vec<usize>,
        /// The dimension asked for, as given.
        dim: i64,
        /// The group size.
        size: usize,
        /// The length along `dim`.
        len: usize,
    },
    /// libtorch failed.
    Torch(TchError),
}

impl RhtError {
    /// The [`Error`] a quantizer of the format `format` on `backend`
    /// reports: a tensor of the wrong shape is an
    /// [`Error::Unsupported`] (a usage error).
    ///
    /// ```
    /// use swalp_core::{rht::Rht, Backend};
    /// let err = Rht::new(16, -1, 0)?.check(&[3, 20]).unwrap_err();
    /// assert!(err.into_error("fp8_e4m3", Backend::Auto).is_usage());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_error(self, format: &str, backend: Backend) -> Error {
        match self {
            RhtError::Torch(e) => Error::Torch(e),
            shape => Error::Unsupported {
                format: format.into(),
                backend,
                reason: shape.to_string(),
            },
        }
    }
}

impl fmt::Display for RhtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RhtError::MissingDim { shape, dim, size } => write!(
                f,
                "rht groups of {size} along dimension {dim} need that dimension; \
                 a tensor of shape {shape:?} has {} dimensions",
                shape.len()
            ),
            RhtError::Unaligned {
                shape,
                dim,
                size,
                len,
            } => write!(
                f,
                "rht groups of {size} along dimension {dim} need its length to be a \
                 multiple of {size}; a tensor of shape {shape:?} has {len}"
            ),
            RhtError::Torch(e) => {
                let msg = e.to_string();
                write!(f, "libtorch: {}", msg.lines().next().unwrap_or(""))
            }
        }
    }
}

impl std::error::Error for RhtError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RhtError::Torch(e) => Some(e),
            RhtError::MissingDim { .. } | RhtError::Unaligned { .. } => None,
        }
    }
}

impl From<TchError> for RhtError {
    fn from(e: TchError) -> Self {
        RhtError::Torch(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// `H·Hᵀ`, row-major.
    fn gram(h: &[f64], n: usize) -> Vec<f64> {
        let mut g = vec![0.0; n * n];
        for i in 0..n {
            for k in 0..n {
                g[n * i + k] = (0..n).map(|j| h[n * i + j] * h[n * k + j]).sum();
            }
        }
        g
    }

    fn identity(n: usize) -> Vec<f64> {
        (0..n * n)
            .map(|i| if i / n == i % n { 1.0 } else { 0.0 })
            .collect()
    }

    #[test]
    fn the_matrix_is_exactly_orthogonal_for_powers_of_four() {
        for n in [4, 16, 64, 256] {
            for seed in [0, 1, 12345] {
                let h = Rht::new(n, -1, seed).unwrap().matrix();
                assert_eq!(gram(&h, n), identity(n), "n = {n}, seed = {seed}");
            }
        }
    }

    #[test]
    fn the_matrix_is_orthogonal_to_rounding_for_other_powers_of_two() {
        for n in [2, 8, 32, 128] {
            let h = Rht::new(n, -1, 5).unwrap().matrix();
            for (g, i) in gram(&h, n).iter().zip(identity(n)) {
                assert!((g - i).abs() <= 1e-15, "n = {n}: {g} for {i}");
            }
        }
    }

    #[test]
    fn signs_are_a_pure_function_of_the_seed() {
        let m = |seed| Rht::new(16, -1, seed).unwrap().matrix();
        assert_eq!(m(0), m(0));
        assert_eq!(m(7), m(7));
        assert_ne!(m(0), m(1));
        assert_ne!(m(1), m(2));
        // Seed 0 is SplitMix64 seeded with 0: its first outputs are
        // 0xe220a8397b1dcdaf (top bit 1) and 0x6e789e6aa1b965f4 (top bit 0).
        let signs = Rht::new(16, -1, 0).unwrap().signs();
        assert_eq!(signs[..2], [-1.0, 1.0]);
        // The signs are not all equal (a plain Hadamard matrix).
        assert!(signs.contains(&1.0) && signs.contains(&-1.0));
    }

    #[test]
    fn forward_then_inverse_is_exact_on_moderate_data() {
        // Multiples of 1/64 in a small range: every product and sum is
        // exact in f64, so both rotations are.
        let rht = Rht::new(16, -1, 3).unwrap();
        let data: Vec<f32> = (0..96).map(|k| (k * 37 % 101 - 50) as f32 / 64.0).collect();
        let x = Tensor::from_slice(&data).reshape([2, 3, 16]);
        let y = rht.forward(&x).unwrap();
        assert_eq!((y.kind(), y.size()), (Kind::Double, vec![2, 3, 16]));
        let back = rht.inverse(&y).unwrap();
        assert!(back.equal(&x.to_kind(Kind::Double)));
    }

    #[test]
    fn forward_then_inverse_is_within_f64_rounding_otherwise() {
        tch::manual_seed(0);
        for n in [16, 32] {
            let rht = Rht::new(n, 0, 9).unwrap();
            let x = Tensor::randn([n as i64 * 4, 5], (Kind::Float, Device::Cpu)) * 1e3;
            let x64 = x.to_kind(Kind::Double);
            let back = rht.inverse(&rht.forward(&x).unwrap()).unwrap();
            let rel =
                (&back - &x64).abs().max().double_value(&[]) / x64.abs().max().double_value(&[]);
            assert!(rel <= 1e-15, "n = {n}: relative error {rel}");
        }
    }

    #[test]
    fn rotation_keeps_each_groups_norm() {
        let rht = Rht::new(16, 1, 11).unwrap();
        let x = Tensor::from_slice(&(0..2 * 32 * 3).map(|k| k as f32 / 8.0).collect::<Vec<_>>())
            .reshape([2, 32, 3]);
        let y = rht.forward(&x).unwrap();
        // Groups run along dimension 1: [2, 2 groups, 16, 3].
        let norms = |t: &Tensor| {
            t.to_kind(Kind::Double)
                .reshape([2, 2, 16, 3])
                .square()
                .sum_dim_intlist([2i64].as_slice(), false, Kind::Double)
        };
        let (a, b) = (norms(&x), norms(&y));
        let rel = ((&a - &b).abs() / &a).max().double_value(&[]);
        assert!(rel <= 1e-15, "norms differ by {rel}");
        // And the rotation really mixed each group (not the identity).
        assert!(!y.equal(&x.to_kind(Kind::Double)));
    }

    #[test]
    fn dim_selects_the_grouped_dimension() {
        // A group along dimension 0 is a column; rotating the transpose
        // along the last dimension gives the transpose.
        let x = Tensor::randn([16, 3], (Kind::Float, Device::Cpu));
        let by_rows = Rht::new(16, 0, 4).unwrap().forward(&x).unwrap();
        let by_last = Rht::new(16, -1, 4).unwrap().forward(&x.tr()).unwrap();
        assert!(by_rows.equal(&by_last.tr()));
    }

    #[test]
    fn shapes_without_whole_groups_are_refused_by_name() {
        let rht = Rht::new(16, -1, 0).unwrap();
        let err = rht.check(&[3, 20]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rht groups of 16 along dimension -1 need its length to be a multiple of 16; \
             a tensor of shape [3, 20] has 20"
        );
        let err = Rht::new(16, 2, 0).unwrap().check(&[3, 16]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rht groups of 16 along dimension 2 need that dimension; \
             a tensor of shape [3, 16] has 2 dimensions"
        );
        assert!(rht.check(&[]).is_err());
        assert_eq!(rht.check(&[0, 32]).ok(), Some(1));
    }

    #[test]
    fn spec_values_parse_print_and_rebuild() {
        let parse = |text: &str| {
            let t: toml::Table = toml::from_str(&format!("rht = {text}")).unwrap();
            Rht::from_toml("rht", &t["rht"])
        };
        let compact = parse("16").unwrap();
        assert_eq!(compact, Rht::new(16, -1, 0).unwrap());
        assert_eq!(compact.to_toml().to_string(), "16");
        let table = parse("{ size = 64, dim = 1, seed = 7 }").unwrap();
        assert_eq!(table, Rht::new(64, 1, 7).unwrap());
        assert_eq!(Rht::from_toml("rht", &table.to_toml()).unwrap(), table);
        // Absent keys take their defaults; the defaults print compactly.
        assert_eq!(parse("{}").unwrap().to_toml().to_string(), "16");
        assert_eq!(parse("{ seed = 2 }").unwrap(), Rht::new(16, -1, 2).unwrap());
    }

    #[test]
    fn bad_spec_values_say_what_is_allowed() {
        let parse = |text: &str| {
            let t: toml::Table = toml::from_str(&format!("rht = {text}")).unwrap();
            Rht::from_toml("rht", &t["rht"]).unwrap_err()
        };
        assert_eq!(
            parse("12").to_string(),
            "invalid value 12 for `rht`: expected a power of two in 2..=256"
        );
        for bad in ["1", "512", "-16", "0"] {
            assert!(
                matches!(parse(bad), SpecError::InvalidValue { .. }),
                "{bad}"
            );
        }
        let SpecError::UnknownKey {
            key, suggestion, ..
        } = parse("{ size = 16, dimm = 1 }")
        else {
            panic!("dimm accepted");
        };
        assert_eq!((key.as_str(), suggestion.as_deref()), ("dimm", Some("dim")));
        assert!(parse("{ size = 24 }").to_string().contains("`rht.size`"));
        assert!(parse("{ dim = 64 }").to_string().contains("`rht.dim`"));
        assert!(parse("{ seed = -1 }").to_string().contains("`rht.seed`"));
        assert!(parse("\"16\"").to_string().contains(RHT_SYNTAX));
    }
}
