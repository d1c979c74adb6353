//! End-to-end tests of the `swalp-cli` binary: every error path exits 2 with
//! a one-line message naming the culprit and leaves IN intact and OUT absent;
//! the happy paths produce exactly the expected files.
//!
//! Test files are written and read by hand here (not through tch), so the
//! tests also check that the output is plain NumPy / safetensors.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};
use tempfile::TempDir;

const FIXED_8_6: &str = r#"{ format = "fixed", wl = 8, fl = 6 }"#;

// ---------------------------------------------------------------- running

fn swalp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_swalp-cli"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the swalp-cli binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstderr: {}",
        out.status.code(),
        stderr(out)
    );
}

/// A scratch directory with an input file, to check that a failing command
/// leaves it as it was.
struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn put(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, bytes).expect("write test input");
        path
    }

    fn listing(&self) -> BTreeSet<String> {
        fs::read_dir(self.dir.path())
            .expect("list temp dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// Runs `quantize` with `spec` (plus `extra` arguments) on IN and OUT and
    /// asserts a usage error mentioning every needle, with IN unchanged, OUT
    /// not created and no file left behind.
    fn assert_quantize_fails(
        &self,
        spec: &str,
        extra: &[&str],
        input: &Path,
        output: &Path,
        needles: &[&str],
    ) -> String {
        let before = fs::read(input).ok();
        let out_before = fs::read(output).ok();
        let listing = self.listing();
        let mut args = vec!["quantize", "--spec", spec];
        args.extend_from_slice(extra);
        args.push(path_str(input));
        args.push(path_str(output));
        let out = swalp(&args);
        let message = assert_usage_error(&out, needles);
        assert_eq!(fs::read(input).ok(), before, "IN must be unchanged");
        let out_after = fs::read(output).ok();
        assert_eq!(out_after, out_before, "OUT must not be created or changed");
        assert_eq!(self.listing(), listing, "no file may be left behind");
        message
    }
}

/// Asserts exit status 2 and a single `error: ...` line containing every
/// needle; returns the line.
fn assert_usage_error(out: &Output, needles: &[&str]) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for needle in needles {
        assert!(lines[0].contains(needle), "{needle:?} missing from: {err}");
    }
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
    lines[0].to_string()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

// ---------------------------------------------------------------- .npy by hand

fn npy_bytes(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn npy_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    npy_bytes("<f4", shape, &f32_bytes(values))
}

/// Reads an f32 `.npy` file: (shape, values).
fn read_npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = fs::read(path).expect("OUT exists");
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    let header = std::str::from_utf8(&bytes[10..10 + len]).expect("text header");
    assert!(header.contains("'descr': '<f4'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .expect("shape");
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("dimension"))
        .collect();
    (shape, f32s(&bytes[10 + len..]))
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

// ---------------------------------------------------------------- .safetensors by hand

struct St<'a> {
    name: &'a str,
    dtype: &'a str,
    shape: &'a [usize],
    data: Vec<u8>,
}

/// A `.safetensors` file with the tensors' data in the given order.
fn safetensors_bytes(tensors: &[St]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data: Vec<u8> = Vec::new();
    for t in tensors {
        let start = data.len();
        data.extend(&t.data);
        header.insert(
            t.name.into(),
            json!({ "dtype": t.dtype, "shape": t.shape, "data_offsets": [start, data.len()] }),
        );
    }
    let mut header = Value::Object(header).to_string();
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

/// Reads a `.safetensors` file: (name, dtype, shape, data) in file order.
fn read_safetensors(path: &Path) -> Vec<(String, String, Vec<usize>, Vec<u8>)> {
    let bytes = fs::read(path).expect("OUT exists");
    let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&bytes[8..8 + len]).expect("JSON header");
    let data = &bytes[8 + len..];
    let mut tensors: Vec<_> = header
        .iter()
        .filter(|(name, _)| *name != "__metadata__")
        .map(|(name, info)| {
            let offsets: Vec<usize> =
                serde_json::from_value(info["data_offsets"].clone()).expect("offsets");
            let shape: Vec<usize> = serde_json::from_value(info["shape"].clone()).expect("shape");
            let dtype = info["dtype"].as_str().expect("dtype").to_string();
            (
                offsets[0],
                (
                    name.clone(),
                    dtype,
                    shape,
                    data[offsets[0]..offsets[1]].to_vec(),
                ),
            )
        })
        .collect();
    tensors.sort_by_key(|(start, _)| *start);
    tensors.into_iter().map(|(_, t)| t).collect()
}

/// Values spread over [-3, 3), deterministic.
fn ramp(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (i as f32 * 0.618_034).fract() * 6.0 - 3.0)
        .collect()
}

