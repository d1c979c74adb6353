//! swalp's hand-written TensorBoard event files, read back by the Python
//! `tensorboard` package's own readers (`tests/tensorboard/read_events.py`):
//! exact tags, steps and values, and CRCs that TensorBoard's record reader
//! accepts, and rejects once a byte is flipped.
//!
//! The reader comes from the environment `swalp-cli/scripts/with-torch`
//! manages (it installs `tensorboard`); without it the tests say
//! "skipped: ..." and return.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use swalp_cli::experiment::tensorboard::EventWriter;

/// The Python of `swalp-cli/scripts/with-torch`'s environment (or `python3`
/// on `PATH` outside it), if it can import `tensorboard`; otherwise why not.
fn tensorboard_python() -> Result<PathBuf, String> {
    let python = match std::env::var_os("VIRTUAL_ENV") {
        Some(env) => Path::new(&env).join("bin/python3"),
        None => PathBuf::from("python3"),
    };
    let out = Command::new(&python)
        .args(["-c", "import tensorboard"])
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(python),
        Ok(o) => Err(format!(
            "{} cannot import tensorboard ({}); run the tests through \
             swalp-cli/scripts/with-torch, which installs it",
            python.display(),
            String::from_utf8_lossy(&o.stderr)
                .trim()
                .lines()
                .last()
                .unwrap_or("")
        )),
        Err(e) => Err(format!("cannot run {}: {e}", python.display())),
    }
}

/// Says a test was skipped, straight to stderr (past the harness's capture,
/// so a skip is visible even when the test passes).
fn skip(test: &str, reason: &str) {
    let _ = writeln!(std::io::stderr(), "{test} skipped: {reason}");
}

/// `read_events.py MODE FILE`'s JSON answer.
fn read(python: &Path, mode: &str, file: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tensorboard/read_events.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(mode)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    assert!(
        out.status.success(),
        "read_events.py {mode} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// `(step, f32 bits)` of every point of `tag`, and every point's wall time.
fn points(read: &Value, tag: &str) -> (Vec<(i64, u32)>, Vec<f64>) {
    let list = read["scalars"][tag]
        .as_array()
        .unwrap_or_else(|| panic!("TensorBoard sees no tag {tag:?}: {read}"));
    let steps = list
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_u64().unwrap() as u32))
        .collect();
    let times = list.iter().map(|p| p[2].as_f64().unwrap()).collect();
    (steps, times)
}

fn tags(read: &Value) -> Vec<String> {
    let mut tags: Vec<String> = read["scalars"]
        .as_object()
        .unwrap_or_else(|| panic!("no scalars: {read}"))
        .keys()
        .cloned()
        .collect();
    tags.sort();
    tags
}

/// Byte offsets of every record: `(start, data length)`.
fn records(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let len = u64::from_le_bytes(bytes[pos..pos + 8].try_into().unwrap()) as usize;
        out.push((pos, len));
        pos += 16 + len;
    }
    assert_eq!(pos, bytes.len(), "records fill the file");
    out
}

