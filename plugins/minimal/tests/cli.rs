//! The custom binary is `swalp-cli` plus `pow2`: it lists the format with its
//! keys and quantizes files with it.

use std::path::PathBuf;
use std::process::Command;

/// Runs `swalp-minimal` with `args`, asserting success; returns stdout.
fn swalp_minimal(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_swalp-minimal"))
        .args(args)
        .output()
        .expect("the swalp-minimal binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// A one-dimensional little-endian `f32` `.npy` file.
fn npy(values: &[f32]) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        values.len()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    bytes
}

/// The values of a one-dimensional `f32` `.npy` file.
fn read_npy(bytes: &[u8]) -> Vec<f32> {
    assert!(bytes.starts_with(b"\x93NUMPY\x01\x00"));
    let header_len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn formats_lists_pow2_with_its_keys() {
    let text = swalp_minimal(&["formats"]);
    let section: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("pow2: "))
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(
        section.first(),
        Some(&"pow2: powers of two: 0 and ±2^e for e in emin..=emax"),
        "{text}"
    );
    let key = |name: &str| {
        section
            .iter()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no key {name} in {section:?}"))
            .to_string()
    };
    assert!(key("emin").contains("integer, required; allowed: -126..=127"));
    assert!(key("emax").contains("integer, required; allowed: -126..=127"));
    assert!(
        text.contains("largest magnitude 2^emax, at least emin"),
        "{text}"
    );
    // The built-in formats are still there.
    assert!(text.lines().any(|l| l.starts_with("fixed: ")));
}

/// A scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("swalp-minimal-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn quantize_writes_powers_of_two() {
    let dir = scratch("quantize");
    let (input, output): (PathBuf, PathBuf) = (dir.join("in.npy"), dir.join("out.npy"));
    std::fs::write(&input, npy(&[0.3, -3.0, 100.0, 0.0, 0.01, 0.75])).unwrap();
    swalp_minimal(&[
        "quantize",
        "--spec",
        r#"{ format = "pow2", emin = -4, emax = 4 }"#,
        input.to_str().unwrap(),
        output.to_str().unwrap(),
    ]);
    let values = read_npy(&std::fs::read(&output).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
    // 0.3 -> 0.25; -3 is a tie (-> -4); 100 saturates; 0.01 is nearer 0
    // than 2^-4; 0.75 is a tie between 0.5 and 1 (-> 1).
    assert_eq!(values, [0.25, -4.0, 16.0, 0.0, 0.0, 1.0]);
}

#[test]
fn experiment_files_can_use_pow2() {
    let dir = scratch("experiment");
    let file = dir.join("exp.toml");
    let experiment = |quant: &str| {
        format!(
            "[experiment]\nname = \"linreg_pow2\"\n[data]\nname = \"synthetic-linreg\"\n\
             [model]\nname = \"linreg\"\n[quant]\ndefault = {quant}\n\
             [optim]\nname = \"sgd\"\nlr = 0.02\n[train]\nepochs = 1\nbatch_size = 32\n"
        )
    };
    let spec = r#"{ format = "pow2", emin = -10, emax = 2, rounding = "stochastic" }"#;
    std::fs::write(&file, experiment(spec)).unwrap();
    swalp_minimal(&["validate", file.to_str().unwrap()]);
    // A misspelt key is caught, with a suggestion.
    std::fs::write(
        &file,
        experiment(r#"{ format = "pow2", emin = -10, emx = 2 }"#),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_swalp-minimal"))
        .args(["validate", file.to_str().unwrap()])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `emax`"));
}