// ================================================================ errors: specs

fn spec_error(spec: &str, needles: &[&str]) -> String {
    let s = Scratch::new();
    let input = s.put("in.npy", &npy_f32(&[2], &[0.3, 5.0]));
    s.assert_quantize_fails(spec, &[], &input, &s.path("out.npy"), needles)
}

#[test]
fn unknown_format_lists_the_known_ones() {
    let msg = spec_error(
        r#"{ format = "fixd", wl = 8, fl = 6 }"#,
        &["\"fixd\"", "known formats"],
    );
    for name in [
        "fixed", "float", "bfp", "bfloat16", "fp16", "fp8_e4m3", "fp8_e5m2",
    ] {
        assert!(msg.contains(name), "{name} missing from {msg}");
    }
}

#[test]
fn unknown_key_suggests_the_closest() {
    spec_error(
        r#"{ format = "fixed", wll = 8, fl = 6 }"#,
        &["`wll`", "did you mean `wl`"],
    );
    spec_error(
        r#"{ format = "fixed", wl = 8, fl = 6, clmap = true }"#,
        &["`clmap`", "did you mean `clamp`"],
    );
    spec_error(r#"{ format = "bfp", wl = 8, block = { dm = 0 } }"#, &["dm"]);
}

#[test]
fn out_of_range_value_names_key_value_and_range() {
    spec_error(
        r#"{ format = "fixed", wl = 40, fl = 6 }"#,
        &["40", "`wl`", "2..=24"],
    );
}

#[test]
fn wrong_type_names_key_and_value() {
    spec_error(
        r#"{ format = "fixed", wl = "8", fl = 6 }"#,
        &["\"8\"", "`wl`"],
    );
    spec_error(
        r#"{ format = "fixed", wl = 8, fl = 6, clamp = 1 }"#,
        &["`clamp`", "true or false"],
    );
}

#[test]
fn bad_rounding_lists_the_modes() {
    spec_error(
        r#"{ format = "fixed", wl = 8, fl = 6, rounding = "nearest" }"#,
        &["\"nearest\"", "rounding", "nearest-even", "stochastic_bits"],
    );
}

#[test]
fn missing_required_key_is_named() {
    spec_error(r#"{ format = "fixed", wl = 8 }"#, &["`fl`"]);
}

#[test]
fn malformed_spec_text_is_quoted() {
    spec_error(
        r#"{ format = fixed, wl = 8 }"#,
        &["format = fixed", "TOML inline table"],
    );
}

#[test]
fn bad_backend_in_spec_is_named() {
    spec_error(
        r#"{ format = "fixed", wl = 8, fl = 6, backend = "gpu" }"#,
        &["\"gpu\"", "backend", "native"],
    );
}

// ================================================================ errors: files

#[test]
fn missing_input_is_named() {
    let s = Scratch::new();
    let input = s.path("absent.npy");
    s.assert_quantize_fails(
        FIXED_8_6,
        &[],
        &input,
        &s.path("out.npy"),
        &["absent.npy", "no such file"],
    );
}

#[test]
fn input_with_bad_extension_is_refused() {
    let s = Scratch::new();
    let input = s.put("in.txt", &npy_f32(&[1], &[0.5]));
    s.assert_quantize_fails(
        FIXED_8_6,
        &[],
        &input,
        &s.path("out.npy"),
        &["in.txt", "IN", ".npy or .safetensors"],
    );
}

#[test]
fn output_with_bad_extension_is_refused() {
    let s = Scratch::new();
    let input = s.put("in.npy", &npy_f32(&[1], &[0.5]));
    s.assert_quantize_fails(
        FIXED_8_6,
        &[],
        &input,
        &s.path("out.npz"),
        &["out.npz", "OUT", ".npy or .safetensors"],
    );
}

#[test]
fn npy_to_safetensors_is_refused() {
    let s = Scratch::new();
    let input = s.put("in.npy", &npy_f32(&[1], &[0.5]));
    s.assert_quantize_fails(
        FIXED_8_6,
        &[],
        &input,
        &s.path("out.safetensors"),
        &["in.npy", "out.safetensors", "extension"],
    );
}

#[test]
fn truncated_npy_is_refused() {
    let s = Scratch::new();
    let full = npy_f32(&[64], &ramp(64));
    // Truncated in the data and in the header.
    for (name, cut) in [
        ("data.npy", full.len() - 5),
        ("header.npy", 20),
        ("magic.npy", 3),
    ] {
        let input = s.put(name, &full[..cut]);
        s.assert_quantize_fails(
            FIXED_8_6,
            &[],
            &input,
            &s.path("out.npy"),
            &[name, "cannot read IN"],
        );
    }
    let input = s.put("short.npy", &full[..full.len() - 5]);
    s.assert_quantize_fails(FIXED_8_6, &[], &input, &s.path("out.npy"), &["truncated"]);
}

#[test]
fn corrupt_npy_header_is_refused() {
    let s = Scratch::new();
    let input = s.put("garbage.npy", b"this is not a numpy file at all");
    s.assert_quantize_fails(
        FIXED_8_6,
        &[],
        &input,
        &s.path("out.npy"),
        &["garbage.npy", "not a .npy file"],
    );
    let huge = npy_bytes("<f4", &[1 << 40, 1 << 40], &[0; 16]);
    let input = s.put("huge.npy", &huge);
    s.assert_quantize_fails(FIXED_8_6, &[], &input, &s.path("out.npy"), &["huge.npy"]);
}

#[test]
fn corrupt_safetensors_is_refused() {
    let s = Scratch::new();
    let good = safetensors_bytes(&[St {
        name: "w",
        dtype: "F32",
        shape: &[4],
        data: f32_bytes(&[0.1, 0.2, 0.3, 0.4]),
    }]);
    let cases: [(&str, Vec<u8>); 4] = [
        (
            "garbage.safetensors",
            b"\xff\xff\xff\xff not safetensors".to_vec(),
        ),
        ("short.safetensors", good[..good.len() - 3].to_vec()),
        ("tiny.safetensors", good[..5].to_vec()),
        ("json.safetensors", {
            let mut b = good.clone();
            b[8] = b'[';
            b
        }),
    ];
    for (name, bytes) in cases {
        let input = s.put(name, &bytes);
        s.assert_quantize_fails(
            FIXED_8_6,
            &[],
            &input,
            &s.path("out.safetensors"),
            &[name, "cannot read IN"],
        );
    }
}

#[test]
fn integer_tensors_are_refused_naming_tensor_and_dtype() {
    let s = Scratch::new();
    let input = s.put(
        "ints.npy",
        &npy_bytes(
            "<i8",
            &[2],
            &[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0],
        ),
    );
    s.assert_quantize_fails(
        FIXED_8_6,
        &[],
        &input,
        &s.path("out.npy"),
        &["ints.npy", "i64", "floating-point"],
    );

    let input = s.put(
        "mixed.safetensors",
        &safetensors_bytes(&[
            St {
                name: "weight",
                dtype: "F32",
                shape: &[2],
                data: f32_bytes(&[0.1, 0.2]),
            },
            St {
                name: "steps",
                dtype: "I32",
                shape: &[1],
                data: vec![7, 0, 0, 0],
            },
        ]),
    );
    s.assert_quantize_fails(
        FIXED_8_6,
        &[],
        &input,
        &s.path("out.safetensors"),
        &["\"steps\"", "mixed.safetensors", "i32"],
    );
    let input = s.put("bools.npy", &npy_bytes("|b1", &[3], &[1, 0, 1]));
    s.assert_quantize_fails(
        FIXED_8_6,
        &[],
        &input,
        &s.path("out.npy"),
        &["bools.npy", "bool"],
    );
}

#[test]
fn output_equal_to_input_is_refused() {
    let s = Scratch::new();
    let input = s.put("in.npy", &npy_f32(&[2], &[0.3, 5.0]));
    s.assert_quantize_fails(
        FIXED_8_6,
        &[],
        &input,
        &input,
        &["in.npy", "same file as IN"],
    );
    // Spelled differently.
    fs::create_dir(s.path("sub")).expect("mkdir");
    let roundabout = s.dir.path().join("sub").join("..").join("in.npy");
    s.assert_quantize_fails(FIXED_8_6, &[], &input, &roundabout, &["same file as IN"]);
    #[cfg(unix)]
    {
        let link = s.path("link.npy");
        std::os::unix::fs::symlink(&input, &link).expect("symlink");
        s.assert_quantize_fails(
            FIXED_8_6,
            &[],
            &input,
            &link,
            &["link.npy", "same file as IN"],
        );
        let hard = s.path("hard.npy");
        fs::hard_link(&input, &hard).expect("hard link");
        s.assert_quantize_fails(
            FIXED_8_6,
            &[],
            &input,
            &hard,
            &["hard.npy", "same file as IN"],
        );
    }
}

#[test]
fn missing_output_directory_is_named() {
    let s = Scratch::new();
    let input = s.put("in.npy", &npy_f32(&[2], &[0.3, 5.0]));
    let output = s.path("nowhere").join("out.npy");
    s.assert_quantize_fails(
        FIXED_8_6,
        &[],
        &input,
        &output,
        &["nowhere", "does not exist"],
    );
}

#[test]
fn output_that_is_a_directory_is_refused() {
    let s = Scratch::new();
    let input = s.put("in.npy", &npy_f32(&[2], &[0.3, 5.0]));
    fs::create_dir(s.path("dir.npy")).expect("mkdir");
    s.assert_quantize_fails(
        FIXED_8_6,
        &[],
        &input,
        &s.path("dir.npy"),
        &["dir.npy", "is a directory"],
    );
}

#[test]
fn failed_run_keeps_an_existing_output() {
    let s = Scratch::new();
    let input = s.put("in.npy", &npy_bytes("<i4", &[1], &[1, 0, 0, 0]));
    let output = s.put("out.npy", b"previous contents");
    let out = swalp(&[
        "quantize",
        "--spec",
        FIXED_8_6,
        path_str(&input),
        path_str(&output),
    ]);
    assert_usage_error(&out, &["i32"]);
    assert_eq!(fs::read(&output).expect("OUT kept"), b"previous contents");
}

#[test]
fn a_killed_quantizes_temporary_file_is_removed_by_the_next_one() {
    let s = Scratch::new();
    let input = s.put("in.npy", &npy_f32(&[3], &[0.3, 5.0, -3.0]));
    let output = s.path("out.npy");
    // Debris of a killed quantize to OUT (no process holds it, PID in the
    // name long gone), a temporary file being written right now (held by
    // this process), another OUT's temporary file and an unrelated hidden
    // file.
    let stale = s.put(".out.npy.swalp-tmp-4194303-Ab12Cd", b"debris");
    let live = swalp_cli::atomic::TempFile::create_for(&output).expect("live temporary file");
    let other = s.put(".other.npy.swalp-tmp-Ab12Cd", b"other");
    let hidden = s.put(".out.npy.keep", b"mine");
    let out = swalp(&[
        "quantize",
        "--spec",
        FIXED_8_6,
        path_str(&input),
        path_str(&output),
    ]);
    assert_success(&out);
    assert_eq!(read_npy_f32(&output).1, vec![0.296875, 1.984375, -2.0]);
    assert!(!stale.exists(), "the killed quantize's file is removed");
    assert!(live.path().exists(), "a running writer's file is kept");
    assert_eq!(fs::read(&other).expect("kept"), b"other");
    assert_eq!(fs::read(&hidden).expect("kept"), b"mine");
}

#[test]
fn cuda_without_a_gpu_is_a_usage_error() {
    let s = Scratch::new();
    let input = s.put("in.npy", &npy_f32(&[3], &[0.3, 5.0, -3.0]));
    let output = s.path("out.npy");
    let args = [
        "quantize",
        "--spec",
        FIXED_8_6,
        "--device",
        "cuda",
        path_str(&input),
        path_str(&output),
    ];
    let out = swalp(&args);
    if out.status.success() {
        // A machine with CUDA: the result must match the CPU's.
        assert_eq!(read_npy_f32(&output).1, vec![0.296875, 1.984375, -2.0]);
    } else {
        s.assert_quantize_fails(
            FIXED_8_6,
            &["--device", "cuda"],
            &input,
            &output,
            &["--device cuda", "CUDA"],
        );
    }
}

#[test]
fn several_specs_need_demo() {
    let s = Scratch::new();
    let input = s.put("in.npy", &npy_f32(&[1], &[0.3]));
    s.assert_quantize_fails(
        FIXED_8_6,
        &["--spec", FIXED_8_6],
        &input,
        &s.path("out.npy"),
        &["exactly one --spec"],
    );
}

#[test]
fn clap_usage_errors_exit_2() {
    for args in [
        vec!["quantize"],
        vec!["quantize", "--spec", FIXED_8_6, "in.npy"],
        vec![
            "quantize",
            "--elements",
            "10",
            "--spec",
            FIXED_8_6,
            "a.npy",
            "b.npy",
        ],
        vec!["quantize", "--demo", "a.npy", "b.npy"],
        vec!["quantize", "--demo", "--backend", "fast"],
        vec!["quantize", "--demo", "--elements", "0"],
        vec!["frobnicate"],
    ] {
        let out = swalp(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    assert_success(&swalp(&["--help"]));
    assert_success(&swalp(&["quantize", "--help"]));
}

// ================================================================ happy paths

#[test]
fn npy_round_trip_gives_hand_computed_values() {
    let s = Scratch::new();
    let values = [0.3, 5.0, -3.0, 0.0, -0.3, 0.0078125, 1.984375];
    let input = s.put("in.npy", &npy_f32(&[values.len()], &values));
    let before = fs::read(&input).expect("IN");
    let output = s.path("out.npy");
    let out = swalp(&[
        "quantize",
        "--spec",
        FIXED_8_6,
        path_str(&input),
        path_str(&output),
    ]);
    assert_success(&out);
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        stderr(&out)
    );
    // Step 2^-6, range [-2, 127/64]: 0.3 → 19/64, 5 → 127/64 (saturated), -3 → -2,
    // 1/128 is a tie between 0 and 1/64 → even 0.
    let (shape, got) = read_npy_f32(&output);
    assert_eq!(shape, vec![values.len()]);
    assert_eq!(
        got,
        vec![0.296875, 1.984375, -2.0, 0.0, -0.296875, 0.0, 1.984375]
    );
    assert_eq!(fs::read(&input).expect("IN"), before);
    assert_eq!(s.listing(), ["in.npy", "out.npy"].map(String::from).into());
}

#[test]
fn shapes_are_kept() {
    let s = Scratch::new();
    let input = s.put(
        "in.npy",
        &npy_f32(&[2, 3], &[0.3, 5.0, -3.0, 0.1, 0.2, 0.25]),
    );
    let output = s.path("out.npy");
    assert_success(&swalp(&[
        "quantize",
        "--spec",
        FIXED_8_6,
        path_str(&input),
        path_str(&output),
    ]));
    let (shape, got) = read_npy_f32(&output);
    assert_eq!(shape, vec![2, 3]);
    assert_eq!(got, vec![0.296875, 1.984375, -2.0, 0.09375, 0.203125, 0.25]);
}

#[test]
fn existing_output_is_replaced() {
    let s = Scratch::new();
    let input = s.put("in.npy", &npy_f32(&[1], &[0.3]));
    let output = s.put("out.npy", b"old");
    assert_success(&swalp(&[
        "quantize",
        "--spec",
        FIXED_8_6,
        path_str(&input),
        path_str(&output),
    ]));
    assert_eq!(read_npy_f32(&output).1, vec![0.296875]);
}

#[test]
fn safetensors_tensors_are_each_quantized_with_names_kept() {
    let s = Scratch::new();
    let input = s.put(
        "model.safetensors",
        &safetensors_bytes(&[
            St {
                name: "layer.weight",
                dtype: "F32",
                shape: &[2, 2],
                data: f32_bytes(&[0.3, 5.0, -3.0, 0.1]),
            },
            St {
                name: "layer.bias",
                dtype: "F32",
                shape: &[3],
                data: f32_bytes(&[-0.3, 0.25, 1.0]),
            },
        ]),
    );
    let output = s.path("q.safetensors");
    assert_success(&swalp(&[
        "quantize",
        "--spec",
        FIXED_8_6,
        path_str(&input),
        path_str(&output),
    ]));
    let mut got = read_safetensors(&output);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].0.as_str(), got[0].1.as_str(), got[0].2.as_slice()),
        ("layer.bias", "F32", &[3][..])
    );
    assert_eq!(f32s(&got[0].3), vec![-0.296875, 0.25, 1.0]);
    assert_eq!(
        (got[1].0.as_str(), got[1].1.as_str(), got[1].2.as_slice()),
        ("layer.weight", "F32", &[2, 2][..])
    );
    assert_eq!(f32s(&got[1].3), vec![0.296875, 1.984375, -2.0, 0.09375]);
}

