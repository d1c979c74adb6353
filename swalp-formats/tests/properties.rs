//! Property tests for the built-in formats (`fixed`, `float`, `bfp` and the
//! presets) under every rounding mode, through the public spec syntax.
//!
//! Expected values are derived independently of the kernels: neighbours on the
//! grid are computed in `f64` from the step exponent (the format's math
//! accessors give the step and range), nearest/directed results from Rust's
//! own `round_ties_even` / `round` / `floor` / `ceil` / `trunc`, and bfp block
//! maxima with plain loops over the row-major data.

use std::collections::HashMap;

use proptest::prelude::*;
use swalp_conformance::{
    assert_same_slices, p2, quantize, quantizer, same, same_f64, tensor, values, values_f64, Data,
    ALL_ROUNDINGS as ALL, SR2,
};
use swalp_core::tch::{Device, Kind, Tensor};
use swalp_core::{Backend, Error, QuantRng, Quantizer, Rounding};
use swalp_formats::{Block, BlockFloat, FixedPoint, FloatFormat, Overflow, SmallBlock, Specials};

use Rounding::{Down, NearestAway, NearestEven, NearestUp, TowardZero, Up};

const DIRECTED: [Rounding; 3] = [TowardZero, Down, Up];

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/// `floor(log2 |x|)` for a finite nonzero `x` (every `f32` is normal in `f64`).
fn ilog2(x: f64) -> i32 {
    assert!(x.is_finite() && x != 0.0);
    ((x.abs().to_bits() >> 52) & 0x7ff) as i32 - 1023
}

/// Whether `v` lies within the finite range of `f32`.
fn f32_holds(v: f64) -> bool {
    v.abs() <= f64::from(f32::MAX)
}

/// Rounds `s` to an integer with a deterministic mode, using Rust's own
/// rounding functions; a zero result keeps the sign of `s`.
fn ref_round(mode: Rounding, s: f64) -> f64 {
    let r = match mode {
        NearestEven => s.round_ties_even(),
        NearestAway => s.round(),
        NearestUp => {
            if s - s.floor() == 0.5 {
                s.floor() + 1.0
            } else {
                s.round()
            }
        }
        TowardZero => s.trunc(),
        Down => s.floor(),
        Up => s.ceil(),
        Rounding::Stochastic { .. } => panic!("ref_round is for deterministic modes"),
    };
    if r == 0.0 {
        0f64.copysign(s)
    } else {
        r
    }
}

// ---------------------------------------------------------------------------
// Formats under test
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct FixedP {
    wl: u32,
    fl: i32,
    clamp: bool,
    symmetric: bool,
}

#[derive(Clone, Debug)]
struct FloatP {
    exp: u32,
    man: u32,
    subnormals: bool,
    specials: Specials,
    overflow: Overflow,
    preset: Option<&'static str>,
}

#[derive(Clone, Debug)]
struct BfpP {
    wl: u32,
    ebit: u32,
    block: Block,
    small: Option<SmallBlock>,
    symmetric: bool,
}

#[derive(Clone, Debug)]
enum Fmt {
    Fixed(FixedP),
    Float(FloatP),
    Bfp(BfpP),
}

const PRESETS: [(&str, u32, u32, Specials); 4] = [
    ("bfloat16", 8, 7, Specials::Ieee),
    ("fp16", 5, 10, Specials::Ieee),
    ("fp8_e4m3", 4, 3, Specials::Fn),
    ("fp8_e5m2", 5, 2, Specials::Ieee),
];

fn specials_name(s: Specials) -> &'static str {
    match s {
        Specials::Ieee => "ieee",
        Specials::None => "none",
        Specials::Fn => "fn",
    }
}

fn overflow_name(o: Overflow) -> &'static str {
    match o {
        Overflow::Saturate => "saturate",
        Overflow::Infinity => "infinity",
        Overflow::Nan => "nan",
    }
}

fn block_spec(b: &Block) -> String {
    match b {
        Block::Tensor => "\"tensor\"".into(),
        Block::Dims(d) if d.len() == 1 => format!("{{ dim = {} }}", d[0]),
        Block::Dims(d) => format!("{{ dims = {d:?} }}"),
        Block::Chunks { size, dim } => format!("{{ size = {size}, dim = {dim} }}"),
        Block::Tiles { size, dims } => format!("{{ size = {size:?}, dims = {dims:?} }}"),
    }
}

impl FixedP {
    fn math(&self) -> FixedPoint {
        FixedPoint::new(self.wl, self.fl, self.clamp, self.symmetric).unwrap()
    }
}

impl FloatP {
    fn math(&self) -> FloatFormat {
        FloatFormat::new(
            self.exp,
            self.man,
            self.subnormals,
            self.specials,
            self.overflow,
        )
        .unwrap()
    }
}

impl BfpP {
    fn math(&self) -> BlockFloat {
        BlockFloat::new(
            self.wl,
            self.ebit,
            self.block.clone(),
            self.small,
            self.symmetric,
        )
        .unwrap()
    }

    /// The block used for a tensor of `ndim` dimensions (the small-block rule,
    /// restated from the documentation).
    fn block_for(&self, ndim: usize) -> Block {
        let whole_up_to = match self.small {
            None => return self.block.clone(),
            Some(SmallBlock::None) => 4,
            Some(SmallBlock::Fc) => 1,
            Some(SmallBlock::Conv) => 2,
        };
        if ndim <= whole_up_to {
            Block::Tensor
        } else {
            self.block.clone()
        }
    }
}

impl Fmt {
    fn spec(&self) -> String {
        match self {
            Fmt::Fixed(p) => format!(
                "{{ format = \"fixed\", wl = {}, fl = {}, clamp = {}, symmetric = {} }}",
                p.wl, p.fl, p.clamp, p.symmetric
            ),
            Fmt::Float(p) => match p.preset {
                Some(name) => format!(
                    "{{ format = \"{name}\", subnormals = {}, overflow = \"{}\" }}",
                    p.subnormals,
                    overflow_name(p.overflow)
                ),
                None => format!(
                    "{{ format = \"float\", exp = {}, man = {}, subnormals = {}, specials = \"{}\", overflow = \"{}\" }}",
                    p.exp,
                    p.man,
                    p.subnormals,
                    specials_name(p.specials),
                    overflow_name(p.overflow)
                ),
            },
            Fmt::Bfp(p) => {
                let small = match p.small {
                    None => String::new(),
                    Some(SmallBlock::None) => ", small_block = \"none\"".into(),
                    Some(SmallBlock::Fc) => ", small_block = \"fc\"".into(),
                    Some(SmallBlock::Conv) => ", small_block = \"conv\"".into(),
                };
                format!(
                    "{{ format = \"bfp\", wl = {}, ebit = {}, block = {}, symmetric = {}{small} }}",
                    p.wl,
                    p.ebit,
                    block_spec(&p.block),
                    p.symmetric
                )
            }
        }
    }

    fn quantizer(&self, rounding: Rounding, backend: Backend) -> Quantizer {
        quantizer(&self.spec(), rounding, backend)
    }

    /// Binade exponents worth generating inputs in.
    fn window(&self) -> (i32, i32) {
        let (lo, hi) = match self {
            Fmt::Fixed(p) => (-p.fl - 3, p.wl as i32 - p.fl),
            Fmt::Float(p) => {
                let f = p.math();
                (f.emin() - p.man as i32 - 2, f.emax() + 1)
            }
            Fmt::Bfp(p) => {
                let (lo, hi) = p.math().exponent_range();
                (lo - p.wl as i32, hi + 1)
            }
        };
        (lo.clamp(-149, 127), hi.clamp(-149, 127))
    }

    /// The grid and the range around every element of the row-major data `x`.
    fn locals(&self, x: &[f32], shape: &[usize]) -> Vec<Local> {
        match self {
            Fmt::Fixed(p) => {
                let f = p.math();
                let (lo, hi) = if p.clamp {
                    (f.min(), f.max())
                } else {
                    // Unclamped values stay on the grid; keep to where the
                    // neighbours are finite f32 values.
                    (-p2(127), p2(127))
                };
                vec![
                    Local {
                        k: -p.fl,
                        lo,
                        hi,
                        block: 0
                    };
                    x.len()
                ]
            }
            Fmt::Float(p) => {
                let f = p.math();
                let max = f.max_value();
                x.iter()
                    .map(|&v| {
                        let e = if v == 0.0 || !v.is_finite() {
                            f.emin()
                        } else {
                            ilog2(v.into())
                        };
                        Local {
                            k: f.step_exponent(e),
                            lo: -max,
                            hi: max,
                            block: 0,
                        }
                    })
                    .collect()
            }
            Fmt::Bfp(p) => {
                let f = p.math();
                let ids = block_ids(&p.block_for(shape.len()), shape);
                let nblocks = ids.iter().max().map_or(0, |m| m + 1);
                let mut max_abs = vec![0f64; nblocks];
                for (&v, &b) in x.iter().zip(&ids) {
                    if !v.is_nan() {
                        max_abs[b] = max_abs[b].max(f64::from(v).abs());
                    }
                }
                let (ilo, ihi) = f.int_range();
                ids.iter()
                    .map(|&b| {
                        let k = f.step_exponent(f.shared_exponent(max_abs[b]));
                        // The lowest value must be an f32: at E = 127 the
                        // range is symmetric.
                        let lo = if f32_holds(ilo * p2(k)) {
                            ilo * p2(k)
                        } else {
                            -ihi * p2(k)
                        };
                        Local {
                            k,
                            lo,
                            hi: ihi * p2(k),
                            block: b,
                        }
                    })
                    .collect()
            }
        }
    }
}

/// Block numbers of every element of a row-major tensor of `shape`, computed
/// from the multi-index of each element.
fn block_ids(block: &Block, shape: &[usize]) -> Vec<usize> {
    let n: usize = shape.iter().product();
    let mut map: HashMap<Vec<usize>, usize> = HashMap::new();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut idx = vec![0usize; shape.len()];
        let mut r = i;
        for d in (0..shape.len()).rev() {
            idx[d] = r % shape[d];
            r /= shape[d];
        }
        let key: Vec<usize> = match block {
            Block::Tensor => vec![],
            Block::Dims(ds) => ds.iter().map(|&d| idx[d]).collect(),
            Block::Chunks { size, dim } => idx
                .iter()
                .enumerate()
                .map(|(d, &c)| if d == *dim { c / size } else { c })
                .collect(),
            Block::Tiles { size, dims } => idx
                .iter()
                .enumerate()
                .map(|(d, &c)| match dims.iter().position(|&t| t == d) {
                    Some(i) => c / size[i],
                    None => c,
                })
                .collect(),
        };
        let next = map.len();
        out.push(*map.entry(key).or_insert(next));
    }
    out
}

/// Where one element sits: grid step `2^k`, representable range, block.
#[derive(Clone, Copy, Debug)]
struct Local {
    k: i32,
    lo: f64,
    hi: f64,
    block: usize,
}

impl Local {
    fn in_range(&self, x: f32) -> bool {
        let v = f64::from(x);
        x.is_finite() && v >= self.lo && v <= self.hi
    }

    /// The grid points below and above `x` (both `x` when on the grid).
    fn neighbours(&self, x: f32) -> (f64, f64) {
        let s = f64::from(x) * p2(-self.k);
        (s.floor() * p2(self.k), s.ceil() * p2(self.k))
    }

    /// The deterministic rounding of in-range `x`.
    fn expected(&self, x: f32, mode: Rounding) -> f32 {
        let s = f64::from(x) * p2(-self.k);
        (ref_round(mode, s) * p2(self.k)) as f32
    }

    /// The fraction of a step above the lower neighbour.
    fn frac(&self, x: f32) -> f64 {
        let s = f64::from(x) * p2(-self.k);
        s - s.floor()
    }
}

