//! Kernel-side pass-through of mapped input bytes into output files.
//!
//! A lossless conversion writes most of its output as unchanged byte ranges of its input. Sent
//! through `write(2)` from the mapping, every page is faulted into our address space and copied
//! by the CPU; `copy_file_range(2)` — what `cp` uses — copies page cache to page cache in the
//! kernel (or shares extents where the file system can), at `cp`'s speed.
//!
//! Invariants:
//! - a mapping is registered exactly while it is alive: [`MappedFile`] owns the map and its
//!   registration, and drops the registration first;
//! - [`FileSink`] writes exactly the bytes it is given, in order: a slice that lies inside a
//!   registered mapping is copied from the same offset of the mapped file (the mapping shows
//!   that file's bytes), everything else goes through its buffer; if the kernel refuses the copy
//!   (another file system, an old kernel), the same bytes are written from memory instead, so
//!   the output never depends on which path was taken.

use std::fs::File;
use std::io::{self, Write};
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Slices shorter than this are buffered (a syscall per small tensor costs more than a copy).
const MIN_KERNEL_COPY: usize = 256 << 10;
/// Buffer for everything that is not copied in the kernel.
const BUFFER_BYTES: usize = 1 << 20;

struct Region {
    id: u64,
    start: usize,
    len: usize,
    file: Arc<File>,
}

static REGIONS: Mutex<Vec<Region>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A read-only mapping of a file, registered for pass-through while it lives.
pub struct MappedFile {
    // Field order is drop order: unregister before unmapping.
    registration: Registration,
    map: memmap2::Mmap,
}

struct Registration(u64);

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut r) = REGIONS.lock() {
            r.retain(|x| x.id != self.0);
        }
    }
}

impl MappedFile {
    /// Wraps `map`, a mapping of the whole of `file`.
    pub fn new(map: memmap2::Mmap, file: File) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut r) = REGIONS.lock() {
            r.push(Region {
                id,
                start: map.as_ptr() as usize,
                len: map.len(),
                file: Arc::new(file),
            });
        }
        Self {
            registration: Registration(id),
            map,
        }
    }

    /// The registration id (distinct per live mapping).
    pub fn id(&self) -> u64 {
        self.registration.0
    }
}

impl Deref for MappedFile {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

/// The mapped file holding `buf` and `buf`'s offset in it, when `buf` lies inside a live
/// registered mapping.
fn source_of(buf: &[u8]) -> Option<(Arc<File>, u64)> {
    let start = buf.as_ptr() as usize;
    let end = start.checked_add(buf.len())?;
    let regions = REGIONS.lock().ok()?;
    regions
        .iter()
        .find(|r| start >= r.start && end <= r.start + r.len)
        .map(|r| (Arc::clone(&r.file), (start - r.start) as u64))
}

/// Copies `len` bytes at `offset` of `src` to the current position of `dst` in the kernel.
/// `Ok(false)` when the kernel cannot do it for these files before any byte was copied.
#[cfg(target_os = "linux")]
fn kernel_copy(src: &File, offset: u64, dst: &File, len: usize) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut off_in = libc::loff_t::try_from(offset).map_err(io::Error::other)?;
    let mut left = len;
    while left > 0 {
        // SAFETY: both descriptors are open for the duration of the call (borrowed `File`s);
        // `off_in` is a valid, exclusively borrowed loff_t; a null `off_out` means "use and
        // advance dst's file position", which is where the sink's preceding writes ended.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                dst.as_raw_fd(),
                std::ptr::null_mut(),
                left,
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            let unsupported = matches!(
                e.raw_os_error(),
                Some(libc::EXDEV | libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP | libc::EBADF)
            );
            if unsupported && left == len {
                return Ok(false);
            }
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("input file ended {left} bytes early at offset {off_in} (modified while converting?)"),
            ));
        }
        left -= n as usize;
    }
    Ok(true)
}

#[cfg(not(target_os = "linux"))]
fn kernel_copy(_: &File, _: u64, _: &File, _: usize) -> io::Result<bool> {
    Ok(false)
}

/// A buffered writer to a file that copies mapped input slices in the kernel (module doc).
pub struct FileSink<'f> {
    file: &'f File,
    buf: Vec<u8>,
    /// Bytes that went through `copy_file_range` (for tests and benchmarks).
    pub kernel_copied: u64,
}

impl<'f> FileSink<'f> {
    /// A sink appending at `file`'s current position.
    pub fn new(file: &'f File) -> Self {
        Self {
            file,
            buf: Vec::with_capacity(BUFFER_BYTES),
            kernel_copied: 0,
        }
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let mut f = self.file;
            f.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

impl Write for FileSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() >= MIN_KERNEL_COPY {
            if let Some((src, offset)) = source_of(buf) {
                self.flush_buf()?;
                if kernel_copy(&src, offset, self.file, buf.len())? {
                    self.kernel_copied += buf.len() as u64;
                    return Ok(buf.len());
                }
            }
        }
        if self.buf.len() + buf.len() > BUFFER_BYTES {
            self.flush_buf()?;
        }
        if buf.len() >= BUFFER_BYTES {
            let mut f = self.file;
            return f.write(buf);
        }
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buf()?;
        let mut f = self.file;
        f.flush()
    }
}

impl Drop for FileSink<'_> {
    fn drop(&mut self) {
        let _ = self.flush_buf();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn mapped(bytes: &[u8]) -> (tempfile::NamedTempFile, MappedFile) {
        let mut t = tempfile::NamedTempFile::new().expect("temp");
        t.write_all(bytes).expect("write");
        let f = File::open(t.path()).expect("open");
        // SAFETY: test file, not modified while mapped.
        let map = unsafe { memmap2::Mmap::map(&f) }.expect("map");
        (t, MappedFile::new(map, f))
    }

    #[test]
    fn mapped_slices_are_copied_in_the_kernel_and_bytes_stay_in_order() {
        let src: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let (_t, m) = mapped(&src);
        let out = tempfile::NamedTempFile::new().expect("out");
        let copied = {
            let mut s = FileSink::new(out.as_file());
            s.write_all(b"header").expect("w");
            s.write_all(&m[100..1_500_000]).expect("w");
            s.write_all(&[9u8; 10]).expect("w");
            let small = m[5..50].to_vec();
            s.write_all(&m[5..50]).expect("w");
            s.write_all(&m[1_500_000..]).expect("w");
            s.flush().expect("flush");
            assert_eq!(small.len(), 45);
            s.kernel_copied
        };
        let mut got = Vec::new();
        File::open(out.path())
            .and_then(|mut f| f.read_to_end(&mut got))
            .expect("read");
        let mut want = b"header".to_vec();
        want.extend_from_slice(&src[100..1_500_000]);
        want.extend_from_slice(&[9u8; 10]);
        want.extend_from_slice(&src[5..50]);
        want.extend_from_slice(&src[1_500_000..]);
        assert_eq!(got, want);
        if cfg!(target_os = "linux") {
            assert_eq!(copied, (1_500_000 - 100) + (3_000_000 - 1_500_000));
        }
    }

    #[test]
    fn unmapped_and_dropped_regions_are_written_from_memory() {
        let src = vec![3u8; 1 << 20];
        let (_t, m) = mapped(&src);
        let copy = m.to_vec();
        drop(m);
        let out = tempfile::NamedTempFile::new().expect("out");
        let mut s = FileSink::new(out.as_file());
        s.write_all(&copy).expect("w");
        s.flush().expect("flush");
        assert_eq!(s.kernel_copied, 0);
        assert_eq!(std::fs::read(out.path()).expect("read"), src);
    }
}
