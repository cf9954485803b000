//! Record framing, all little-endian:
//! `u32 len | u32 crc32c | u64 offset | i64 timestamp_ms | u32 key_len | key | value`.
//!
//! `len` counts the bytes after itself and the CRC covers every byte after the
//! CRC field. Anything that does not decode cleanly, including a zero-filled
//! tail, marks the end of the valid log.

use std::fmt;

use bytes::Bytes;
use std::io;

/// Size of the `len` field that starts every frame.
pub(crate) const LEN_SIZE: usize = 4;
/// Fixed bytes after `len`: crc, offset, timestamp, key_len.
pub(crate) const HEADER_SIZE: usize = 24;
/// On-disk bytes of a record beyond its key and value.
pub const RECORD_OVERHEAD: usize = LEN_SIZE + HEADER_SIZE;

/// A record to append; the log assigns its offset.
#[derive(Clone, Copy, Debug)]
pub struct NewRecord<'a> {
    pub timestamp_ms: i64,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

impl NewRecord<'_> {
    /// Bytes this record takes on disk.
    pub fn encoded_len(&self) -> usize {
        RECORD_OVERHEAD + self.key.len() + self.value.len()
    }
}

/// A record read back from the log.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub offset: u64,
    pub timestamp_ms: i64,
    /// Slices of the buffer the log was read into (no copy per record).
    pub key: Bytes,
    pub value: Bytes,
}

/// Appends the frame of `rec` at `offset` to `buf`.
///
/// On error `buf` may hold a partial frame; callers discard the whole buffer.
pub(crate) fn encode(buf: &mut Vec<u8>, offset: u64, rec: &NewRecord<'_>) -> io::Result<()> {
    let too_big = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "record too large for u32 framing",
        )
    };
    let key_len = u32::try_from(rec.key.len()).map_err(|_| too_big())?;
    let len = HEADER_SIZE
        .checked_add(rec.key.len())
        .and_then(|n| n.checked_add(rec.value.len()))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(too_big)?;
    buf.reserve(LEN_SIZE + len as usize);
    buf.extend_from_slice(&len.to_le_bytes());
    let crc_at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(&rec.timestamp_ms.to_le_bytes());
    buf.extend_from_slice(&key_len.to_le_bytes());
    buf.extend_from_slice(rec.key);
    buf.extend_from_slice(rec.value);
    let crc = crc32c::crc32c(&buf[crc_at + 4..]);
    buf[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Why the bytes at some position are not a valid record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// Fewer than 4 bytes left: not even a length.
    TornLength {
        available: u64,
    },
    /// `len` below the fixed header; a zero-filled tail lands here.
    LenTooSmall {
        len: u32,
    },
    /// The frame runs past the end of the file.
    PastEnd {
        len: u32,
        available: u64,
    },
    Crc {
        offset: u64,
        stored: u32,
        computed: u32,
    },
    /// A well-formed record, but not the next offset of this log.
    Offset {
        found: u64,
        expected: u64,
    },
    KeyLen {
        key_len: u32,
        len: u32,
    },
}

impl Invalid {
    /// Whether the file simply ends early (torn write) rather than holding bad bytes.
    #[cfg(test)]
    pub(crate) fn is_truncation(&self) -> bool {
        matches!(self, Invalid::TornLength { .. } | Invalid::PastEnd { .. })
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::TornLength { available } => {
                write!(f, "torn length field ({available} bytes left)")
            }
            Invalid::LenTooSmall { len } => {
                write!(f, "length {len} below the {HEADER_SIZE}-byte header")
            }
            Invalid::PastEnd { len, available } => {
                write!(
                    f,
                    "length {len} runs past end of file ({available} bytes left)"
                )
            }
            Invalid::Crc {
                offset,
                stored,
                computed,
            } => write!(
                f,
                "crc mismatch at offset {offset} (stored {stored:#010x}, computed {computed:#010x})"
            ),
            Invalid::Offset { found, expected } => {
                write!(f, "offset {found} where {expected} was expected")
            }
            Invalid::KeyLen { key_len, len } => {
                write!(f, "key length {key_len} exceeds record length {len}")
            }
        }
    }
}

