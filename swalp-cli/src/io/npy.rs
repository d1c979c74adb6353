//! Reading `.npy` files, checked.
//!
//! `tch::Tensor::read_npy` copies as many bytes as the header's shape asks
//! for without checking that the file holds them, so a truncated file makes
//! it read past its buffer. This reader parses and checks the header itself,
//! checks the data length, and only then hands the bytes to libtorch.

use std::path::Path;

use tch::{Kind, Tensor};

const MAGIC: &[u8] = b"\x93NUMPY";

/// What a `.npy` header declares.
#[derive(Debug, PartialEq)]
struct Header {
    kind: Kind,
    shape: Vec<i64>,
}

/// Reads the tensor of the `.npy` file at `path`. Errors are one-line reasons
/// (the caller adds the path).
pub fn read(path: &Path) -> Result<Tensor, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let (header, data) = split(&bytes)?;
    let header = parse_header(header)?;
    let needed = data_len(&header)?;
    if data.len() < needed {
        return Err(format!(
            "truncated: the header declares shape {:?} of {} ({needed} data bytes) \
             but the file holds {}",
            header.shape,
            super::dtype_name(header.kind),
            data.len()
        ));
    }
    if data.len() > needed {
        log::warn!(
            "{}: ignoring {} bytes after the tensor data",
            path.display(),
            data.len() - needed
        );
    }
    Tensor::f_from_data_size(&data[..needed], &header.shape, header.kind).map_err(|e| e.to_string())
}

/// Splits a file into its header text and its data.
fn split(bytes: &[u8]) -> Result<(&str, &[u8]), String> {
    let not_npy = || "not a .npy file (no \\x93NUMPY magic string)".to_string();
    let rest = bytes.strip_prefix(MAGIC).ok_or_else(not_npy)?;
    let (version, rest) = rest.split_first().ok_or("truncated header")?;
    let rest = rest.get(1..).ok_or("truncated header")?;
    let len_bytes = match version {
        1 => 2,
        2 | 3 => 4,
        v => return Err(format!("unsupported .npy version {v}; expected 1, 2 or 3")),
    };
    let (len, rest) = rest.split_at_checked(len_bytes).ok_or("truncated header")?;
    let len = len
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    let (header, data) = rest.split_at_checked(len).ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text".to_string())?;
    Ok((header, data))
}

/// Parses a header such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
fn parse_header(text: &str) -> Result<Header, String> {
    let body = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| format!("malformed header {:?}", text.trim()))?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    for entry in split_top_level(body) {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let (key, value) = entry
            .split_once(':')
            .ok_or_else(|| format!("malformed header entry {entry:?}"))?;
        let value = value.trim();
        match key.trim().trim_matches(|c| c == '\'' || c == '"') {
            "descr" => descr = Some(value.trim_matches(|c| c == '\'' || c == '"')),
            "fortran_order" => fortran = Some(value),
            "shape" => shape = Some(value),
            _ => {}
        }
    }
    let kind = parse_descr(descr.ok_or("header has no 'descr'")?)?;
    match fortran {
        None | Some("False") => {}
        Some("True") => return Err("Fortran-order arrays are not supported".into()),
        Some(other) => return Err(format!("malformed fortran_order {other:?}")),
    }
    let shape = parse_shape(shape.ok_or("header has no 'shape'")?)?;
    Ok(Header { kind, shape })
}

/// Splits at commas outside parentheses.
fn split_top_level(body: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in body.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&body[start..]);
    parts
}

/// The libtorch kind of a little-endian (or byte-sized) numpy type string.
fn parse_descr(descr: &str) -> Result<Kind, String> {
    let (order, code) = match descr.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &descr[1..]),
        _ => ('=', descr),
    };
    let kind = match code {
        "f2" | "e" => Kind::Half,
        "f4" | "f" => Kind::Float,
        "f8" | "d" => Kind::Double,
        "i1" | "b" => Kind::Int8,
        "i2" | "h" => Kind::Int16,
        "i4" | "i" => Kind::Int,
        "i8" | "q" => Kind::Int64,
        "u1" | "B" => Kind::Uint8,
        "b1" | "?" => Kind::Bool,
        "c8" | "F" => Kind::ComplexFloat,
        "c16" | "D" => Kind::ComplexDouble,
        _ => return Err(format!("unsupported numpy dtype {descr:?}")),
    };
    if order == '>' && kind.elt_size_in_bytes() > 1 {
        return Err(format!(
            "big-endian dtype {descr:?} is not supported; save it little-endian"
        ));
    }
    Ok(kind)
}

/// Parses `()`, `(5,)`, `(3, 4)`.
fn parse_shape(text: &str) -> Result<Vec<i64>, String> {
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("malformed shape {text:?}"))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| match d.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(n),
            _ => Err(format!("malformed shape {text:?}")),
        })
        .collect()
}

/// Bytes of data the header asks for.
fn data_len(header: &Header) -> Result<usize, String> {
    header
        .shape
        .iter()
        .try_fold(header.kind.elt_size_in_bytes(), |acc, &d| {
            usize::try_from(d).ok().and_then(|d| acc.checked_mul(d))
        })
        .ok_or_else(|| format!("shape {:?} is too large", header.shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numpy_headers() {
        let h = parse_header("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }   \n");
        assert_eq!(
            h,
            Ok(Header {
                kind: Kind::Float,
                shape: vec![3, 4]
            })
        );
        let h = parse_header("{'descr': '<f8', 'fortran_order': False, 'shape': (), }");
        assert_eq!(h.map(|h| h.shape), Ok(vec![]));
        let h = parse_header("{'descr': '|u1', 'fortran_order': False, 'shape': (7,), }");
        assert_eq!(h.map(|h| (h.kind, h.shape)), Ok((Kind::Uint8, vec![7])));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        for bad in [
            "{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }",
            "{'descr': '<f4', 'fortran_order': True, 'shape': (3,), }",
            "{'descr': '<U8', 'fortran_order': False, 'shape': (3,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
            "{'descr': '<f4', 'fortran_order': False}",
            "'descr': '<f4'",
        ] {
            assert!(parse_header(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn huge_shapes_do_not_overflow() {
        let h = Header {
            kind: Kind::Double,
            shape: vec![i64::MAX, i64::MAX],
        };
        assert!(data_len(&h).is_err());
    }

    #[test]
    fn truncated_prefixes_are_errors() {
        let mut file = MAGIC.to_vec();
        file.extend([1, 0, 200, 0]);
        file.extend(b"{'descr'");
        for end in 0..file.len() {
            assert!(split(&file[..end]).is_err(), "prefix of {end} bytes");
        }
    }
}