fn run(fmt: &Fmt, r: Rounding, b: Backend, x: &[f32], shape: &[usize], seed: u64) -> Vec<f32> {
    quantize(&fmt.quantizer(r, b), x, shape, seed)
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

fn fixed_fmt() -> impl Strategy<Value = Fmt> {
    (2u32..=24)
        .prop_flat_map(|wl| {
            (
                Just(wl),
                prop_oneof![3 => -8i32..=30, 1 => (wl as i32 - 128)..=149],
                any::<bool>(),
                any::<bool>(),
            )
        })
        .prop_map(|(wl, fl, clamp, symmetric)| {
            Fmt::Fixed(FixedP {
                wl,
                fl,
                clamp,
                symmetric,
            })
        })
}

const SPECIALS: [Specials; 3] = [Specials::Ieee, Specials::None, Specials::Fn];
const OVERFLOWS: [Overflow; 3] = [Overflow::Saturate, Overflow::Infinity, Overflow::Nan];

fn float_params() -> impl Strategy<Value = FloatP> {
    let custom = (1u32..=8, 0u32..=23, any::<bool>(), 0usize..3, 0usize..3).prop_filter_map(
        "invalid float format",
        |(exp, man, subnormals, s, o)| {
            let p = FloatP {
                exp,
                man,
                subnormals,
                specials: SPECIALS[s],
                overflow: OVERFLOWS[o],
                preset: None,
            };
            FloatFormat::new(exp, man, subnormals, p.specials, p.overflow)
                .ok()
                .map(|_| p)
        },
    );
    let preset = (0usize..4, any::<bool>(), 0usize..3).prop_filter_map(
        "invalid preset options",
        |(i, subnormals, o)| {
            let (name, exp, man, specials) = PRESETS[i];
            let p = FloatP {
                exp,
                man,
                subnormals,
                specials,
                overflow: OVERFLOWS[o],
                preset: Some(name),
            };
            FloatFormat::new(exp, man, subnormals, specials, p.overflow)
                .ok()
                .map(|_| p)
        },
    );
    prop_oneof![3 => custom, 1 => preset]
}

fn float_fmt() -> impl Strategy<Value = Fmt> {
    float_params().prop_map(Fmt::Float)
}

fn bfp_tensor_fmt(symmetric: bool) -> impl Strategy<Value = Fmt> {
    (2u32..=24, 1u32..=8).prop_map(move |(wl, ebit)| {
        Fmt::Bfp(BfpP {
            wl,
            ebit,
            block: Block::Tensor,
            small: None,
            symmetric,
        })
    })
}

/// A bfp format with a block kind valid for tensors of `rank` dimensions.
fn bfp_block_fmt(rank: usize) -> impl Strategy<Value = Fmt> {
    (
        2u32..=24,
        1u32..=8,
        any::<bool>(),
        0u8..5,
        0usize..8,
        0usize..8,
        1usize..=4,
    )
        .prop_map(move |(wl, ebit, symmetric, kind, d1, d2, size)| {
            let block = match kind {
                0 => Block::Tensor,
                1 => Block::Dims(vec![d1 % rank]),
                2 => Block::Dims(vec![d1 % rank, d2 % rank]),
                // Two different dimensions: d1 and one of the others.
                4 if rank >= 2 => Block::Tiles {
                    size: [size, 5 - size],
                    dims: [d1 % rank, (d1 % rank + 1 + d2 % (rank - 1)) % rank],
                },
                _ => Block::Chunks {
                    size,
                    dim: d1 % rank,
                },
            };
            Fmt::Bfp(BfpP {
                wl,
                ebit,
                block,
                small: None,
                symmetric,
            })
        })
}

type Raw = Vec<(u8, u32, u32)>;

fn raw(max_len: usize) -> impl Strategy<Value = Raw> {
    prop::collection::vec(any::<(u8, u32, u32)>(), 1..max_len)
}

const SPECIAL_VALUES: [f32; 12] = [
    0.0,
    -0.0,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::NAN,
    1e-45,
    -1e-45,
    f32::MIN_POSITIVE,
    f32::MAX,
    f32::MIN,
    1e30,
    -3e-39,
];

/// Inputs for `fmt` from raw draws: mostly values in the format's exponent
/// window; with `wild`, also arbitrary bit patterns (NaNs, infinities,
/// subnormals, huge values) and special values.
fn inputs(fmt: &Fmt, raw: &[(u8, u32, u32)], wild: bool) -> Vec<f32> {
    let (elo, ehi) = fmt.window();
    raw.iter()
        .map(|&(cat, a, b)| match cat % 16 {
            0 if wild => f32::from_bits(a),
            1 if wild => SPECIAL_VALUES[a as usize % SPECIAL_VALUES.len()],
            2 => 0.0f32.copysign(if b & 1 == 1 { -1.0 } else { 1.0 }),
            _ => {
                let e = elo + (a % (ehi - elo + 1) as u32) as i32;
                let m = 1.0 + f64::from(b >> 9) / p2(23);
                let sign = if b & 1 == 1 { -1.0 } else { 1.0 };
                (sign * m * p2(e)) as f32
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Checks shared by the property tests
// ---------------------------------------------------------------------------

/// Property 1: Every output re-quantizes to itself, bit for bit, under every mode.
/// With `skip_negative_limit`, blocks where an element hit the most negative
/// integer are exempt (bfp without symmetric).
fn check_idempotent(fmt: &Fmt, x: &[f32], shape: &[usize], seed: u64, skip_negative_limit: bool) {
    let locals = fmt.locals(x, shape);
    for r in ALL {
        let y = run(fmt, r, Backend::Auto, x, shape, seed);
        let mut exempt = vec![false; x.len()];
        if skip_negative_limit {
            let hit: Vec<usize> = y
                .iter()
                .zip(&locals)
                .filter(|(&v, l)| f64::from(v) <= l.lo)
                .map(|(_, l)| l.block)
                .collect();
            for (e, l) in exempt.iter_mut().zip(&locals) {
                *e = hit.contains(&l.block);
            }
        }
        for r2 in ALL {
            let z = run(fmt, r2, Backend::Auto, &y, shape, seed.wrapping_add(1));
            for i in 0..x.len() {
                if !exempt[i] {
                    assert!(
                        same(y[i], z[i]),
                        "{}: x = {:e} -> {r} -> {:e} -> {r2} -> {:e}",
                        fmt.spec(),
                        x[i],
                        y[i],
                        z[i]
                    );
                }
            }
        }
    }
}

/// Property 2: Nearest modes: a neighbour, within half a step, ties as documented.
fn check_nearest(fmt: &Fmt, x: &[f32], shape: &[usize]) {
    let locals = fmt.locals(x, shape);
    for r in Rounding::NEAREST {
        let y = run(fmt, r, Backend::Auto, x, shape, 0);
        for i in 0..x.len() {
            let (xi, yi, l) = (x[i], y[i], locals[i]);
            if !l.in_range(xi) {
                continue;
            }
            let ctx = || format!("{} {r}: x = {xi:e}, y = {yi:e}, step 2^{}", fmt.spec(), l.k);
            let (lo, hi) = l.neighbours(xi);
            let yv = f64::from(yi);
            assert!(yv == lo || yv == hi, "not a neighbour: {}", ctx());
            let d = (yv - f64::from(xi)).abs();
            assert!(d <= p2(l.k - 1), "more than half a step away: {}", ctx());
            let other = if yv == lo { hi } else { lo };
            assert!(
                d <= (other - f64::from(xi)).abs(),
                "not the nearest: {}",
                ctx()
            );
            assert!(
                same(yi, l.expected(xi, r)),
                "expected {:e}: {}",
                l.expected(xi, r),
                ctx()
            );
        }
    }
}

/// Property 2: Nearest and directed modes are monotone on sorted (finite) inputs of
/// one tensor.
fn check_monotone(fmt: &Fmt, x: &[f32]) {
    let mut x: Vec<f32> = x.iter().copied().filter(|v| v.is_finite()).collect();
    if x.is_empty() {
        return;
    }
    x.sort_by(|a, b| a.total_cmp(b));
    for r in Rounding::DETERMINISTIC {
        let y = run(fmt, r, Backend::Auto, &x, &[x.len()], 0);
        for i in 1..y.len() {
            if y[i - 1].is_nan() || y[i].is_nan() {
                continue;
            }
            assert!(
                y[i - 1] <= y[i],
                "{} {r}: x {:e} <= {:e} but y {:e} > {:e}",
                fmt.spec(),
                x[i - 1],
                x[i],
                y[i - 1],
                y[i]
            );
        }
    }
}

/// Property 3: Directed modes: the neighbour in the right direction.
fn check_directed(fmt: &Fmt, x: &[f32], shape: &[usize]) {
    let locals = fmt.locals(x, shape);
    for r in DIRECTED {
        let y = run(fmt, r, Backend::Auto, x, shape, 0);
        for i in 0..x.len() {
            let (xi, yi, l) = (x[i], y[i], locals[i]);
            if !l.in_range(xi) {
                continue;
            }
            let ctx = || format!("{} {r}: x = {xi:e}, y = {yi:e}, step 2^{}", fmt.spec(), l.k);
            let (xv, yv) = (f64::from(xi), f64::from(yi));
            match r {
                Down => assert!(yv <= xv, "down went up: {}", ctx()),
                Up => assert!(yv >= xv, "up went down: {}", ctx()),
                _ => {
                    assert!(yv.abs() <= xv.abs(), "toward-zero grew: {}", ctx());
                    assert_eq!(
                        yi.is_sign_negative(),
                        xi.is_sign_negative(),
                        "sign: {}",
                        ctx()
                    );
                }
            }
            // Adjacent: one of the two grid points at most a step apart
            // (|y - x| < step, without the f64 rounding of the difference).
            let (lo, hi) = l.neighbours(xi);
            assert!(hi - lo <= p2(l.k), "neighbours too far apart: {}", ctx());
            assert!(yv == lo || yv == hi, "not a neighbour: {}", ctx());
            assert!((yv - xv).abs() <= p2(l.k), "not adjacent: {}", ctx());
            assert!(
                same(yi, l.expected(xi, r)),
                "expected {:e}: {}",
                l.expected(xi, r),
                ctx()
            );
        }
    }
}

/// Property 4: Stochastic modes: one of the two neighbours; with 2 bits, fractions
/// below a quarter step never round up; zeros keep the input's sign.
fn check_stochastic(fmt: &Fmt, x: &[f32], shape: &[usize], seed: u64) {
    let locals = fmt.locals(x, shape);
    for r in [Rounding::STOCHASTIC, SR2] {
        let y = run(fmt, r, Backend::Auto, x, shape, seed);
        for i in 0..x.len() {
            let (xi, yi, l) = (x[i], y[i], locals[i]);
            if !l.in_range(xi) {
                continue;
            }
            let ctx = || format!("{} {r}: x = {xi:e}, y = {yi:e}, step 2^{}", fmt.spec(), l.k);
            let (lo, hi) = l.neighbours(xi);
            let yv = f64::from(yi);
            assert!(yv == lo || yv == hi, "not a neighbour: {}", ctx());
            if r == SR2 && (l.frac(xi) * 4.0).floor() == 0.0 {
                assert_eq!(
                    yv,
                    lo,
                    "2-bit rounding of a fraction < 1/4 went up: {}",
                    ctx()
                );
            }
            if yi == 0.0 {
                assert_eq!(
                    yi.is_sign_negative(),
                    xi.is_sign_negative(),
                    "zero sign: {}",
                    ctx()
                );
            }
        }
    }
}

/// Bits with the NaN quiet bit set, so that a signalling NaN and its quieted
/// form compare equal (see `float_native_kernel_quiets_signalling_nans`).
fn quieted(v: f32) -> u32 {
    if v.is_nan() {
        v.to_bits() | 0x0040_0000
    } else {
        v.to_bits()
    }
}

/// Property 5: Native and tensor backends agree bit for bit (NaN sign and payload
/// included, up to the quiet bit), and `auto` picks the native kernel for f32
/// CPU tensors.
fn check_backends(fmt: &Fmt, x: &[f32], shape: &[usize], seed: u64) {
    for r in ALL {
        let native = run(fmt, r, Backend::Native, x, shape, seed);
        let tensor = run(fmt, r, Backend::Tensor, x, shape, seed);
        let auto = run(fmt, r, Backend::Auto, x, shape, seed);
        let what = format!("{} {r} shape {shape:?}", fmt.spec());
        for i in 0..x.len() {
            assert_eq!(
                quieted(native[i]),
                quieted(tensor[i]),
                "{what}: native vs tensor at {i}: x = {:e} ({:#010x}) -> {:e} vs {:e}",
                x[i],
                x[i].to_bits(),
                native[i],
                tensor[i]
            );
            assert_eq!(
                native[i].to_bits(),
                auto[i].to_bits(),
                "{what}: native vs auto at {i}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 1-5: properties over random formats and inputs
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn fixed_outputs_are_representable(fmt in fixed_fmt(), raw in raw(120), seed in any::<u64>()) {
        let x = inputs(&fmt, &raw, true);
        check_idempotent(&fmt, &x, &[x.len()], seed, false);
    }

    #[test]
    fn float_outputs_are_representable(fmt in float_fmt(), raw in raw(120), seed in any::<u64>()) {
        let x = inputs(&fmt, &raw, true);
        check_idempotent(&fmt, &x, &[x.len()], seed, false);
    }

    #[test]
    fn bfp_symmetric_outputs_are_representable(fmt in bfp_tensor_fmt(true), raw in raw(120), seed in any::<u64>()) {
        let x = inputs(&fmt, &raw, true);
        check_idempotent(&fmt, &x, &[x.len()], seed, false);
    }

    #[test]
    fn bfp_asymmetric_outputs_are_representable_below_the_negative_limit(
        fmt in bfp_tensor_fmt(false), raw in raw(120), seed in any::<u64>()
    ) {
        let x = inputs(&fmt, &raw, true);
        check_idempotent(&fmt, &x, &[x.len()], seed, true);
    }

    #[test]
    fn bfp_blocked_outputs_are_representable(
        (shape, fmt) in prop::collection::vec(1usize..=5, 1..=4)
            .prop_flat_map(|s| { let r = s.len(); (Just(s), bfp_block_fmt(r)) }),
        raw in prop::collection::vec(any::<(u8, u32, u32)>(), 625),
        seed in any::<u64>(),
    ) {
        let n: usize = shape.iter().product();
        let x = inputs(&fmt, &raw[..n], true);
        check_idempotent(&fmt, &x, &shape, seed, true);
    }

    #[test]
    fn fixed_nearest_directed_stochastic(fmt in fixed_fmt(), raw in raw(200), seed in any::<u64>()) {
        let x = inputs(&fmt, &raw, false);
        check_nearest(&fmt, &x, &[x.len()]);
        check_directed(&fmt, &x, &[x.len()]);
        check_stochastic(&fmt, &x, &[x.len()], seed);
        check_monotone(&fmt, &inputs(&fmt, &raw, true));
    }

    #[test]
    fn float_nearest_directed_stochastic(fmt in float_fmt(), raw in raw(200), seed in any::<u64>()) {
        let x = inputs(&fmt, &raw, false);
        check_nearest(&fmt, &x, &[x.len()]);
        check_directed(&fmt, &x, &[x.len()]);
        check_stochastic(&fmt, &x, &[x.len()], seed);
        check_monotone(&fmt, &inputs(&fmt, &raw, true));
    }

    #[test]
    fn bfp_nearest_directed_stochastic(
        fmt in prop_oneof![bfp_tensor_fmt(true), bfp_tensor_fmt(false)],
        raw in raw(200),
        seed in any::<u64>(),
    ) {
        // Mostly one binade span so that the block exponent leaves room for
        // several significant elements.
        let x = inputs(&fmt, &raw, false);
        check_nearest(&fmt, &x, &[x.len()]);
        check_directed(&fmt, &x, &[x.len()]);
        check_stochastic(&fmt, &x, &[x.len()], seed);
        check_monotone(&fmt, &inputs(&fmt, &raw, true));
    }

    #[test]
    fn bfp_blocks_nearest_directed_stochastic(
        (shape, fmt) in prop::collection::vec(1usize..=6, 1..=4)
            .prop_flat_map(|s| { let r = s.len(); (Just(s), bfp_block_fmt(r)) }),
        raw in prop::collection::vec(any::<(u8, u32, u32)>(), 1296),
        seed in any::<u64>(),
    ) {
        let n: usize = shape.iter().product();
        let x = inputs(&fmt, &raw[..n], false);
        check_nearest(&fmt, &x, &shape);
        check_directed(&fmt, &x, &shape);
        check_stochastic(&fmt, &x, &shape, seed);
    }

    #[test]
    fn backends_agree_fixed(fmt in fixed_fmt(), raw in raw(200), seed in any::<u64>()) {
        let x = inputs(&fmt, &raw, true);
        check_backends(&fmt, &x, &[x.len()], seed);
    }

    #[test]
    fn backends_agree_float(fmt in float_fmt(), raw in raw(200), seed in any::<u64>()) {
        let x = inputs(&fmt, &raw, true);
        check_backends(&fmt, &x, &[x.len()], seed);
    }

    #[test]
    fn backends_agree_bfp_blocks(
        (shape, fmt) in prop::collection::vec(1usize..=6, 1..=4)
            .prop_flat_map(|s| { let r = s.len(); (Just(s), bfp_block_fmt(r)) }),
        raw in prop::collection::vec(any::<(u8, u32, u32)>(), 1296),
        small in 0u8..4,
        seed in any::<u64>(),
    ) {
        let n: usize = shape.iter().product();
        let mut fmt = fmt;
        if let Fmt::Bfp(p) = &mut fmt {
            p.small = [None, Some(SmallBlock::None), Some(SmallBlock::Fc), Some(SmallBlock::Conv)]
                [small as usize];
        }
        let x = inputs(&fmt, &raw[..n], true);
        check_backends(&fmt, &x, &shape, seed);
    }
}

// ---------------------------------------------------------------------------
// 2. Exact ties, constructed as odd multiples of half a step
// ---------------------------------------------------------------------------

/// The tie rule: `lower`/`upper` are the neighbours of a tie `x`.
fn tie_expected(mode: Rounding, x: f64, lower_int: f64, k: i32) -> f64 {
    let (lower, upper) = (lower_int * p2(k), (lower_int + 1.0) * p2(k));
    match mode {
        NearestEven => {
            if lower_int.rem_euclid(2.0) == 0.0 {
                lower
            } else {
                upper
            }
        }
        NearestAway => {
            if x > 0.0 {
                upper
            } else {
                lower
            }
        }
        NearestUp => upper,
        _ => unreachable!(),
    }
}

fn check_ties(fmt: &Fmt, ties: &[(f32, f64, i32)], prefix: &[f32]) {
    let x: Vec<f32> = prefix
        .iter()
        .copied()
        .chain(ties.iter().map(|t| t.0))
        .collect();
    for mode in Rounding::NEAREST {
        let y = run(fmt, mode, Backend::Auto, &x, &[x.len()], 0);
        for (j, &(xt, lower_int, k)) in ties.iter().enumerate() {
            let want = tie_expected(mode, f64::from(xt), lower_int, k);
            let got = y[prefix.len() + j];
            assert!(
                f64::from(got) == want
                    && (got != 0.0 || got.is_sign_negative() == xt.is_sign_negative()),
                "{} {mode}: tie {xt:e} between {:e} and {:e}: expected {want:e}, got {got:e}",
                fmt.spec(),
                lower_int * p2(k),
                (lower_int + 1.0) * p2(k)
            );
        }
    }
}

fn exact_f32(v: f64) -> Option<f32> {
    let f = v as f32;
    (f64::from(f) == v && f.is_finite()).then_some(f)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn fixed_ties_follow_the_mode(
        wl in 2u32..=23,
        fl in -20i32..=148,
        clamp in any::<bool>(),
        symmetric in any::<bool>(),
        picks in prop::collection::vec(any::<u32>(), 1..40),
    ) {
        let fmt = Fmt::Fixed(FixedP { wl, fl, clamp, symmetric });
        let f = FixedPoint::new(wl, fl, clamp, symmetric).unwrap();
        let (ilo, ihi) = f.int_range();
        let ties: Vec<(f32, f64, i32)> = picks
            .iter()
            .filter_map(|&u| {
                let n = ilo + f64::from(u % (ihi - ilo) as u32);
                exact_f32((n + 0.5) * f.step()).map(|x| (x, n, -fl))
            })
            .collect();
        check_ties(&fmt, &ties, &[]);
    }

    #[test]
    fn float_ties_follow_the_mode(
        p in float_params().prop_filter("a tie needs a spare mantissa bit", |p| p.man <= 22),
        picks in prop::collection::vec((any::<u32>(), any::<u32>(), any::<bool>()), 1..40),
    ) {
        let f = p.math();
        let fmt = Fmt::Float(p.clone());
        let man = p.man as i32;
        let top = f.emax().min(127);
        let ties: Vec<(f32, f64, i32)> = picks
            .iter()
            .filter_map(|&(a, b, negative)| {
                // Binade emin - 1 stands for the range below 2^emin.
                let e = f.emin() - 1 + (a % (top - f.emin() + 2) as u32) as i32;
                let k = f.step_exponent(e);
                let (jlo, jhi) = if e >= f.emin() {
                    (p2(man), p2(man + 1) - 1.0)
                } else if p.subnormals {
                    (0.0, p2(man) - 1.0)
                } else {
                    (0.0, 0.0)
                };
                let j = jlo + f64::from(b % ((jhi - jlo) as u32 + 1));
                if (j + 1.0) * p2(k) > f.max_value() {
                    return None;
                }
                let x = exact_f32((j + 0.5) * p2(k))?;
                Some(if negative { (-x, -j - 1.0, k) } else { (x, j, k) })
            })
            .collect();
        check_ties(&fmt, &ties, &[]);
    }

    #[test]
    fn bfp_ties_follow_the_mode(
        wl in 2u32..=23,
        ebit in 1u32..=8,
        symmetric in any::<bool>(),
        e_pick in any::<u32>(),
        picks in prop::collection::vec(any::<u32>(), 1..40),
    ) {
        let fmt = Fmt::Bfp(BfpP { wl, ebit, block: Block::Tensor, small: None, symmetric });
        let f = BlockFloat::new(wl, ebit, Block::Tensor, None, symmetric).unwrap();
        let (lo, hi) = f.exponent_range();
        let e = lo + (e_pick % (hi - lo + 1) as u32) as i32;
        let k = f.step_exponent(e);
        prop_assume!(k > -149);
        // The anchor 2^E fixes the block exponent; every tie is smaller.
        let anchor = p2(e) as f32;
        let half = p2(wl as i32 - 2);
        let ties: Vec<(f32, f64, i32)> = picks
            .iter()
            .filter_map(|&u| {
                let n = -half + f64::from(u % (2.0 * half) as u32);
                exact_f32((n + 0.5) * p2(k)).map(|x| (x, n, k))
            })
            .collect();
        check_ties(&fmt, &ties, &[anchor]);
    }
}

#[test]
fn documented_tie_examples() {
    let fixed = Fmt::Fixed(FixedP {
        wl: 8,
        fl: 0,
        clamp: true,
        symmetric: false,
    });
    let x = [2.5f32, -2.5, 3.5, -3.5, 0.5, -0.5];
    let cases = [
        (NearestEven, [2.0f32, -2.0, 4.0, -4.0, 0.0, -0.0]),
        (NearestAway, [3.0, -3.0, 4.0, -4.0, 1.0, -1.0]),
        (NearestUp, [3.0, -2.0, 4.0, -3.0, 1.0, -0.0]),
    ];
    for (mode, want) in cases {
        let y = run(&fixed, mode, Backend::Auto, &x, &[6], 0);
        assert_same_slices(&y, &want, &format!("fixed {mode}"));
    }
    // fp8_e5m2: 1.125 lies halfway between 1.0 and 1.25 (mantissa 00 / 01).
    let e5m2 = preset("fp8_e5m2");
    let x = [1.125f32, -1.125, 1.375, -1.375];
    for (mode, want) in [
        (NearestEven, [1.0f32, -1.0, 1.5, -1.5]),
        (NearestAway, [1.25, -1.25, 1.5, -1.5]),
        (NearestUp, [1.25, -1.0, 1.5, -1.25]),
    ] {
        let y = run(&e5m2, mode, Backend::Auto, &x, &[4], 0);
        assert_same_slices(&y, &want, &format!("fp8_e5m2 {mode}"));
    }
}

fn preset(name: &str) -> Fmt {
    let (name, exp, man, specials) = *PRESETS.iter().find(|p| p.0 == name).unwrap();
    let overflow = if specials == Specials::Ieee {
        Overflow::Infinity
    } else {
        Overflow::Saturate
    };
    Fmt::Float(FloatP {
        exp,
        man,
        subnormals: true,
        specials,
        overflow,
        preset: Some(name),
    })
}

fn float(exp: u32, man: u32, subnormals: bool, specials: Specials, overflow: Overflow) -> Fmt {
    Fmt::Float(FloatP {
        exp,
        man,
        subnormals,
        specials,
        overflow,
        preset: None,
    })
}

fn fixed(wl: u32, fl: i32, clamp: bool, symmetric: bool) -> Fmt {
    Fmt::Fixed(FixedP {
        wl,
        fl,
        clamp,
        symmetric,
    })
}

fn bfp(wl: u32, ebit: u32, block: Block, symmetric: bool) -> Fmt {
    Fmt::Bfp(BfpP {
        wl,
        ebit,
        block,
        small: None,
        symmetric,
    })
}

// ---------------------------------------------------------------------------
// 1. The documented bfp exception
// ---------------------------------------------------------------------------

#[test]
fn bfp_negative_limit_raises_the_exponent_on_requantization() {
    // wl = 4: integers -8..=7. -1.99 has E = 0, step 1/4, and rounds to
    // -8/4 = -2 = -2^(E+1); re-quantized, the block maximum 2 gives E = 1 and
    // step 1/2, so 0.25 (a tie at the new step) moves.
    let fmt = bfp(4, 8, Block::Tensor, false);
    let y = run(&fmt, NearestEven, Backend::Auto, &[-1.99, 0.25], &[2], 0);
    assert_same_slices(&y, &[-2.0, 0.25], "first pass");
    let z = run(&fmt, NearestEven, Backend::Auto, &y, &[2], 0);
    assert_same_slices(&z, &[-2.0, 0.0], "second pass");
    // With symmetric = true the limit is -7/4 and the second pass is exact.
    let fmt = bfp(4, 8, Block::Tensor, true);
    let y = run(&fmt, NearestEven, Backend::Auto, &[-1.99, 0.25], &[2], 0);
    assert_same_slices(&y, &[-1.75, 0.25], "symmetric");
    let z = run(&fmt, NearestEven, Backend::Auto, &y, &[2], 0);
    assert_same_slices(&z, &y, "symmetric second pass");
}

// ---------------------------------------------------------------------------
// 4. Stochastic rounding: unbiased, limited bits, reproducible
// ---------------------------------------------------------------------------

const N: usize = 20_000;

/// Mean of `n` stochastic roundings of `x` drawn as copies in one tensor, with
/// `extra` elements (block anchors) in front.
fn stochastic_mean(fmt: &Fmt, r: Rounding, x: f32, extra: &[f32], seed: u64) -> f64 {
    let data: Vec<f32> = extra
        .iter()
        .copied()
        .chain(std::iter::repeat(x).take(N))
        .collect();
    let y = run(fmt, r, Backend::Auto, &data, &[data.len()], seed);
    let (lo, hi) = fmt.locals(&data, &[data.len()])[extra.len()].neighbours(x);
    for &v in &y[extra.len()..] {
        assert!(
            f64::from(v) == lo || f64::from(v) == hi,
            "{v} not in {{{lo}, {hi}}}"
        );
    }
    y[extra.len()..].iter().map(|&v| f64::from(v)).sum::<f64>() / N as f64
}

/// Asserts `mean` is within 4 standard errors of `want`, where the rounding
/// goes up with probability `p` on a grid of `step`.
fn assert_mean(mean: f64, want: f64, p: f64, step: f64, what: &str) {
    let se = step * (p * (1.0 - p) / N as f64).sqrt();
    assert!(
        (mean - want).abs() < 4.0 * se,
        "{what}: mean {mean} vs {want} (4 se = {})",
        4.0 * se
    );
}

#[test]
fn stochastic_rounding_is_unbiased() {
    // fixed wl = 8, fl = 2: 0.3 lies between 0.25 and 0.5.
    let fmt = fixed(8, 2, true, false);
    let x = 0.3f32;
    let p = (f64::from(x) - 0.25) / 0.25;
    for seed in [1, 2] {
        let mean = stochastic_mean(&fmt, Rounding::STOCHASTIC, x, &[], seed);
        assert_mean(mean, x.into(), p, 0.25, "fixed 0.3");
        let mean = stochastic_mean(&fmt, Rounding::STOCHASTIC, -x, &[], seed);
        assert_mean(mean, (-x).into(), p, 0.25, "fixed -0.3");
    }
    // fp8_e5m2: 1.1 lies between 1.0 and 1.25.
    let fmt = preset("fp8_e5m2");
    let x = 1.1f32;
    let p = (f64::from(x) - 1.0) / 0.25;
    let mean = stochastic_mean(&fmt, Rounding::STOCHASTIC, x, &[], 3);
    assert_mean(mean, x.into(), p, 0.25, "e5m2 1.1");
    // A subnormal of e5m2 (step 2^-16): 2.3 steps.
    let x = (2.3 * p2(-16)) as f32;
    let p = f64::from(x) / p2(-16) - 2.0;
    let mean = stochastic_mean(&fmt, Rounding::STOCHASTIC, x, &[], 4);
    assert_mean(mean, x.into(), p, p2(-16), "e5m2 subnormal");
    // bfp wl = 4: the anchor 1.0 gives E = 0 and a step of 1/4.
    let fmt = bfp(4, 8, Block::Tensor, true);
    let x = 0.3f32;
    let p = (f64::from(x) - 0.25) / 0.25;
    let mean = stochastic_mean(&fmt, Rounding::STOCHASTIC, x, &[1.0], 5);
    assert_mean(mean, x.into(), p, 0.25, "bfp 0.3");
}

#[test]
fn stochastic_rounding_is_unbiased_across_calls_with_one_rng() {
    // 5000 calls on 4 copies each: fresh streams per call.
    let q = fixed(8, 2, true, false).quantizer(Rounding::STOCHASTIC, Backend::Auto);
    let x = Tensor::from_slice(&[0.3f32; 4]);
    let mut rng = QuantRng::new(9);
    let mut sum = 0.0;
    for _ in 0..N / 4 {
        sum += values(&q.quantize(&x, &mut rng).unwrap())
            .iter()
            .map(|&v| f64::from(v))
            .sum::<f64>();
    }
    assert_eq!(rng.streams_used(), (N / 4) as u64);
    let p = (f64::from(0.3f32) - 0.25) / 0.25;
    assert_mean(sum / N as f64, f64::from(0.3f32), p, 0.25, "repeated calls");
}

#[test]
fn limited_bit_stochastic_rounds_up_with_the_truncated_fraction() {
    // fixed fl = 0: 1.3 has fraction 0.3, truncated to 2 bits: 1/4.
    let fmt = fixed(8, 0, true, false);
    let x = 1.3f32;
    let want = 1.0 + (0.3f64 * 4.0).floor() / 4.0;
    assert_eq!(want, 1.25);
    let mean = stochastic_mean(&fmt, SR2, x, &[], 11);
    assert_mean(mean, want, 0.25, 1.0, "2-bit 1.3");
    // ...which differs from the full-precision mean by far more than 4 se.
    let se = (0.25f64 * 0.75 / N as f64).sqrt();
    assert!(
        (mean - 1.3).abs() > 8.0 * se,
        "2-bit mean {mean} too close to 1.3"
    );
    let full = stochastic_mean(&fmt, Rounding::STOCHASTIC, x, &[], 11);
    assert_mean(full, x.into(), f64::from(x) - 1.0, 1.0, "32-bit 1.3");
    // Negative values are truncated as two's complement: -1.3 = -2 + 0.7,
    // 0.7 truncates to 2/4, so the mean is -1.5.
    let mean = stochastic_mean(&fmt, SR2, -x, &[], 12);
    assert_mean(mean, -1.5, 0.5, 1.0, "2-bit -1.3");
    // A fraction below 1/4 never rounds up with 2 bits; 3/4 always does
    // unless the draw's top bits are zero.
    let y = run(&fmt, SR2, Backend::Auto, &[1.2f32; 1000], &[1000], 13);
    assert!(y.iter().all(|&v| v == 1.0), "1.2 rounded up with 2 bits");
    // 1 bit: fraction 0.75 truncates to 1/2.
    let mean = stochastic_mean(&fmt, Rounding::Stochastic { bits: 1 }, 1.75, &[], 14);
    assert_mean(mean, 1.5, 0.5, 1.0, "1-bit 1.75");
    // The spec syntax reaches the same mode.
    let q: Quantizer =
        r#"{ format = "fixed", wl = 8, fl = 0, rounding = { stochastic_bits = 2 } }"#
            .parse()
            .unwrap();
    assert_eq!(q.rounding(), SR2);
    let y = values(
        &q.quantize(&tensor(&[1.3; N], &[N]), &mut QuantRng::new(11))
            .unwrap(),
    );
    let from_spec = y.iter().map(|&v| f64::from(v)).sum::<f64>() / N as f64;
    assert_eq!(from_spec, mean_of(&fmt, SR2, 1.3, 11));
}

fn mean_of(fmt: &Fmt, r: Rounding, x: f32, seed: u64) -> f64 {
    let y = run(fmt, r, Backend::Auto, &vec![x; N], &[N], seed);
    y.iter().map(|&v| f64::from(v)).sum::<f64>() / N as f64
}

fn every_family() -> Vec<Fmt> {
    vec![
        fixed(8, 4, true, false),
        fixed(12, 6, false, true),
        float(5, 2, true, Specials::Ieee, Overflow::Infinity),
        float(4, 3, false, Specials::Fn, Overflow::Nan),
        preset("bfloat16"),
        preset("fp16"),
        preset("fp8_e4m3"),
        preset("fp8_e5m2"),
        bfp(6, 8, Block::Tensor, false),
        bfp(8, 4, Block::Dims(vec![0]), true),
        bfp(5, 8, Block::Chunks { size: 7, dim: 1 }, false),
    ]
}

#[test]
fn stochastic_rounding_is_seed_reproducible() {
    let mut data = Data(21);
    let x = data.normal(1000, 3.0);
    for fmt in every_family() {
        let shape = [40, 25];
        for r in [Rounding::STOCHASTIC, SR2] {
            let a = run(&fmt, r, Backend::Auto, &x, &shape, 7);
            let b = run(&fmt, r, Backend::Auto, &x, &shape, 7);
            let c = run(&fmt, r, Backend::Auto, &x, &shape, 8);
            let spec = fmt.spec();
            assert!(
                a.iter().zip(&b).all(|(u, v)| u.to_bits() == v.to_bits()),
                "{spec} {r}: same seed, different bits"
            );
            let differ = a.iter().zip(&c).filter(|(u, v)| u != v).count();
            assert!(
                differ > 10,
                "{spec} {r}: seeds 7 and 8 differ in {differ} of 1000"
            );
            // Successive calls with one generator draw fresh streams.
            let q = fmt.quantizer(r, Backend::Auto);
            let mut rng = QuantRng::new(7);
            let t = tensor(&x, &shape);
            let first = values(&q.quantize(&t, &mut rng).unwrap());
            let second = values(&q.quantize(&t, &mut rng).unwrap());
            assert_same_slices(&first, &a, &format!("{spec} {r}: first call = fresh rng"));
            let differ = first.iter().zip(&second).filter(|(u, v)| u != v).count();
            assert!(
                differ > 10,
                "{spec} {r}: successive calls differ in {differ} of 1000"
            );
            assert_eq!(rng.streams_used(), 2);
        }
        // Deterministic modes take no stream.
        let mut rng = QuantRng::new(7);
        for r in Rounding::DETERMINISTIC {
            let _ = fmt
                .quantizer(r, Backend::Auto)
                .quantize(&tensor(&x, &[40, 25]), &mut rng)
                .unwrap();
        }
        assert_eq!(rng.streams_used(), 0, "{}", fmt.spec());
    }
}

// ---------------------------------------------------------------------------
// 5. Backends on large inputs (the parallel native path)
// ---------------------------------------------------------------------------

#[test]
fn backends_agree_on_large_inputs() {
    let mut data = Data(5);
    let shape = [300, 150];
    let x = data.normal(300 * 150, 10.0);
    for fmt in every_family() {
        check_backends(&fmt, &x, &shape, 99);
    }
}

// ---------------------------------------------------------------------------
// 6. Saturation and overflow
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn fixed_clamp_saturates_at_both_ends(
        wl in 2u32..=24, fl_off in 0i32..60, symmetric in any::<bool>(), beyond in 1u32..1000,
    ) {
        let fl = wl as i32 - 128 + fl_off * 4;
        let fmt = fixed(wl, fl, true, symmetric);
        let f = FixedPoint::new(wl, fl, true, symmetric).unwrap();
        if symmetric {
            prop_assert_eq!(f.min(), -f.max());
        } else {
            prop_assert_eq!(f.min(), -f.max() - f.step());
        }
        let (ilo, ihi) = f.int_range();
        let up = [(ihi + 1.0) * f.step(), (ihi + f64::from(beyond) + 0.5) * f.step(), f64::from(f32::MAX)];
        let down = [(ilo - 1.0) * f.step(), (ilo - f64::from(beyond) - 0.5) * f.step(), f64::from(f32::MIN)];
        let x: Vec<f32> = up.iter().chain(&down).map(|&v| v as f32).collect();
        for r in ALL {
            let y = run(&fmt, r, Backend::Auto, &x, &[6], 3);
            for (i, (&xi, &yi)) in x.iter().zip(&y).enumerate() {
                let want = if i < 3 { f.max() } else { f.min() };
                prop_assert_eq!(f64::from(yi), want, "{} {}: x = {:e}", fmt.spec(), r, xi);
            }
        }
    }

    #[test]
    fn fixed_without_clamp_keeps_rounded_values(
        wl in 2u32..=20, fl in -10i32..=30, symmetric in any::<bool>(), beyond in 1u32..1000,
    ) {
        let fmt = fixed(wl, fl, false, symmetric);
        let f = FixedPoint::new(wl, fl, false, symmetric).unwrap();
        let (ilo, ihi) = f.int_range();
        let b = f64::from(beyond);
        let ints = [ihi + b, ihi + b + 0.25, ihi + b + 0.5, ihi + b + 0.75, ilo - b, ilo - b - 0.25, ilo - b - 0.5];
        let x: Vec<f32> = ints.iter().map(|&n| (n * f.step()) as f32).collect();
        for r in Rounding::DETERMINISTIC {
            let y = run(&fmt, r, Backend::Auto, &x, &[x.len()], 0);
            for (&n, &yi) in ints.iter().zip(&y) {
                let want = ref_round(r, n) * f.step();
                prop_assert_eq!(f64::from(yi), want, "{} {}: {} steps", fmt.spec(), r, n);
            }
        }
    }

    #[test]
    fn float_overflow_follows_the_overflow_rule(
        p in float_params().prop_filter("needs room above the range in f32", |p| {
            p.math().emax() <= 125
        }),
        scale in 1.0f64..1000.0,
    ) {
        let f = p.math();
        let fmt = Fmt::Float(p.clone());
        let big = (p2(f.emax() + 1) * scale.min(p2(126 - f.emax()))) as f32;
        let x = [big, -big, f32::MAX, f32::MIN];
        for r in ALL {
            let y = run(&fmt, r, Backend::Auto, &x, &[4], 5);
            for (&xi, &yi) in x.iter().zip(&y) {
                let negative = xi < 0.0;
                let shrinks = matches!((r, negative), (TowardZero, _) | (Down, false) | (Up, true));
                let sat = if negative { -f.max_value() } else { f.max_value() };
                let want = match p.overflow {
                    Overflow::Saturate => sat,
                    _ if shrinks => sat,
                    Overflow::Infinity => if negative { f64::NEG_INFINITY } else { f64::INFINITY },
                    Overflow::Nan => f64::NAN,
                };
                prop_assert!(
                    same(yi, want as f32),
                    "{} {}: x = {:e}: expected {:e}, got {:e}", fmt.spec(), r, xi, want, yi
                );
            }
        }
    }

    #[test]
    fn bfp_saturates_at_both_ends(
        wl in 2u32..=24, ebit in 1u32..=8, symmetric in any::<bool>(), scale in 1.0f64..1e6,
    ) {
        let fmt = bfp(wl, ebit, Block::Tensor, symmetric);
        let f = BlockFloat::new(wl, ebit, Block::Tensor, None, symmetric).unwrap();
        let (_, hi) = f.exponent_range();
        let k = f.step_exponent(hi);
        // Beyond 2^(hi+1), the block exponent is clamped to hi.
        // (It may round to infinity in f32, which saturates the same way.)
        let big = (p2(hi + 1) * scale) as f32;
        let x = [big, -big, 4.0 * big];
        let (ilo, ihi) = f.int_range();
        prop_assert_eq!(ihi, p2(wl as i32 - 1) - 1.0);
        prop_assert_eq!(ilo, if symmetric { -ihi } else { -ihi - 1.0 });
        for r in ALL {
            let y = run(&fmt, r, Backend::Auto, &x, &[3], 5);
            prop_assert_eq!(f64::from(y[0]), ihi * p2(k), "{} {}", fmt.spec(), r);
            // -2^128 (ebit = 8, not symmetric) is the known bug of
            // `bfp_negative_limit_at_the_top_exponent_is_finite`.
            if f32_holds(ilo * p2(k)) {
                prop_assert_eq!(f64::from(y[1]), ilo * p2(k), "{} {}", fmt.spec(), r);
            }
            prop_assert_eq!(f64::from(y[2]), ihi * p2(k), "{} {}", fmt.spec(), r);
        }
        // Inside the range, the block maximum rounding up past the top
        // integer saturates too: 2^(E+1) - tiny with E = 0 (ebit >= 2).
        if ebit >= 2 && wl <= 22 {
            let x = [(2.0 - p2(-(wl as i32) - 1)) as f32, -(2.0 - p2(-(wl as i32) - 1)) as f32];
            let k = f.step_exponent(0);
            for r in [NearestEven, NearestAway, NearestUp] {
                let y = run(&fmt, r, Backend::Auto, &x, &[2], 0);
                prop_assert_eq!(f64::from(y[0]), ihi * p2(k), "{} {}", fmt.spec(), r);
                prop_assert_eq!(f64::from(y[1]), ilo * p2(k), "{} {}", fmt.spec(), r);
            }
        }
    }
}

#[test]
fn float_overflow_examples() {
    let ieee = |o| float(5, 10, true, Specials::Ieee, o);
    let max16 = 65504.0f32;
    let x = [1e5f32, -1e5, 65520.0, 65519.0];
    // (format, rounding, expected)
    let cases: Vec<(Fmt, Rounding, [f32; 4])> = vec![
        (
            ieee(Overflow::Infinity),
            NearestEven,
            [f32::INFINITY, f32::NEG_INFINITY, f32::INFINITY, max16],
        ),
        (
            ieee(Overflow::Infinity),
            TowardZero,
            [max16, -max16, max16, max16],
        ),
        (
            ieee(Overflow::Infinity),
            Down,
            [max16, f32::NEG_INFINITY, max16, max16],
        ),
        (
            ieee(Overflow::Infinity),
            Up,
            [f32::INFINITY, -max16, f32::INFINITY, f32::INFINITY],
        ),
        (
            ieee(Overflow::Saturate),
            NearestEven,
            [max16, -max16, max16, max16],
        ),
        (ieee(Overflow::Saturate), Up, [max16, -max16, max16, max16]),
        (
            ieee(Overflow::Nan),
            NearestEven,
            [f32::NAN, f32::NAN, f32::NAN, max16],
        ),
        (ieee(Overflow::Nan), Down, [max16, f32::NAN, max16, max16]),
        (
            ieee(Overflow::Nan),
            Up,
            [f32::NAN, -max16, f32::NAN, f32::NAN],
        ),
    ];
    for (fmt, r, want) in cases {
        let y = run(&fmt, r, Backend::Auto, &x, &[4], 0);
        assert_same_slices(&y, &want, &format!("{} {r}", fmt.spec()));
    }
    // bfloat16 (exp = 8, IEEE): f32::MAX is beyond max + half a step.
    let bf16 = preset("bfloat16");
    let max = ((2.0 - p2(-7)) * p2(127)) as f32;
    let x = [f32::MAX, f32::MIN];
    for (r, want) in [
        (NearestEven, [f32::INFINITY, f32::NEG_INFINITY]),
        (TowardZero, [max, -max]),
        (Down, [max, f32::NEG_INFINITY]),
        (Up, [f32::INFINITY, -max]),
    ] {
        let y = run(&bf16, r, Backend::Auto, &x, &[2], 0);
        assert_same_slices(&y, &want, &format!("bfloat16 {r}"));
    }
}

#[test]
fn fp8_e4m3_saturates_at_448() {
    let e4m3 = preset("fp8_e4m3");
    let Fmt::Float(p) = &e4m3 else { unreachable!() };
    assert_eq!(p.math().max_value(), 448.0);
    // 448 = 1.75 * 2^8 (integer 14 at step 32); 480 would be the NaN code.
    // 464 is the tie between 448 and 480: even keeps 448, the others round
    // to 480, which overflows and (by default) saturates back to 448.
    let x = [
        448.0f32, 464.0, 465.0, 479.0, 1e6, -464.0, -465.0, -1e6, 416.0,
    ];
    for r in ALL {
        let y = run(&e4m3, r, Backend::Auto, &x, &[x.len()], 0);
        let want = [
            448.0, 448.0, 448.0, 448.0, 448.0, -448.0, -448.0, -448.0, 416.0,
        ];
        assert_same_slices(&y, &want, &format!("fp8_e4m3 {r}"));
    }
    // With overflow = "nan" (what torch's float8_e4m3fn cast does):
    let q: Quantizer = r#"{ format = "fp8_e4m3", overflow = "nan" }"#.parse().unwrap();
    let y = values(
        &q.quantize(&tensor(&x, &[x.len()]), &mut QuantRng::new(0))
            .unwrap(),
    );
    let want = [
        448.0,
        448.0,
        f32::NAN,
        f32::NAN,
        f32::NAN,
        -448.0,
        f32::NAN,
        f32::NAN,
        416.0,
    ];
    assert_same_slices(&y, &want, "fp8_e4m3 overflow = nan");
    let q = q.with_rounding(TowardZero);
    let y = values(
        &q.quantize(&tensor(&x, &[x.len()]), &mut QuantRng::new(0))
            .unwrap(),
    );
    let want = [
        448.0, 448.0, 448.0, 448.0, 448.0, -448.0, -448.0, -448.0, 416.0,
    ];
    assert_same_slices(&y, &want, "fp8_e4m3 overflow = nan, toward-zero");
}

#[test]
fn presets_match_torch_casts_with_nearest_even() {
    let mut data = Data(77);
    let mut x = data.normal(2000, 1.0);
    // Cover every binade of f32, subnormals and overflow.
    x.extend((0..2000).map(|_| f32::from_bits(data.next_u64() as u32)));
    x.extend([
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        464.0,
        65520.0,
        57344.0,
        61440.0,
    ]);
    let t = tensor(&x, &[x.len()]);
    let cases = [
        (r#"{ format = "bfloat16" }"#, Kind::BFloat16),
        (r#"{ format = "fp16" }"#, Kind::Half),
        (r#"{ format = "fp8_e5m2" }"#, Kind::Float8e5m2),
        (
            r#"{ format = "fp8_e4m3", overflow = "nan" }"#,
            Kind::Float8e4m3fn,
        ),
    ];
    for (spec, kind) in cases {
        for backend in [Backend::Native, Backend::Tensor] {
            let q: Quantizer = spec.parse::<Quantizer>().unwrap().with_backend(backend);
            let y = values(&q.quantize(&t, &mut QuantRng::new(0)).unwrap());
            let want = values(&t.to_kind(kind).to_kind(Kind::Float));
            assert_same_slices(&y, &want, &format!("{spec} {backend} vs torch {kind:?}"));
        }
    }
}

// ---------------------------------------------------------------------------
// 7. Specials
// ---------------------------------------------------------------------------

fn special_formats() -> Vec<Fmt> {
    let mut v = vec![
        fixed(8, 4, true, false),
        fixed(8, 4, true, true),
        fixed(8, 4, false, false),
        fixed(24, 140, true, false),
        float(5, 2, true, Specials::Ieee, Overflow::Infinity),
        float(5, 2, false, Specials::Ieee, Overflow::Saturate),
        float(5, 2, true, Specials::Ieee, Overflow::Nan),
        float(4, 3, true, Specials::None, Overflow::Saturate),
        float(4, 3, true, Specials::Fn, Overflow::Saturate),
        float(4, 3, true, Specials::Fn, Overflow::Nan),
        float(1, 1, true, Specials::None, Overflow::Saturate),
        float(8, 23, true, Specials::Ieee, Overflow::Infinity),
        bfp(8, 8, Block::Tensor, false),
        bfp(8, 3, Block::Tensor, true),
        bfp(4, 8, Block::Dims(vec![0]), false),
    ];
    v.extend(["bfloat16", "fp16", "fp8_e4m3", "fp8_e5m2"].map(preset));
    v
}

#[test]
fn zeros_keep_their_sign_and_nan_stays_nan() {
    for fmt in special_formats() {
        for r in ALL {
            let x = [0.0f32, -0.0, f32::NAN, -f32::NAN, 0.0, -0.0];
            let y = run(&fmt, r, Backend::Auto, &x, &[3, 2], 1);
            let spec = fmt.spec();
            for i in [0, 1, 4, 5] {
                assert_eq!(y[i].to_bits(), x[i].to_bits(), "{spec} {r}: zero {i}");
            }
            assert!(y[2].is_nan() && y[3].is_nan(), "{spec} {r}: NaN -> {y:?}");
        }
    }
}

#[test]
fn values_rounding_to_zero_keep_the_input_sign() {
    // Tiny values next to a large one (so bfp's step is coarse).
    for fmt in special_formats() {
        let x = [1e-30f32, -1e-30, 1e-42, -1e-42, 100.0];
        for r in ALL {
            let y = run(&fmt, r, Backend::Auto, &x, &[5], 2);
            for i in 0..4 {
                if y[i] == 0.0 {
                    assert_eq!(
                        y[i].is_sign_negative(),
                        x[i].is_sign_negative(),
                        "{} {r}: {:e} -> {:e}",
                        fmt.spec(),
                        x[i],
                        y[i]
                    );
                }
            }
        }
    }
    // Explicit: fixed fl = 2 (step 1/4): ±0.1 rounds to ±0 under every
    // nearest mode and toward zero, -0.1 to -0 under up, 0.1 to +0 under down.
    let fmt = fixed(8, 2, true, false);
    for (r, want) in [
        (NearestEven, [-0.0f32, 0.0]),
        (NearestAway, [-0.0, 0.0]),
        (NearestUp, [-0.0, 0.0]),
        (TowardZero, [-0.0, 0.0]),
        (Up, [-0.0, 0.25]),
        (Down, [-0.25, 0.0]),
    ] {
        let y = run(&fmt, r, Backend::Auto, &[-0.1, 0.1], &[2], 0);
        assert_same_slices(&y, &want, &format!("fixed fl = 2 {r}"));
    }
}

#[test]
fn infinities_follow_each_format() {
    let x = [f32::INFINITY, f32::NEG_INFINITY, 1.0];
    for fmt in special_formats() {
        for r in ALL {
            let y = run(&fmt, r, Backend::Auto, &x, &[3], 3);
            let spec = fmt.spec();
            let (pos, neg): (f64, f64) = match &fmt {
                Fmt::Fixed(p) if p.clamp => (p.math().max(), p.math().min()),
                Fmt::Fixed(_) => (f64::INFINITY, f64::NEG_INFINITY),
                Fmt::Float(p) => match (p.specials, p.overflow) {
                    (Specials::Ieee, _) => (f64::INFINITY, f64::NEG_INFINITY),
                    (_, Overflow::Saturate) => (p.math().max_value(), -p.math().max_value()),
                    _ => (f64::NAN, f64::NAN),
                },
                Fmt::Bfp(p) => {
                    // The block exponent goes to its maximum; the infinities
                    // saturate and 1.0 is rounded on that block's grid.
                    let f = p.math();
                    let k = f.step_exponent(f.exponent_range().1);
                    let (ilo, ihi) = f.int_range();
                    let one = (ref_round_opt(r, p2(-k))).map(|n| n * p2(k));
                    if let (Some(one), Block::Tensor) = (one, &p.block) {
                        assert_eq!(f64::from(y[2]), one, "{spec} {r}: 1.0 next to inf");
                    }
                    // The lowest value must be an f32: at the top exponent
                    // the range is symmetric.
                    let lowest = if f32_holds(ilo * p2(k)) { ilo } else { -ihi };
                    (ihi * p2(k), lowest * p2(k))
                }
            };
            assert!(
                same(y[0], pos as f32),
                "{spec} {r}: +inf -> {:e}, expected {pos:e}",
                y[0]
            );
            assert!(
                same(y[1], neg as f32),
                "{spec} {r}: -inf -> {:e}, expected {neg:e}",
                y[1]
            );
        }
    }
}

fn ref_round_opt(r: Rounding, s: f64) -> Option<f64> {
    (!r.is_stochastic()).then(|| ref_round(r, s))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn float_subnormal_range(p in float_params()) {
        let f = p.math();
        let fmt = Fmt::Float(p.clone());
        let min_sub = f.min_subnormal();
        if p.subnormals {
            prop_assert_eq!(min_sub, p2(f.emin() - p.man as i32));
            // The smallest positive value is a fixed point; half of it is a
            // tie; a quarter and three quarters go to 0 and min_sub.
            let fixed_point = run(&fmt, NearestEven, Backend::Auto, &[min_sub as f32, -min_sub as f32], &[2], 0);
            prop_assert_eq!(f64::from(fixed_point[0]), min_sub);
            prop_assert_eq!(f64::from(fixed_point[1]), -min_sub);
            let cases = [(0.25, 0.0, 0.0, 0.0), (0.5, 0.0, 1.0, 1.0), (0.75, 1.0, 1.0, 1.0)];
            for (frac, even, away, up) in cases {
                let Some(x) = exact_f32(frac * min_sub) else { continue };
                for (r, want) in [(NearestEven, even), (NearestAway, away), (NearestUp, up)] {
                    let y = run(&fmt, r, Backend::Auto, &[x, -x], &[2], 0);
                    prop_assert_eq!(f64::from(y[0]), want * min_sub, "{} {}: {:e}", fmt.spec(), r, x);
                    let want_neg = match r { NearestUp => if frac > 0.5 { -1.0 } else { 0.0 }, _ => -want };
                    prop_assert_eq!(f64::from(y[1]), want_neg * min_sub, "{} {}: {:e}", fmt.spec(), r, -x);
                    prop_assert!(y[0].is_sign_positive() && y[1].is_sign_negative());
                }
            }
            // Below half of it: 0 under nearest, min_sub under up.
            // (In f32, 0.3 * 2^-148 rounds to 2^-149, a tie: keep strictly below.)
            let x = (0.3 * min_sub) as f32;
            if x > 0.0 && f64::from(x) < 0.5 * min_sub {
                for r in Rounding::NEAREST {
                    let y = run(&fmt, r, Backend::Auto, &[x, -x], &[2], 0);
                    prop_assert_eq!(y[0].to_bits(), 0f32.to_bits(), "{} {}: {:e}", fmt.spec(), r, x);
                    prop_assert_eq!(y[1].to_bits(), (-0f32).to_bits(), "{} {}: {:e}", fmt.spec(), r, -x);
                }
                prop_assert_eq!(f64::from(run(&fmt, Up, Backend::Auto, &[x], &[1], 0)[0]), min_sub);
                prop_assert_eq!(run(&fmt, Down, Backend::Auto, &[x], &[1], 0)[0], 0.0);
            }
        } else {
            let min_normal = p2(f.emin());
            prop_assert_eq!(min_sub, min_normal);
            // (0, 2^emin) holds no values: 0 or 2^emin.
            for frac in [0.1, 0.3, 0.5, 0.7, 0.99] {
                let x = (frac * min_normal) as f32;
                if x == 0.0 {
                    continue;
                }
                for r in ALL {
                    let y = run(&fmt, r, Backend::Auto, &[x, -x], &[2], 4);
                    prop_assert!(y[0] == 0.0 || f64::from(y[0]) == min_normal, "{} {}: {:e} -> {:e}", fmt.spec(), r, x, y[0]);
                    prop_assert!(y[1] == 0.0 || f64::from(y[1]) == -min_normal, "{} {}: {:e} -> {:e}", fmt.spec(), r, -x, y[1]);
                    if let Some(n) = ref_round_opt(r, f64::from(x) / min_normal) {
                        prop_assert_eq!(f64::from(y[0]), n * min_normal, "{} {}: {:e}", fmt.spec(), r, x);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 8. Shapes, layouts, dtypes, backends
// ---------------------------------------------------------------------------

#[test]
fn empty_tensors_keep_their_shape() {
    let mut formats = every_family();
    formats.push(bfp(8, 8, Block::Dims(vec![1]), false));
    for fmt in formats {
        for shape in [vec![0i64], vec![3, 0]] {
            for r in ALL {
                for b in [Backend::Auto, Backend::Native, Backend::Tensor] {
                    let x = Tensor::zeros(&shape, (Kind::Float, Device::Cpu));
                    let y = fmt
                        .quantizer(r, b)
                        .quantize(&x, &mut QuantRng::new(0))
                        .unwrap();
                    assert_eq!(y.size(), shape, "{} {r} {b}", fmt.spec());
                    assert_eq!(y.kind(), Kind::Float);
                }
            }
        }
    }
}

#[test]
fn non_contiguous_inputs_match_their_contiguous_copies() {
    let mut data = Data(3);
    let base = tensor(&data.normal(7 * 10, 2.0), &[7, 10]);
    let views = [
        ("transposed", base.tr()),
        ("strided slice", base.slice(1, 1, 10, 3)),
        ("row slice", base.narrow(0, 2, 4).tr()),
    ];
    let mut formats = every_family();
    formats.extend([
        bfp(6, 8, Block::Dims(vec![1]), true),
        bfp(6, 8, Block::Dims(vec![0, 1]), true),
        bfp(6, 8, Block::Chunks { size: 3, dim: 0 }, false),
    ]);
    for (name, view) in &views {
        assert!(!view.is_contiguous(), "{name}");
        let copy = view.contiguous();
        for fmt in &formats {
            for r in ALL {
                for b in [Backend::Auto, Backend::Native, Backend::Tensor] {
                    let q = fmt.quantizer(r, b);
                    let y = q.quantize(view, &mut QuantRng::new(4)).unwrap();
                    let z = q.quantize(&copy, &mut QuantRng::new(4)).unwrap();
                    assert_eq!(y.size(), view.size());
                    assert_same_slices(
                        &values(&y),
                        &values(&z),
                        &format!("{name} {} {r} {b}", fmt.spec()),
                    );
                }
            }
        }
    }
    // Blocks follow the logical layout: per-row blocks of the transpose are
    // per-column blocks of the original.
    for r in Rounding::DETERMINISTIC {
        let rows = bfp(5, 8, Block::Dims(vec![0]), false).quantizer(r, Backend::Auto);
        let cols = bfp(5, 8, Block::Dims(vec![1]), false).quantizer(r, Backend::Auto);
        let y = rows.quantize(&base.tr(), &mut QuantRng::new(0)).unwrap();
        let z = cols.quantize(&base, &mut QuantRng::new(0)).unwrap().tr();
        assert_same_slices(&values(&y), &values(&z), &format!("rows of transpose {r}"));
    }
}

#[test]
fn dtypes_are_preserved() {
    let mut data = Data(8);
    let x32 = tensor(&data.normal(64, 4.0), &[8, 8]);
    for fmt in every_family() {
        for r in ALL {
            let reference = |x: &Tensor| {
                fmt.quantizer(r, Backend::Auto)
                    .quantize(&x.to_kind(Kind::Float), &mut QuantRng::new(6))
                    .unwrap()
            };
            for kind in [Kind::Double, Kind::Half, Kind::BFloat16] {
                let x = x32.to_kind(kind);
                for b in [Backend::Tensor, Backend::Auto] {
                    let y = fmt
                        .quantizer(r, b)
                        .quantize(&x, &mut QuantRng::new(6))
                        .unwrap();
                    assert_eq!(y.kind(), kind, "{} {r} {b}", fmt.spec());
                    assert_eq!(y.size(), x.size());
                    let want = reference(&x).to_kind(kind);
                    let what = format!("{} {r} {b} {kind:?}", fmt.spec());
                    if kind == Kind::Double {
                        let (a, w) = (values_f64(&y), values_f64(&want));
                        for (u, v) in a.iter().zip(&w) {
                            assert!(same_f64(*u, *v), "{what}: {u:e} vs {v:e}");
                        }
                    } else {
                        assert_same_slices(&values(&y), &values(&want), &what);
                    }
                }
                let err = fmt
                    .quantizer(r, Backend::Native)
                    .quantize(&x, &mut QuantRng::new(6))
                    .unwrap_err();
                assert!(
                    matches!(
                        err,
                        Error::Unsupported {
                            backend: Backend::Native,
                            ..
                        }
                    ),
                    "{err}"
                );
            }
        }
    }
}

#[test]
fn integer_tensors_are_rejected() {
    for fmt in every_family() {
        for b in [Backend::Auto, Backend::Native, Backend::Tensor] {
            for x in [
                Tensor::from_slice(&[1i64, 2, 3]),
                Tensor::from_slice(&[1i32, 2]),
                Tensor::from_slice(&[1u8]),
            ] {
                let err = fmt
                    .quantizer(NearestEven, b)
                    .quantize(&x, &mut QuantRng::new(0))
                    .unwrap_err();
                assert!(
                    matches!(err, Error::Unsupported { .. }),
                    "{} {b}: {err}",
                    fmt.spec()
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 9. bfp blocks
// ---------------------------------------------------------------------------

/// Checks every output of a bfp quantization against its block's grid, with
/// the block maxima computed here.
fn check_block_grid(fmt: &Fmt, x: &[f32], shape: &[usize], block: &Block) {
    let Fmt::Bfp(p) = fmt else { unreachable!() };
    let f = p.math();
    let ids = block_ids(block, shape);
    let mut max_abs: HashMap<usize, f64> = HashMap::new();
    for (&v, &b) in x.iter().zip(&ids) {
        let m = max_abs.entry(b).or_insert(0.0);
        if !v.is_nan() && f64::from(v).abs() > *m {
            *m = f64::from(v).abs();
        }
    }
    let (ilo_any, ihi) = f.int_range();
    for r in ALL {
        let y = run(fmt, r, Backend::Auto, x, shape, 8);
        for i in 0..x.len() {
            if x[i].is_nan() {
                assert!(y[i].is_nan(), "{} {r}: NaN -> {:e}", fmt.spec(), y[i]);
                continue;
            }
            let e = f.shared_exponent(max_abs[&ids[i]]);
            let k = f.step_exponent(e);
            // The lowest value must be an f32: at E = 127 the range is
            // symmetric.
            let ilo = if f32_holds(ilo_any * p2(k)) {
                ilo_any
            } else {
                -ihi
            };
            let n = f64::from(y[i]) / p2(k);
            let ctx = format!(
                "{} {r} shape {shape:?}: x[{i}] = {:e} -> {:e}, block max {:e}, E = {e}",
                fmt.spec(),
                x[i],
                y[i],
                max_abs[&ids[i]]
            );
            assert!(
                n.fract() == 0.0 && n >= ilo && n <= ihi,
                "off the block grid: {ctx}"
            );
            if let Some(want) = ref_round_opt(r, f64::from(x[i]) / p2(k)) {
                assert_eq!(n, want.clamp(ilo, ihi), "{ctx}");
            }
        }
    }
}

#[test]
fn bfp_block_kinds_use_each_blocks_own_exponent() {
    let mut data = Data(17);
    // Rows and columns of very different magnitudes.
    let shape = [5usize, 7];
    let mut x = data.normal(35, 1.0);
    for (i, v) in x.iter_mut().enumerate() {
        *v = (f64::from(*v) * p2((i / 7) as i32 * 3 - (i % 7) as i32)) as f32;
    }
    for (block, spec_block) in [
        (Block::Dims(vec![0]), Block::Dims(vec![0])),
        (Block::Dims(vec![1]), Block::Dims(vec![1])),
        (Block::Dims(vec![0, 1]), Block::Dims(vec![0, 1])),
        (
            Block::Chunks { size: 3, dim: 1 },
            Block::Chunks { size: 3, dim: 1 },
        ),
        (
            Block::Chunks { size: 2, dim: 0 },
            Block::Chunks { size: 2, dim: 0 },
        ),
        (
            Block::Chunks { size: 7, dim: 1 },
            Block::Chunks { size: 7, dim: 1 },
        ),
        (Block::Tensor, Block::Tensor),
    ] {
        for symmetric in [false, true] {
            let fmt = bfp(5, 8, spec_block.clone(), symmetric);
            check_block_grid(&fmt, &x, &shape, &block);
        }
    }
    // 3-D with dims = [0, 2] and chunks along the last dim (short tail).
    let shape = [3usize, 4, 5];
    let mut x = data.normal(60, 1.0);
    for (i, v) in x.iter_mut().enumerate() {
        *v = (f64::from(*v) * p2((i % 5) as i32 * 2 - (i / 20) as i32 * 4)) as f32;
    }
    for block in [
        Block::Dims(vec![0, 2]),
        Block::Chunks { size: 2, dim: 2 },
        Block::Chunks { size: 3, dim: 1 },
    ] {
        check_block_grid(&bfp(6, 6, block.clone(), false), &x, &shape, &block);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn bfp_random_blocks_lie_on_their_grids(
        (shape, fmt) in prop::collection::vec(1usize..=6, 1..=4)
            .prop_flat_map(|s| { let r = s.len(); (Just(s), bfp_block_fmt(r)) }),
        raw in prop::collection::vec(any::<(u8, u32, u32)>(), 1296),
    ) {
        let n: usize = shape.iter().product();
        let x = inputs(&fmt, &raw[..n], true);
        let Fmt::Bfp(p) = &fmt else { unreachable!() };
        check_block_grid(&fmt, &x, &shape, &p.block.clone());
    }
}

#[test]
fn small_block_rules() {
    let mut data = Data(23);
    let spread = |n: usize, cols: usize, data: &mut Data| {
        let mut x = data.normal(n, 1.0);
        for (i, v) in x.iter_mut().enumerate() {
            *v = (f64::from(*v) * p2((i / cols) as i32 * 4)) as f32;
        }
        x
    };
    let with_small = |small: SmallBlock| {
        Fmt::Bfp(BfpP {
            wl: 5,
            ebit: 8,
            block: Block::Dims(vec![0]),
            small: Some(small),
            symmetric: false,
        })
    };
    // The default block with small_block is { dim = 0 }.
    let q: Quantizer = r#"{ format = "bfp", wl = 5, small_block = "fc" }"#.parse().unwrap();
    assert_eq!(q.format().params()["block"].to_string(), "{ dim = 0 }");
    // fc: one exponent for 1-D, per dim 0 for 2-D.
    let fc = with_small(SmallBlock::Fc);
    let x = spread(12, 4, &mut data);
    check_block_grid(&fc, &x, &[12], &Block::Tensor);
    check_block_grid(&fc, &x, &[3, 4], &Block::Dims(vec![0]));
    // conv: one exponent up to 2-D, per dim 0 for 4-D.
    let conv = with_small(SmallBlock::Conv);
    check_block_grid(&conv, &x, &[12], &Block::Tensor);
    check_block_grid(&conv, &x, &[3, 4], &Block::Tensor);
    let x4 = spread(3 * 2 * 2 * 2, 8, &mut data);
    check_block_grid(&conv, &x4, &[3, 2, 2, 2], &Block::Dims(vec![0]));
    check_block_grid(&conv, &x4, &[3, 4, 2], &Block::Dims(vec![0]));
    // none: one exponent for up to 4-D.
    let none = with_small(SmallBlock::None);
    check_block_grid(&none, &x4, &[3, 2, 2, 2], &Block::Tensor);
    // The two rules really differ on a 2-D tensor with uneven rows.
    let a = run(&fc, NearestEven, Backend::Auto, &x, &[3, 4], 0);
    let b = run(&conv, NearestEven, Backend::Auto, &x, &[3, 4], 0);
    assert!(
        a.iter().zip(&b).any(|(u, v)| u != v),
        "fc and conv agree on a 2-D tensor"
    );
}

#[test]
fn block_dimension_beyond_rank_is_an_error() {
    for (block, dim) in [
        (Block::Dims(vec![2]), 2),
        (Block::Dims(vec![0, 3]), 3),
        (Block::Chunks { size: 4, dim: 5 }, 5),
    ] {
        let fmt = bfp(8, 8, block, false);
        for r in [NearestEven, Rounding::STOCHASTIC] {
            for b in [Backend::Auto, Backend::Native, Backend::Tensor] {
                let x = tensor(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
                let err = fmt
                    .quantizer(r, b)
                    .quantize(&x, &mut QuantRng::new(0))
                    .unwrap_err();
                let msg = err.to_string();
                assert!(matches!(err, Error::Unsupported { .. }), "{msg}");
                assert!(
                    msg.contains(&format!("dimension {dim}")),
                    "{} {b}: {msg}",
                    fmt.spec()
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Format math, checked against independent formulas
// ---------------------------------------------------------------------------

/// The largest finite value of a float format that f32 can hold, from the
/// encoding: IEEE reserves the top exponent, "fn" only the all-ones mantissa
/// of the top binade; binades beyond f32 (exp = 8 without IEEE specials) are
/// out of reach, leaving the full binade 127.
fn independent_max(exp: u32, man: u32, specials: Specials) -> f64 {
    let bias = (1i32 << (exp - 1)) - 1;
    let top_field = (1i32 << exp) - 1;
    let man = man as i32;
    match specials {
        Specials::Ieee => p2(top_field - 1 - bias) * (2.0 - p2(-man)),
        _ if top_field - bias > 127 => p2(127) * (2.0 - p2(-man)),
        Specials::None => p2(top_field - bias) * (2.0 - p2(-man)),
        Specials::Fn => p2(top_field - bias) * (2.0 - p2(1 - man)),
    }
}

#[test]
fn format_math_matches_known_values() {
    let f = FixedPoint::new(8, 6, true, false).unwrap();
    assert_eq!(
        (f.step(), f.min(), f.max(), f.int_range()),
        (1.0 / 64.0, -2.0, 127.0 / 64.0, (-128.0, 127.0))
    );
    let f = FixedPoint::new(8, 6, true, true).unwrap();
    assert_eq!((f.min(), f.int_range()), (-127.0 / 64.0, (-127.0, 127.0)));
    assert!(FixedPoint::new(25, 0, true, false).is_err());
    assert!(FixedPoint::new(8, 150, true, false).is_err());
    assert!(FixedPoint::new(8, -121, true, false).is_err());

    let ff = |e, m, s| FloatFormat::new(e, m, true, s, Overflow::Saturate).unwrap();
    let table = [
        (ff(5, 10, Specials::Ieee), 65504.0, -14, 15, p2(-24)),
        (
            ff(8, 7, Specials::Ieee),
            (2.0 - p2(-7)) * p2(127),
            -126,
            127,
            p2(-133),
        ),
        (ff(4, 3, Specials::Fn), 448.0, -6, 8, p2(-9)),
        (ff(5, 2, Specials::Ieee), 57344.0, -14, 15, p2(-16)),
        (ff(4, 3, Specials::Ieee), 240.0, -6, 7, p2(-9)),
        (ff(4, 3, Specials::None), 480.0, -6, 8, p2(-9)),
        (
            ff(8, 23, Specials::Ieee),
            f64::from(f32::MAX),
            -126,
            127,
            p2(-149),
        ),
        (
            ff(8, 23, Specials::None),
            f64::from(f32::MAX),
            -126,
            128,
            p2(-149),
        ),
        (ff(1, 2, Specials::None), 3.5, 1, 1, 0.5),
    ];
    for (f, max, emin, emax, min_sub) in table {
        let what = format!("{f:?}");
        assert_eq!(f.max_value(), max, "{what}");
        assert_eq!(
            f.max_value(),
            independent_max(f.exp_bits(), f.man_bits(), f.specials()),
            "{what}"
        );
        assert_eq!((f.emin(), f.emax()), (emin, emax), "{what}");
        assert_eq!(f.min_subnormal(), min_sub, "{what}");
        assert_eq!(f.step_exponent(emin), emin - f.man_bits() as i32, "{what}");
        assert_eq!(f.step_exponent(emax), emax - f.man_bits() as i32, "{what}");
        assert_eq!(
            f.step_exponent(emin - 5),
            emin - f.man_bits() as i32,
            "{what}"
        );
        assert_eq!(
            f.step_exponent(emax + 5),
            emax - f.man_bits() as i32,
            "{what}"
        );
    }
    let nosub = FloatFormat::new(5, 2, false, Specials::Ieee, Overflow::Infinity).unwrap();
    assert_eq!(
        (nosub.min_subnormal(), nosub.step_exponent(-20)),
        (p2(-14), -14)
    );
    // Validity rules.
    assert!(FloatFormat::new(1, 2, true, Specials::Ieee, Overflow::Infinity).is_err());
    assert!(FloatFormat::new(4, 0, true, Specials::Fn, Overflow::Saturate).is_err());
    assert!(FloatFormat::new(4, 3, true, Specials::None, Overflow::Nan).is_err());
    assert!(FloatFormat::new(4, 3, true, Specials::Fn, Overflow::Infinity).is_err());
    assert!(FloatFormat::new(9, 3, true, Specials::None, Overflow::Saturate).is_err());
    assert!(FloatFormat::new(4, 24, true, Specials::None, Overflow::Saturate).is_err());
    for spec in [
        r#"{ format = "float", exp = 4, man = 3, specials = "none", overflow = "nan" }"#,
        r#"{ format = "fp8_e4m3", overflow = "infinity" }"#,
        r#"{ format = "bfp", wl = 8, block = { size = 0, dim = 0 } }"#,
    ] {
        assert!(spec.parse::<Quantizer>().is_err(), "{spec}");
    }

    let b = BlockFloat::new(8, 8, Block::Tensor, None, false).unwrap();
    assert_eq!(b.exponent_range(), (-128, 127));
    assert_eq!(
        (
            b.shared_exponent(3.0),
            b.shared_exponent(0.0),
            b.shared_exponent(f64::INFINITY)
        ),
        (1, -128, 127)
    );
    assert_eq!(
        (b.shared_exponent(1e300), b.shared_exponent(1e-300)),
        (127, -128)
    );
    assert_eq!((b.step_exponent(1), b.int_range()), (-5, (-128.0, 127.0)));
    let b = BlockFloat::new(4, 2, Block::Tensor, None, true).unwrap();
    assert_eq!(
        (b.exponent_range(), b.shared_exponent(100.0), b.int_range()),
        ((-2, 1), 1, (-7.0, 7.0))
    );
}

#[test]
// Regression test (was a bug): FloatFormat::max_value (swalp-formats/src/float.rs) drops two mantissa codes from binade 127  for exp = 8 with specials = "fn"; the NaN code lives in binade 128, beyond f32, so binade 127 is  full and the largest value f32 holds is 2^127 * (2 - 2^-man), not 2^127 * (2 - 2^(1-man))
fn float_fn_with_8_exponent_bits_keeps_its_full_top_f32_binade() {
    for man in [1u32, 3, 10, 23] {
        let f = FloatFormat::new(8, man, true, Specials::Fn, Overflow::Saturate).unwrap();
        assert_eq!(
            f.max_value(),
            independent_max(8, man, Specials::Fn),
            "man = {man}"
        );
    }
    // 1.875 * 2^127 is a value of { exp = 8, man = 3, specials = "fn" }
    // (exponent field 254, mantissa 111) and an f32: it must be a fixed point.
    let x = (1.875 * p2(127)) as f32;
    for overflow in [Overflow::Saturate, Overflow::Nan] {
        let fmt = float(8, 3, true, Specials::Fn, overflow);
        for r in Rounding::DETERMINISTIC {
            let y = run(&fmt, r, Backend::Auto, &[x, -x], &[2], 0);
            assert_same_slices(&y, &[x, -x], &format!("{} {r}", fmt.spec()));
        }
    }
}

#[test]
// Regression test (was a bug): bfp with ebit = 8 and symmetric = false (the defaults): at the top block exponent E = 127 the  negative limit -2^(wl-1) * 2^(E-wl+2) = -2^128 is not an f32, so finite inputs that round or saturate  to it (f32::MIN, -3.4e38) and -inf come out as -inf; the kernels' final casts  (kernels/native.rs block(): `(n * pow2(k)) as f32`, and the tensor path's to_kind(Float)) overflow  because BlockFloat allows E = 127 with the integer -2^(wl-1)
fn bfp_negative_limit_at_the_top_exponent_is_finite() {
    for wl in [2u32, 8, 24] {
        let f = BlockFloat::new(wl, 8, Block::Tensor, None, false).unwrap();
        let k = f.step_exponent(127);
        let (_, ihi) = f.int_range();
        for backend in [Backend::Native, Backend::Tensor] {
            let fmt = bfp(wl, 8, Block::Tensor, false);
            for x in [[f32::MIN, 1.0], [f32::NEG_INFINITY, 1.0]] {
                for r in [NearestEven, Down, TowardZero] {
                    let y = run(&fmt, r, backend, &x, &[2], 0);
                    assert!(
                        y[0].is_finite() && f64::from(y[0]) <= -ihi * p2(k),
                        "{} {r} {backend}: {:e} -> {:e}, expected a finite saturated value",
                        fmt.spec(),
                        x[0],
                        y[0]
                    );
                }
            }
        }
    }
}

#[test]
// Regression test (was a bug): the native float kernel returns NaN inputs as they are (swalp-formats/src/kernels/native.rs  float(): `if x == 0.0 || x.is_nan() { return v; }`), so a signalling NaN such as 0x7f800001 stays  signalling, while the tensor kernel (and the native fixed/bfp kernels) go through f64 and quiet it  (0x7fc00001): the backends are not bit-identical on signalling NaN inputs
fn float_native_kernel_quiets_signalling_nans() {
    let x: Vec<f32> = [0x7f80_0001u32, 0xff80_0001, 0x7fa0_0000]
        .iter()
        .map(|&b| f32::from_bits(b))
        .collect();
    for fmt in [
        preset("fp16"),
        preset("fp8_e4m3"),
        float(5, 2, true, Specials::Ieee, Overflow::Infinity),
    ] {
        for r in [NearestEven, Rounding::STOCHASTIC] {
            let native = run(&fmt, r, Backend::Native, &x, &[3], 0);
            let tensor = run(&fmt, r, Backend::Tensor, &x, &[3], 0);
            for i in 0..3 {
                assert_eq!(
                    native[i].to_bits(),
                    tensor[i].to_bits(),
                    "{} {r}: {:#010x} -> native {:#010x}, tensor {:#010x}",
                    fmt.spec(),
                    x[i].to_bits(),
                    native[i].to_bits(),
                    tensor[i].to_bits()
                );
            }
        }
    }
}

#[test]
fn scalar_tensors_keep_their_shape() {
    for fmt in every_family() {
        let per_dim = matches!(&fmt, Fmt::Bfp(p) if p.block != Block::Tensor);
        for r in ALL {
            for b in [Backend::Auto, Backend::Native, Backend::Tensor] {
                let q = fmt.quantizer(r, b);
                let x = Tensor::from(-1.3f32);
                assert_eq!(x.dim(), 0);
                match q.quantize(&x, &mut QuantRng::new(2)) {
                    Ok(y) => {
                        assert!(!per_dim, "{q}: a per-dimension block on a 0-dim tensor");
                        assert_eq!(y.dim(), 0, "{q}");
                        let one = q.quantize(&x.reshape([1]), &mut QuantRng::new(2)).unwrap();
                        assert_same_slices(&values(&y), &values(&one), &format!("{q}"));
                    }
                    Err(e) => {
                        assert!(per_dim, "{q}: {e}");
                        assert!(e.to_string().contains("dimension"), "{q}: {e}");
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A quantizer's printed spec parses back to a quantizer with identical
    /// outputs.
    #[test]
    fn printed_specs_round_trip(
        fmt in prop_oneof![fixed_fmt(), float_fmt(), bfp_tensor_fmt(true), bfp_tensor_fmt(false)],
        r in 0usize..8,
        raw in raw(60),
    ) {
        let q = fmt.quantizer(ALL[r], Backend::Tensor);
        let again: Quantizer = q.to_string().parse().unwrap_or_else(|e| panic!("{q}: {e}"));
        prop_assert_eq!(again.rounding(), ALL[r]);
        prop_assert_eq!(again.backend(), Backend::Tensor);
        prop_assert_eq!(again.to_string(), q.to_string());
        let x = inputs(&fmt, &raw, true);
        let t = tensor(&x, &[x.len()]);
        let a = values(&q.quantize(&t, &mut QuantRng::new(1)).unwrap());
        let b = values(&again.quantize(&t, &mut QuantRng::new(1)).unwrap());
        assert_same_slices(&a, &b, &q.to_string());
    }
}
