//! Format detection by magic bytes, never by file extension (DESIGN §2.2).
//!
//! | first bytes | format |
//! |---|---|
//! | `GGUF` | [`Format::Gguf`] (byte-swapped `FUGG` is refused: big-endian GGUF is out of scope) |
//! | `APR\0`, `APR2` | [`Format::Apr`] (APR v2, `APR-FORMAT.md` §1) |
//! | `APRN`, `APR1` | refused: APR v1 holds no tensor index (`APR-FORMAT.md` §10) |
//! | u64 LE header length, then `{` | [`Format::SafeTensors`] |
//! | a directory | [`Format::Directory`]; only commands that mean a directory accept it |
//!
//! Anything else is an error naming the path and the first bytes.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::{FormatError, FormatErrorKind};

/// A model container format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// GGUF v2/v3 (ggml).
    Gguf,
    /// SafeTensors (Hugging Face).
    SafeTensors,
    /// APR v2 (aprender).
    Apr,
    /// A directory (Hugging Face model directory).
    Directory,
}

impl Format {
    /// The name used in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Gguf => "GGUF",
            Self::SafeTensors => "SafeTensors",
            Self::Apr => "APR",
            Self::Directory => "directory",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// GGUF magic.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// GGUF magic as a big-endian writer leaves it (the u32 0x46554747 stored big-endian).
const GGUF_MAGIC_BE: [u8; 4] = *b"FUGG";
/// APR v2 magic written by current aprender/realizar.
pub const APR_MAGIC: [u8; 4] = *b"APR\0";
/// APR v2 magic written by older writers (same layout).
pub const APR2_MAGIC: [u8; 4] = *b"APR2";
/// APR v1 magics, recognised only to refuse them.
const APR_V1_MAGICS: [[u8; 4]; 2] = [*b"APRN", *b"APR1"];

/// Bytes detection looks at: a SafeTensors header length (8) plus its opening `{`.
const PROBE_BYTES: usize = 9;

/// Detects the format of `path` from its first bytes.
pub fn detect(path: &Path) -> Result<Format, FormatError> {
    let io = |op, source| FormatError::unknown_format(path, FormatErrorKind::Io { op, source });
    let meta = std::fs::metadata(path).map_err(|e| io("stat", e))?;
    if meta.is_dir() {
        return Ok(Format::Directory);
    }
    let mut file = File::open(path).map_err(|e| io("open", e))?;
    let mut probe = Vec::with_capacity(PROBE_BYTES);
    file.by_ref()
        .take(PROBE_BYTES as u64)
        .read_to_end(&mut probe)
        .map_err(|e| io("read", e))?;
    detect_bytes(&probe).map_err(|kind| FormatError::unknown_format(path, kind))
}

/// Detects a format from the first bytes of a file (at least 9 where the file has them).
pub fn detect_bytes(probe: &[u8]) -> Result<Format, FormatErrorKind> {
    let Some(magic) = probe.first_chunk::<4>().copied() else {
        return Err(FormatErrorKind::Truncated { at: 0, need: 4 });
    };
    if magic == GGUF_MAGIC {
        return Ok(Format::Gguf);
    }
    if magic == GGUF_MAGIC_BE {
        return Err(FormatErrorKind::Unsupported {
            what: "big-endian GGUF".into(),
        });
    }
    if magic == APR_MAGIC || magic == APR2_MAGIC {
        return Ok(Format::Apr);
    }
    if APR_V1_MAGICS.contains(&magic) {
        return Err(FormatErrorKind::Unsupported {
            what: format!(
                "APR v1 ({}) has no tensor index; convert it to APR v2",
                String::from_utf8_lossy(&magic)
            ),
        });
    }
    if probe.get(8) == Some(&b'{') {
        return Ok(Format::SafeTensors);
    }
    Err(FormatErrorKind::BadMagic { found: magic })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics() {
        assert_eq!(detect_bytes(b"GGUF\x03\0\0\0").ok(), Some(Format::Gguf));
        assert_eq!(detect_bytes(b"APR\0\x02\0").ok(), Some(Format::Apr));
        assert_eq!(detect_bytes(b"APR2").ok(), Some(Format::Apr));
        assert_eq!(
            detect_bytes(b"\x02\0\0\0\0\0\0\0{}").ok(),
            Some(Format::SafeTensors)
        );
        assert!(matches!(
            detect_bytes(b"APRN\x01"),
            Err(FormatErrorKind::Unsupported { .. })
        ));
        assert!(matches!(
            detect_bytes(b"APR1"),
            Err(FormatErrorKind::Unsupported { .. })
        ));
        assert!(matches!(
            detect_bytes(b"FUGG"),
            Err(FormatErrorKind::Unsupported { .. })
        ));
        assert!(matches!(
            detect_bytes(b"\x7fELF\0\0\0\0\0"),
            Err(FormatErrorKind::BadMagic {
                found: [0x7f, b'E', b'L', b'F']
            })
        ));
        assert!(matches!(
            detect_bytes(b"GG"),
            Err(FormatErrorKind::Truncated { at: 0, need: 4 })
        ));
    }
}
