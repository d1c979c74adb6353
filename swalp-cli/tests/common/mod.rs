//! Helpers the integration tests share.

use std::path::{Path, PathBuf};

/// The digits (8×8, as committed), or with every pixel repeated
/// `upsample` times along each side (32×32 for the CIFAR models), as IDX
/// files in `dir`.
pub fn digits(dir: &Path, upsample: usize) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/digits");
    if upsample == 1 {
        return source;
    }
    for file in [
        "train-images-idx3-ubyte",
        "t10k-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        let bytes = std::fs::read(source.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let out = if file.contains("images") {
            let word =
                |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
            let (n, rows, cols) = (word(4) as usize, word(8) as usize, word(12) as usize);
            let mut out = bytes[..16].to_vec();
            out[8..12].copy_from_slice(&((rows * upsample) as u32).to_be_bytes());
            out[12..16].copy_from_slice(&((cols * upsample) as u32).to_be_bytes());
            for image in bytes[16..].chunks(rows * cols).take(n) {
                for row in image.chunks(cols) {
                    let wide: Vec<u8> = row
                        .iter()
                        .flat_map(|&p| std::iter::repeat(p).take(upsample))
                        .collect();
                    for _ in 0..upsample {
                        out.extend_from_slice(&wide);
                    }
                }
            }
            out
        } else {
            bytes
        };
        std::fs::write(dir.join(file), out).unwrap_or_else(|e| panic!("{e}"));
    }
    dir.to_path_buf()
}
