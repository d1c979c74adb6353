//! `docs/writing-a-format-plugin.md` shows this crate's files in full: each
//! in a fenced block right after a line naming it (`` `plugins/minimal/PATH`: ``).
//! They must be identical to the files here, so the guide cannot drift.

use std::path::Path;

/// The files the guide must show.
const SHOWN: [&str; 6] = [
    "Cargo.toml",
    "build.rs",
    "src/lib.rs",
    "src/bin/swalp-minimal.rs",
    "tests/cli.rs",
    "tests/conformance.rs",
];

#[test]
fn the_guide_shows_this_crate_verbatim() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide_path = crate_dir.join("../../docs/writing-a-format-plugin.md");
    let guide = std::fs::read_to_string(&guide_path).expect("the guide exists");
    let mut lines = guide.lines();
    let mut shown = Vec::new();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .strip_prefix("`plugins/minimal/")
            .and_then(|rest| rest.strip_suffix("`:"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "{path}: the line naming it must be followed by a fenced block, got {fence:?}"
        );
        let mut block = String::new();
        for line in lines.by_ref().take_while(|l| *l != "```") {
            block.push_str(line);
            block.push('\n');
        }
        let file = std::fs::read_to_string(crate_dir.join(path))
            .unwrap_or_else(|e| panic!("the guide shows {path}, which cannot be read: {e}"));
        if block != file {
            let first = block
                .lines()
                .zip(file.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(block.lines().count().min(file.lines().count()));
            panic!(
                "docs/writing-a-format-plugin.md shows plugins/minimal/{path} differently from \
                 the file, from line {}: update the guide",
                first + 1
            );
        }
        shown.push(path.to_string());
    }
    for path in SHOWN {
        assert!(
            shown.iter().any(|s| s == path),
            "the guide does not show plugins/minimal/{path}"
        );
    }
}