#[test]
fn safetensors_streams_follow_file_order() {
    // Stochastic rounding: the first tensor in the file takes the first
    // stream, whatever its name, so it rounds exactly as a lone tensor does.
    let s = Scratch::new();
    let data = ramp(256);
    let spec = r#"{ format = "fixed", wl = 8, fl = 4, rounding = "stochastic" }"#;
    let lone = s.put(
        "lone.safetensors",
        &safetensors_bytes(&[St {
            name: "z",
            dtype: "F32",
            shape: &[256],
            data: f32_bytes(&data),
        }]),
    );
    let pair = s.put(
        "pair.safetensors",
        &safetensors_bytes(&[
            St {
                name: "z",
                dtype: "F32",
                shape: &[256],
                data: f32_bytes(&data),
            },
            St {
                name: "a",
                dtype: "F32",
                shape: &[256],
                data: f32_bytes(&data),
            },
        ]),
    );
    for (input, output) in [(&lone, "lone-q.safetensors"), (&pair, "pair-q.safetensors")] {
        assert_success(&swalp(&[
            "quantize",
            "--spec",
            spec,
            "--seed",
            "5",
            path_str(input),
            path_str(&s.path(output)),
        ]));
    }
    let lone = read_safetensors(&s.path("lone-q.safetensors"));
    let pair = read_safetensors(&s.path("pair-q.safetensors"));
    let by_name = |name: &str| {
        pair.iter()
            .find(|t| t.0 == name)
            .map(|t| t.3.clone())
            .expect("tensor")
    };
    assert_eq!(
        by_name("z"),
        lone[0].3,
        "first tensor in the file takes the first stream"
    );
    assert_ne!(
        by_name("a"),
        by_name("z"),
        "the second tensor takes another stream"
    );
}

