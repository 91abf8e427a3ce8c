//! Reading dataset files: plain or gzip (detected by its magic bytes, not the
//! file name), with every I/O and decompression error mapped to a `DataError`
//! that names the file, and with sizes bounded so a bogus header or a gzip bomb
//! cannot exhaust memory.

use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;

use crate::error::{DataError, Result};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const RESERVE_CAP: usize = 64 << 20;

/// A file being read from the start, decompressed if it is gzip.
pub(crate) struct Input {
    path: PathBuf,
    reader: Box<dyn Read>,
    /// Bytes of (decompressed) content consumed so far.
    consumed: u64,
}

impl Input {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| open_error(path, e))?;
        let mut buffered = BufReader::with_capacity(1 << 16, file);
        let head = buffered.fill_buf().map_err(|e| io_error(path, "cannot read", e))?;
        let reader: Box<dyn Read> = if head.starts_with(&GZIP_MAGIC) {
            Box::new(MultiGzDecoder::new(buffered))
        } else {
            Box::new(buffered)
        };
        Ok(Input {
            path: path.to_path_buf(),
            reader,
            consumed: 0,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads exactly `n` more bytes; `expected_total` is what the whole content
    /// should measure, reported if the file ends early.
    pub(crate) fn read_exact(&mut self, n: usize, expected_total: u64) -> Result<Vec<u8>> {
        let got = self.read_up_to(n)?;
        if got.len() < n {
            return Err(DataError::Truncated {
                path: self.path.clone(),
                expected: expected_total,
                found: self.consumed,
            });
        }
        Ok(got)
    }

    /// Fails unless the content ends here (exactly `expected_total` bytes long).
    pub(crate) fn expect_end(&mut self, expected_total: u64) -> Result<()> {
        if self.read_up_to(1)?.is_empty() {
            return Ok(());
        }
        // A corrupt gzip stream can inflate to extra garbage: reading on to its
        // checksum reports that as corruption rather than as trailing data.
        std::io::copy(&mut (&mut self.reader).take(RESERVE_CAP as u64), &mut std::io::sink())
            .map_err(|e| io_error(&self.path, "cannot read (corrupt or truncated gzip?)", e))?;
        Err(DataError::format(
            &self.path,
            format!("trailing data: expected exactly {expected_total} bytes, found more"),
        ))
    }

    /// Reads the rest of the content, failing if it exceeds `limit` bytes.
    pub(crate) fn read_to_end(mut self, limit: usize) -> Result<Vec<u8>> {
        let data = self.read_up_to(limit.saturating_add(1))?;
        if data.len() > limit {
            return Err(DataError::format(
                &self.path,
                format!("too large: more than {limit} bytes (not a dataset file of this kind?)"),
            ));
        }
        Ok(data)
    }

    /// Reads until `n` bytes or the end of the content, whichever is first.
    fn read_up_to(&mut self, n: usize) -> Result<Vec<u8>> {
        // Reserve up front only a bounded amount: `n` may come from a bogus header.
        let mut buf = Vec::with_capacity(n.min(RESERVE_CAP));
        let reader = &mut self.reader;
        let got = reader
            .take(n as u64)
            .read_to_end(&mut buf)
            .map_err(|e| io_error(&self.path, "cannot read (corrupt or truncated gzip?)", e))?;
        self.consumed += got as u64;
        Ok(buf)
    }
}

/// Reads a whole file (decompressed if gzip), up to `limit` bytes.
pub(crate) fn read_all(path: &Path, limit: usize) -> Result<Vec<u8>> {
    Input::open(path)?.read_to_end(limit)
}

fn open_error(path: &Path, e: std::io::Error) -> DataError {
    if e.kind() == ErrorKind::NotFound {
        DataError::Missing {
            path: path.to_path_buf(),
            hint: String::new(),
        }
    } else {
        io_error(path, "cannot open", e)
    }
}

fn io_error(path: &Path, what: &'static str, source: std::io::Error) -> DataError {
    DataError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}
