//! A bounded little-endian cursor over `&[u8]`: the only way the format readers read bytes.
//!
//! Invariants: every read is checked with `slice::get` before it happens; a failed read does not
//! move the cursor; every error names the absolute offset of the read (the cursor may be built
//! over a slice that starts at `base` in the file); lengths from the file are converted with
//! `usize::try_from`, never `as`.

use super::FormatErrorKind;

/// A read position over a byte slice.
#[derive(Clone, Debug)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
}

macro_rules! read_le {
    ($($name:ident -> $t:ty),* $(,)?) => {$(
        #[doc = concat!("Reads a little-endian `", stringify!($t), "`.")]
        pub fn $name(&mut self) -> Result<$t, FormatErrorKind> {
            Ok(<$t>::from_le_bytes(self.array()?))
        }
    )*};
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`, which starts at offset 0 of the file.
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            base: 0,
        }
    }

    /// A cursor at the start of `buf`, which starts at absolute offset `base` of the file.
    pub fn with_base(buf: &'a [u8], base: u64) -> Self {
        Self { buf, pos: 0, base }
    }

    /// The absolute offset of the next read.
    pub fn offset(&self) -> u64 {
        self.base.saturating_add(self.pos as u64)
    }

    /// The position of the next read within the slice.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left after the current position.
    pub fn remaining(&self) -> u64 {
        self.buf.len().saturating_sub(self.pos) as u64
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    fn truncated(&self, need: u64) -> FormatErrorKind {
        FormatErrorKind::Truncated {
            at: self.offset(),
            need,
        }
    }

    /// Returns the next `n` bytes and moves past them.
    pub fn bytes(&mut self, n: u64) -> Result<&'a [u8], FormatErrorKind> {
        let len = usize::try_from(n).map_err(|_| self.truncated(n))?;
        let end = self.pos.checked_add(len).ok_or_else(|| self.truncated(n))?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.truncated(n))?;
        self.pos = end;
        Ok(out)
    }

    /// Moves past `n` bytes.
    pub fn skip(&mut self, n: u64) -> Result<(), FormatErrorKind> {
        self.bytes(n).map(|_| ())
    }

    /// Reads a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatErrorKind> {
        let b = self.bytes(N as u64)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    read_le! {
        u8 -> u8, i8 -> i8, u16 -> u16, i16 -> i16, u32 -> u32, i32 -> i32,
        u64 -> u64, i64 -> i64, f32 -> f32, f64 -> f64,
    }

    /// Checks that `count` entries of at least `min_entry_bytes` each can fit in the bytes that
    /// remain, and returns it as `usize`; call before allocating or looping over `count`.
    /// `at` is the absolute offset of the count field.
    pub fn bounded_count(
        &self,
        count: u64,
        min_entry_bytes: u64,
        what: &'static str,
        at: u64,
    ) -> Result<usize, FormatErrorKind> {
        let too_many = || FormatErrorKind::TooMany { what, count, at };
        let need = count.checked_mul(min_entry_bytes).ok_or_else(too_many)?;
        if need > self.remaining() {
            return Err(too_many());
        }
        usize::try_from(count).map_err(|_| too_many())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_values_in_order() {
        let bytes = [
            0x01, // u8
            0x34, 0x12, // u16
            0x78, 0x56, 0x34, 0x12, // u32
            0xEF, 0xCD, 0xAB, 0x89, 0x67, 0x45, 0x23, 0x01, // u64
            0xFF, // i8 = -1
            0x00, 0x00, 0x80, 0x3F, // f32 1.0
        ];
        let mut c = Cursor::new(&bytes);
        assert_eq!(c.u8().ok(), Some(1));
        assert_eq!(c.u16().ok(), Some(0x1234));
        assert_eq!(c.u32().ok(), Some(0x1234_5678));
        assert_eq!(c.u64().ok(), Some(0x0123_4567_89AB_CDEF));
        assert_eq!(c.i8().ok(), Some(-1));
        assert_eq!(c.f32().ok().map(f32::to_bits), Some(0x3F80_0000));
        assert!(c.is_empty());
    }

    #[test]
    fn truncated_read_names_absolute_offset_and_does_not_move() {
        let bytes = [1, 2, 3];
        let mut c = Cursor::with_base(&bytes, 100);
        assert_eq!(c.u8().ok(), Some(1));
        match c.u32() {
            Err(FormatErrorKind::Truncated { at: 101, need: 4 }) => {}
            other => panic!("expected Truncated at 101, got {other:?}"),
        }
        assert_eq!(c.offset(), 101);
        assert_eq!(c.remaining(), 2);
        assert_eq!(c.u16().ok(), Some(0x0302));
    }

    #[test]
    fn huge_lengths_are_errors_not_panics() {
        let bytes = [0u8; 8];
        let mut c = Cursor::new(&bytes);
        c.skip(3).ok();
        assert!(matches!(
            c.bytes(u64::MAX),
            Err(FormatErrorKind::Truncated {
                at: 3,
                need: u64::MAX
            })
        ));
        assert!(matches!(
            c.bytes(6),
            Err(FormatErrorKind::Truncated { at: 3, need: 6 })
        ));
        assert_eq!(c.bytes(5).ok(), Some(&[0u8; 5][..]));
        assert!(matches!(
            c.u8(),
            Err(FormatErrorKind::Truncated { at: 8, need: 1 })
        ));
    }

    #[test]
    fn bounded_count_rejects_counts_the_bytes_cannot_hold() {
        let bytes = [0u8; 16];
        let c = Cursor::new(&bytes);
        assert_eq!(c.bounded_count(2, 8, "x", 0).ok(), Some(2));
        assert_eq!(c.bounded_count(0, u64::MAX, "x", 0).ok(), Some(0));
        assert!(matches!(
            c.bounded_count(3, 8, "x", 7),
            Err(FormatErrorKind::TooMany {
                what: "x",
                count: 3,
                at: 7
            })
        ));
        // count × size overflows u64
        assert!(matches!(
            c.bounded_count(1 << 40, 1 << 30, "x", 0),
            Err(FormatErrorKind::TooMany {
                count: 1_099_511_627_776,
                ..
            })
        ));
    }
}