#[test]
fn f64_input_is_converted_to_f32_with_a_warning() {
    let s = Scratch::new();
    let data: Vec<u8> = [0.3f64, 5.0, -3.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let input = s.put("in.npy", &npy_bytes("<f8", &[3], &data));
    let output = s.path("out.npy");
    let out = swalp(&[
        "quantize",
        "--spec",
        FIXED_8_6,
        path_str(&input),
        path_str(&output),
    ]);
    assert_success(&out);
    let err = stderr(&out);
    assert!(
        err.starts_with("warning: ")
            && err.contains("in.npy")
            && err.contains("f64")
            && err.contains("f32"),
        "{err}"
    );
    assert_eq!(read_npy_f32(&output).1, vec![0.296875, 1.984375, -2.0]);
}

#[test]
fn half_precision_safetensors_are_converted_naming_the_tensor() {
    let s = Scratch::new();
    // 0.25 in f16 is 0x3400, in bf16 0x3E80.
    let input = s.put(
        "half.safetensors",
        &safetensors_bytes(&[
            St {
                name: "h",
                dtype: "F16",
                shape: &[1],
                data: vec![0x00, 0x34],
            },
            St {
                name: "b",
                dtype: "BF16",
                shape: &[1],
                data: vec![0x80, 0x3E],
            },
        ]),
    );
    let output = s.path("out.safetensors");
    let out = swalp(&[
        "quantize",
        "--spec",
        FIXED_8_6,
        path_str(&input),
        path_str(&output),
    ]);
    assert_success(&out);
    let err = stderr(&out);
    assert!(err.contains("\"h\"") && err.contains("f16"), "{err}");
    assert!(err.contains("\"b\"") && err.contains("bf16"), "{err}");
    for (_, dtype, _, data) in read_safetensors(&output) {
        assert_eq!((dtype.as_str(), f32s(&data)), ("F32", vec![0.25]));
    }
}

#[test]
fn stochastic_rounding_is_reproducible_by_seed() {
    let s = Scratch::new();
    let input = s.put("in.npy", &npy_f32(&[1000], &ramp(1000)));
    let spec = r#"{ format = "fixed", wl = 8, fl = 4, rounding = "stochastic" }"#;
    let run = |seed: &str, name: &str| {
        let output = s.path(name);
        assert_success(&swalp(&[
            "quantize",
            "--spec",
            spec,
            "--seed",
            seed,
            path_str(&input),
            path_str(&output),
        ]));
        fs::read(output).expect("OUT")
    };
    let a = run("7", "a.npy");
    let b = run("7", "b.npy");
    let c = run("8", "c.npy");
    assert_eq!(a, b, "same seed, same bytes");
    assert_ne!(a, c, "another seed, other roundings");
}

#[test]
fn native_and_tensor_backends_agree() {
    let s = Scratch::new();
    let input = s.put("in.npy", &npy_f32(&[1000], &ramp(1000)));
    for spec in [
        r#"{ format = "fixed", wl = 8, fl = 5 }"#,
        r#"{ format = "float", exp = 5, man = 2 }"#,
        r#"{ format = "fixed", wl = 6, fl = 3, rounding = "stochastic" }"#,
    ] {
        let mut outputs = Vec::new();
        for backend in ["native", "tensor"] {
            let output = s.path(&format!("{backend}.npy"));
            let out = swalp(&[
                "quantize",
                "--spec",
                spec,
                "--backend",
                backend,
                path_str(&input),
                path_str(&output),
            ]);
            assert_success(&out);
            outputs.push(fs::read(&output).expect("OUT"));
        }
        assert_eq!(outputs[0], outputs[1], "{spec}");
    }
}

// ================================================================ formats and demo

/// The built-in formats and the plugins linked by the default feature.
const BUILT_IN: [&str; 10] = [
    "fixed", "float", "bfp", "mx", "bfloat16", "fp16", "fp8_e4m3", "fp8_e5m2", "posit", "int",
];

#[test]
fn formats_lists_every_built_in_format_with_its_keys() {
    let out = swalp(&["formats"]);
    assert_success(&out);
    let text = stdout(&out);
    for name in BUILT_IN {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{name}: "))),
            "{name} missing:\n{text}"
        );
    }
    for key in [
        "wl",
        "fl",
        "clamp",
        "exp",
        "man",
        "specials",
        "overflow",
        "ebit",
        "block",
        "small_block",
        "subnormals",
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("{key} "))),
            "{key} missing:\n{text}"
        );
    }
    for key in [
        "rounding",
        "scale",
        "rht",
        "backend",
        "stochastic_bits",
        "nearest-even",
        "toward-zero",
    ] {
        assert!(text.contains(key), "{key} missing:\n{text}");
    }
}

