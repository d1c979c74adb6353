//! TensorBoard event files: scalar summaries in the `tfevents` record
//! format, written without TensorFlow.
//!
//! A file is a sequence of records `u64 length, u32 masked-crc(length),
//! data, u32 masked-crc(data)` (little endian, CRC-32C); each `data` is an
//! `Event` protocol buffer. The first event carries `file_version`, later
//! ones a `Summary` of scalar values. The encoding is written by hand: the
//! four fields needed do not justify a protobuf dependency.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Appends scalar summaries to one event file, flushing after each event so
/// a running TensorBoard sees progress and a crash loses nothing written.
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `events.out.tfevents.<seconds>.swalp` in `dir`.
    pub fn create(dir: &Path) -> io::Result<Self> {
        let now = wall_time();
        let path = dir.join(format!("events.out.tfevents.{}.swalp", now as u64));
        let mut writer = EventWriter {
            out: BufWriter::new(File::create(&path)?),
            path,
        };
        let mut event = Vec::new();
        put_double(&mut event, 1, now);
        put_bytes(&mut event, 3, b"brain.Event:2");
        writer.write_record(&event)?;
        Ok(writer)
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes scalars `(tag, value)` at `step`.
    pub fn scalars(&mut self, step: i64, values: &[(&str, f64)]) -> io::Result<()> {
        let mut summary = Vec::new();
        for (tag, value) in values {
            let mut v = Vec::new();
            put_bytes(&mut v, 1, tag.as_bytes());
            put_float(&mut v, 2, *value as f32);
            put_bytes(&mut summary, 1, &v);
        }
        let mut event = Vec::new();
        put_double(&mut event, 1, wall_time());
        put_varint_field(&mut event, 2, step as u64);
        put_bytes(&mut event, 5, &summary);
        self.write_record(&event)
    }

    fn write_record(&mut self, data: &[u8]) -> io::Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        self.out.write_all(&len)?;
        self.out.write_all(&masked_crc(&len).to_le_bytes())?;
        self.out.write_all(data)?;
        self.out.write_all(&masked_crc(data).to_le_bytes())?;
        self.out.flush()
    }
}

fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_key(buf: &mut Vec<u8>, field: u32, wire_type: u32) {
    put_varint(buf, u64::from(field << 3 | wire_type));
}

fn put_varint_field(buf: &mut Vec<u8>, field: u32, v: u64) {
    put_key(buf, field, 0);
    put_varint(buf, v);
}

fn put_double(buf: &mut Vec<u8>, field: u32, v: f64) {
    put_key(buf, field, 1);
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_float(buf: &mut Vec<u8>, field: u32, v: f32) {
    put_key(buf, field, 5);
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(buf, field, 2);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// CRC-32C (Castagnoli), bitwise; event files are small.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// TensorFlow's masked CRC, which keeps CRCs of CRCs well distributed.
pub fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    (crc.rotate_right(15)).wrapping_add(0xA282_EAD8)
}

/// Reads back the scalar summaries of an event file as `(step, tag, value)`,
/// checking every CRC; for tests and tools.
pub fn read_scalars(path: &Path) -> io::Result<Vec<(i64, String, f32)>> {
    let bytes = std::fs::read(path)?;
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {what}", path.display()),
        )
    };
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < bytes.len() {
        let header = bytes
            .get(pos..pos + 12)
            .ok_or_else(|| bad("truncated record header"))?;
        let len = u64::from_le_bytes(header[..8].try_into().map_err(|_| bad("header"))?) as usize;
        if masked_crc(&header[..8]).to_le_bytes() != header[8..12] {
            return Err(bad("length CRC mismatch"));
        }
        let data = bytes
            .get(pos + 12..pos + 12 + len)
            .ok_or_else(|| bad("truncated record"))?;
        let crc = bytes
            .get(pos + 12 + len..pos + 16 + len)
            .ok_or_else(|| bad("truncated CRC"))?;
        if masked_crc(data).to_le_bytes() != crc {
            return Err(bad("data CRC mismatch"));
        }
        parse_event(data, &mut out).ok_or_else(|| bad("malformed event"))?;
        pos += 16 + len;
    }
    Ok(out)
}

fn get_varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *data.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Splits a message into `(field, wire type, payload)` triples.
fn fields(data: &[u8]) -> Option<Vec<(u32, u32, &[u8])>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < data.len() {
        let key = get_varint(data, &mut pos)?;
        let (field, wire) = ((key >> 3) as u32, (key & 7) as u32);
        let start = pos;
        let end = match wire {
            0 => {
                get_varint(data, &mut pos)?;
                pos
            }
            1 => pos + 8,
            5 => pos + 4,
            2 => {
                let len = get_varint(data, &mut pos)? as usize;
                pos + len
            }
            _ => return None,
        };
        let payload_start = if wire == 2 { pos } else { start };
        out.push((field, wire, data.get(payload_start..end)?));
        pos = end;
    }
    Some(out)
}

fn parse_event(data: &[u8], out: &mut Vec<(i64, String, f32)>) -> Option<()> {
    let event = fields(data)?;
    let mut step = 0i64;
    for (field, _, payload) in &event {
        if *field == 2 {
            step = get_varint(payload, &mut 0)? as i64;
        }
    }
    for (field, _, payload) in &event {
        if *field != 5 {
            continue;
        }
        for (f, _, value) in fields(payload)? {
            if f != 1 {
                continue;
            }
            let mut tag = String::new();
            let mut simple = None;
            for (vf, _, vp) in fields(value)? {
                match vf {
                    1 => tag = String::from_utf8(vp.to_vec()).ok()?,
                    2 => simple = Some(f32::from_le_bytes(vp.try_into().ok()?)),
                    _ => {}
                }
            }
            out.push((step, tag, simple?));
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn scalars_round_trip_with_valid_crcs() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        w.scalars(0, &[("train/loss", 2.5), ("lr", 0.05)]).unwrap();
        w.scalars(1, &[("train/loss", 1.25)]).unwrap();
        let got = read_scalars(w.path()).unwrap();
        assert_eq!(
            got,
            vec![
                (0, "train/loss".to_string(), 2.5),
                (0, "lr".to_string(), 0.05),
                (1, "train/loss".to_string(), 1.25)
            ]
        );
        // A flipped byte is caught.
        let mut bytes = std::fs::read(w.path()).unwrap();
        let n = bytes.len();
        bytes[n - 6] ^= 1;
        std::fs::write(w.path(), bytes).unwrap();
        assert!(read_scalars(w.path()).is_err());
    }
}