/// A decoded frame borrowing the buffer it was read from.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    pub offset: u64,
    pub timestamp_ms: i64,
    pub key: &'a [u8],
    pub value: &'a [u8],
    /// Total on-disk bytes, `len` field included.
    pub size: usize,
}

/// The total frame size announced by the `len` field at the start of `buf`
/// (which must hold at least [`LEN_SIZE`] bytes).
pub(crate) fn frame_size(buf: &[u8]) -> Result<usize, Invalid> {
    let len = le_u32(buf, 0);
    if (len as usize) < HEADER_SIZE {
        return Err(Invalid::LenTooSmall { len });
    }
    Ok(LEN_SIZE + len as usize)
}

/// Decodes and verifies the frame at the start of `buf`, which must hold the
/// whole frame (see [`frame_size`]).
pub(crate) fn decode(buf: &[u8], expected_offset: u64) -> Result<Frame<'_>, Invalid> {
    let size = frame_size(buf)?;
    let len = le_u32(buf, 0);
    if buf.len() < size {
        return Err(Invalid::PastEnd {
            len,
            available: (buf.len() - LEN_SIZE) as u64,
        });
    }
    let offset = le_u64(buf, 8);
    let stored = le_u32(buf, 4);
    let computed = crc32c::crc32c(&buf[8..size]);
    if stored != computed {
        return Err(Invalid::Crc {
            offset: expected_offset,
            stored,
            computed,
        });
    }
    if offset != expected_offset {
        return Err(Invalid::Offset {
            found: offset,
            expected: expected_offset,
        });
    }
    let key_len = le_u32(buf, 24);
    let body = &buf[RECORD_OVERHEAD..size];
    if key_len as usize > body.len() {
        return Err(Invalid::KeyLen { key_len, len });
    }
    let (key, value) = body.split_at(key_len as usize);
    Ok(Frame {
        offset,
        timestamp_ms: le_u64(buf, 16) as i64,
        key,
        value,
        size,
    })
}

pub(crate) fn le_u32(buf: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

pub(crate) fn le_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(offset: u64, key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        let rec = NewRecord {
            timestamp_ms: -5,
            key,
            value,
        };
        encode(&mut buf, offset, &rec).unwrap();
        assert_eq!(buf.len(), rec.encoded_len());
        buf
    }

    #[test]
    fn round_trip() {
        let buf = frame(17, b"k", b"value");
        assert_eq!(frame_size(&buf).unwrap(), buf.len());
        let f = decode(&buf, 17).unwrap();
        assert_eq!(
            (f.offset, f.timestamp_ms, f.key, f.value),
            (17, -5, &b"k"[..], &b"value"[..])
        );
        assert_eq!(f.size, buf.len());
    }

    #[test]
    fn layout_is_fixed() {
        let buf = frame(0x0102, b"ab", b"xyz");
        assert_eq!(le_u32(&buf, 0) as usize, buf.len() - 4);
        assert_eq!(le_u32(&buf, 4), crc32c::crc32c(&buf[8..]));
        assert_eq!(le_u64(&buf, 8), 0x0102);
        assert_eq!(le_u64(&buf, 16) as i64, -5);
        assert_eq!(le_u32(&buf, 24), 2);
        assert_eq!(&buf[28..30], b"ab");
        assert_eq!(&buf[30..], b"xyz");
    }

    #[test]
    fn rejects_damage() {
        let buf = frame(3, b"key", b"value");
        for i in 4..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(
                matches!(decode(&bad, 3), Err(Invalid::Crc { .. })),
                "byte {i}"
            );
        }
        assert_eq!(
            decode(&buf, 4).unwrap_err(),
            Invalid::Offset {
                found: 3,
                expected: 4
            }
        );
        assert_eq!(
            decode(&[0; 40], 0).unwrap_err(),
            Invalid::LenTooSmall { len: 0 }
        );
        assert!(decode(&buf[..buf.len() - 1], 3)
            .unwrap_err()
            .is_truncation());
    }
}