#[test]
fn formats_json_parses() {
    let out = swalp(&["formats", "--json"]);
    assert_success(&out);
    let formats: Vec<Value> = serde_json::from_slice(&out.stdout).expect("a JSON array");
    let names: Vec<&str> = formats.iter().filter_map(|f| f["name"].as_str()).collect();
    for name in BUILT_IN {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    for f in &formats {
        assert!(f["summary"].is_string());
        for p in f["params"].as_array().expect("params") {
            for field in ["name", "kind", "allowed", "help"] {
                assert!(p[field].is_string(), "{field} of {p}");
            }
            assert!(p.get("default").is_some(), "default of {p}");
        }
    }
    let fixed = formats
        .iter()
        .find(|f| f["name"] == "fixed")
        .expect("fixed");
    let wl = fixed["params"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "wl"))
        .expect("wl");
    assert_eq!(wl["default"], Value::Null, "wl is required");
}

#[test]
fn demo_prints_a_row_per_default_spec() {
    let out = swalp(&["quantize", "--demo"]);
    assert_success(&out);
    let text = stdout(&out);
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("{ format")).collect();
    assert_eq!(rows.len(), 10, "{text}");
    // The built-in formats; plugins are not in the default list.
    for name in &BUILT_IN[..8] {
        assert!(
            rows.iter().any(|r| r.contains(&format!("\"{name}\""))),
            "{name} missing:\n{text}"
        );
    }
    assert!(text.contains("SNR"), "{text}");
}