fn seconds_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn tensorboard_reads_every_scalar_exactly_and_rejects_a_flipped_byte() {
    const TEST: &str = "tensorboard_reads_every_scalar_exactly_and_rejects_a_flipped_byte";
    let python = match tensorboard_python() {
        Ok(p) => p,
        Err(reason) => return skip(TEST, &reason),
    };
    // Values f32 holds exactly and not (0.1, 100/3), signed zeros, a
    // subnormal, the extremes, infinity and NaN (a diverged loss); a tag
    // with non-ASCII bytes; steps with one- to six-byte varints.
    let events: Vec<(i64, Vec<(&str, f64)>)> = vec![
        (
            0,
            vec![
                ("train/loss", 2.5),
                ("lr", 0.05),
                ("test/error", 100.0 / 3.0),
            ],
        ),
        (
            1,
            vec![
                ("train/loss", 1.25),
                ("lr", 0.1),
                ("swa/μ-σ", -1e-40),
                ("zero", -0.0),
            ],
        ),
        (
            300,
            vec![
                ("train/loss", f64::from(f32::MAX)),
                ("lr", 0.0),
                ("zero", 0.0),
                ("test/error", f64::INFINITY),
            ],
        ),
        (
            1 << 40,
            vec![("train/loss", f64::NAN), ("lr", -3.0e38), ("zero", 1e-300)],
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let before = seconds_now();
    let mut writer = EventWriter::create(dir.path()).unwrap();
    for (step, scalars) in &events {
        writer.scalars(*step, scalars).unwrap();
    }
    let after = seconds_now();
    let file = writer.path().to_path_buf();
    drop(writer);

    let read_back = read(&python, "scalars", &file);
    assert_eq!(read_back["file_version"], "brain.Event:2");
    assert_eq!(read_back["accumulator_file_version"], 2.0);
    let mut want_tags: Vec<String> = events
        .iter()
        .flat_map(|(_, s)| s.iter().map(|(t, _)| t.to_string()))
        .collect();
    want_tags.sort();
    want_tags.dedup();
    assert_eq!(tags(&read_back), want_tags);
    for tag in &want_tags {
        let want: Vec<(i64, u32)> = events
            .iter()
            .flat_map(|(step, s)| {
                s.iter()
                    .filter(|(t, _)| t == tag)
                    .map(move |(_, v)| (*step, (*v as f32).to_bits()))
            })
            .collect();
        let (got, times) = points(&read_back, tag);
        let got_without_nan_payload: Vec<(i64, u32)> = got
            .iter()
            .map(|&(s, b)| {
                (
                    s,
                    if f32::from_bits(b).is_nan() {
                        f32::NAN.to_bits()
                    } else {
                        b
                    },
                )
            })
            .collect();
        assert_eq!(got_without_nan_payload, want, "{tag}");
        for t in times {
            // Wall times are written as f64 seconds (TensorBoard's reader
            // has microsecond resolution here).
            assert!(
                t >= before - 1e-3 && t <= after + 1e-3,
                "{tag}: wall time {t} outside [{before}, {after}]"
            );
        }
    }
    let clean = read(&python, "records", &file);
    assert_eq!(clean["records"], events.len() as u64 + 1, "{clean}");
    assert_eq!(clean["loaded"], events.len() as u64 + 1, "{clean}");
    assert!(clean["data_loss"].is_null(), "{clean}");

    // One flipped byte in the data, in its CRC, or in the length of the
    // third record (step 1): TensorBoard's reader fails that record's CRC
    // check, keeps the two before it and loads nothing after.
    let bytes = std::fs::read(&file).unwrap();
    let (start, len) = records(&bytes)[2];
    for (what, at, message) in [
        ("data", start + 12 + len / 2, "failed event crc32 check"),
        ("data CRC", start + 12 + len + 1, "failed event crc32 check"),
        ("length", start, "failed header crc32 check"),
        ("length CRC", start + 9, "failed header crc32 check"),
    ] {
        let mut corrupt = bytes.clone();
        corrupt[at] ^= 0x10;
        let path = dir
            .path()
            .join(format!("events.out.tfevents.0.{}", what.replace(' ', "-")));
        std::fs::write(&path, &corrupt).unwrap();
        let records = read(&python, "records", &path);
        assert_eq!(records["records"], 2, "{what}: {records}");
        assert_eq!(records["loaded"], 2, "{what}: {records}");
        let loss = records["data_loss"].as_str().unwrap_or_else(|| {
            panic!("{what}: TensorBoard read a corrupt record without complaint: {records}")
        });
        assert!(loss.contains(message), "{what}: {loss}");
        // What TensorBoard shows: step 0 only.
        let shown = read(&python, "scalars", &path);
        let (train_loss, _) = points(&shown, "train/loss");
        assert_eq!(train_loss, [(0, 2.5f32.to_bits())], "{what}");
        // swalp's own reader rejects it too.
        assert!(
            swalp_cli::experiment::tensorboard::read_scalars(&path).is_err(),
            "{what}"
        );
    }
}

#[test]
fn tensorboard_shows_a_runs_epoch_metrics_exactly() {
    const TEST: &str = "tensorboard_shows_a_runs_epoch_metrics_exactly";
    let python = match tensorboard_python() {
        Ok(p) => p,
        Err(reason) => return skip(TEST, &reason),
    };
    let dir = tempfile::tempdir().unwrap();
    let exp = Path::new(env!("CARGO_MANIFEST_DIR")).join("../exp/linreg_swalp.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_swalp-cli"))
        .arg("run")
        .arg(&exp)
        .arg("--out")
        .arg(dir.path())
        .args(["--set", "train.epochs=6", "--set", "log.tensorboard=true"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("events.out.tfevents."))
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    let read_back = read(&python, "scalars", &events[0]);
    let metrics: Vec<Value> = std::fs::read_to_string(dir.path().join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(metrics.len(), 6);
    // Every metric of every epoch, as the f32 the event holds; averaging
    // starts at epoch 4 (swa.start = 4), regression has no train/error.
    let columns = [
        ("lr", "lr"),
        ("train/loss", "train_loss"),
        ("test/loss", "test_loss"),
        ("test/error", "test_error"),
        ("train/error", "train_error"),
        ("swa/test_loss", "swa_test_loss"),
        ("swa/test_error", "swa_test_error"),
    ];
    let mut want_tags = Vec::new();
    for (tag, key) in columns {
        let want: Vec<(i64, u32)> = metrics
            .iter()
            .filter_map(|m| {
                let v = m[key].as_f64()?;
                Some((m["epoch"].as_i64().unwrap(), (v as f32).to_bits()))
            })
            .collect();
        if want.is_empty() {
            continue;
        }
        want_tags.push(tag.to_string());
        assert_eq!(points(&read_back, tag).0, want, "{tag}");
    }
    want_tags.sort();
    assert_eq!(tags(&read_back), want_tags);
    assert!(want_tags.contains(&"swa/test_error".to_string()));
    assert!(!want_tags.contains(&"train/error".to_string()));
}