#[test]
fn demo_with_given_specs_is_reproducible() {
    let args = [
        "quantize",
        "--demo",
        "--spec",
        r#"{ format = "fixed", wl = 8, fl = 5, rounding = "stochastic" }"#,
        "--spec",
        r#"{ format = "bfp", wl = 6, block = { size = 32, dim = 0 } }"#,
        "--seed",
        "3",
        "--elements",
        "1000",
    ];
    let out = swalp(&args);
    assert_success(&out);
    let text = stdout(&out);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("{ format")).count(),
        2,
        "{text}"
    );
    assert!(
        text.starts_with("1000 standard-normal values (seed 3"),
        "{text}"
    );
    assert_eq!(stdout(&swalp(&args)), text);
}

#[test]
fn demo_checks_every_spec_first() {
    let out = swalp(&[
        "quantize",
        "--demo",
        "--spec",
        r#"{ format = "float", exp = 9, man = 2 }"#,
    ]);
    assert_usage_error(&out, &["`exp`", "9"]);
}

#[test]
fn bench_reports_every_format_rounding_and_backend_as_json_lines() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_swalp-cli"))
        .args(["bench", "--elements", "65536", "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The two copies (the warm one is the floor every ratio refers to),
    // then 10 formats × 2 roundings × 2 backends.
    assert_eq!(rows.len(), 2 + 10 * 2 * 2);
    assert_eq!(rows[0]["format"], "copy into a warm buffer");
    assert_eq!(rows[0]["x_copy"], 1.0);
    assert_eq!(rows[1]["format"], "copy into a fresh tensor");
    let floor = rows[0]["ns_per_elem"].as_f64().unwrap();
    for row in &rows {
        assert_eq!(row["elements"], 65536);
        let ns = row["ns_per_elem"].as_f64().unwrap();
        assert!(ns > 0.0);
        assert!((row["x_copy"].as_f64().unwrap() - ns / floor).abs() < 1e-9);
    }
    let formats: Vec<&str> = rows[2..]
        .iter()
        .map(|r| r["format"]["format"].as_str().unwrap())
        .collect();
    for f in ["fixed", "float", "bfp", "mx", "nvfp4", "fp8_scaled"] {
        assert!(formats.contains(&f), "{f} missing");
    }
}

#[test]
fn bench_matmul_times_each_arithmetic_next_to_libtorch() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_swalp-cli"))
        .args(["bench", "--matmul", "--batch", "4", "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The floor, six arithmetics on the f64 kernel, five of them (not
    // bfloat16's range) on the f32 lanes where the CPU has them, one on
    // the tensor implementation.
    let count = |what: &str| rows.iter().filter(|r| r["implementation"] == what).count();
    let lanes =
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
    assert_eq!(count("native f64"), 6);
    assert_eq!(count("native f32 lanes"), if lanes { 5 } else { 0 });
    assert_eq!(
        rows.len(),
        1 + count("native f64") + count("native f32 lanes") + 1
    );
    assert_eq!(rows[0]["implementation"], "libtorch");
    let floor = rows[0]["ns_per_mac"].as_f64().unwrap();
    for row in &rows {
        let ns = row["ns_per_mac"].as_f64().unwrap();
        assert!(ns > 0.0 && ns.is_finite(), "{row}");
        assert!((row["x_libtorch"].as_f64().unwrap() - ns / floor).abs() < 1e-9);
    }
    let tensor: Vec<_> = rows
        .iter()
        .filter(|r| r["implementation"] == "tensor")
        .collect();
    assert_eq!(tensor.len(), 1);
    // --matmul times the CPU only.
    let out = swalp(&["bench", "--matmul", "--device", "cuda"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bench_on_cuda_times_the_cuda_kernels_or_says_there_is_no_gpu() {
    let args = [
        "bench",
        "--device",
        "cuda",
        "--elements",
        "65536",
        "--json",
        "--format",
        r#"{ format = "bfp", wl = 8, block = { dim = 0 } }"#,
    ];
    if !swalp_core::tch::Cuda::is_available() {
        println!("skipped: no CUDA device (checking the error instead)");
        let out = swalp(&args);
        assert_usage_error(&out, &["--device cuda", "CUDA is not available"]);
        return;
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_swalp-cli"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2 + 2 * 2);
    assert!(rows.iter().all(|r| r["device"] == "cuda"));
    assert_eq!(rows[2]["backend"], "cuda");
    assert_eq!(rows[3]["backend"], "tensor");
}

#[test]
fn bench_times_the_formats_asked_for() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_swalp-cli"))
        .args([
            "bench",
            "--elements",
            "65536",
            "--json",
            "--format",
            r#"{ format = "nvfp4", block = "2d" }"#,
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2 + 2 * 2);
    assert!(rows[2..]
        .iter()
        .all(|r| r["format"]["format"] == "nvfp4" && r["format"]["block"] == "2d"));
    let out = swalp(&["bench", "--format", r#"{ format = "nvfp5" }"#]);
    assert_usage_error(&out, &["--format", "nvfp5"]);
}
