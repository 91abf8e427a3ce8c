//! IDX files (the MNIST / Fashion-MNIST format): a big-endian header — magic
//! `0x0000_08_NN` (unsigned bytes, NN dimensions), then NN u32 sizes — followed
//! by the raw bytes. Plain or gzip.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::input::Input;
use crate::split::Split;
use crate::SplitKind;

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Images from an IDX3 file: `(count, rows, cols, pixels)`.
pub struct IdxImages {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

/// The four Fashion-MNIST file names (images, labels) for a split.
pub fn fashion_mnist_files(dir: &Path, kind: SplitKind) -> [PathBuf; 2] {
    let prefix = match kind {
        SplitKind::Train => "train",
        SplitKind::Test => "t10k",
    };
    [
        dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
        dir.join(format!("{prefix}-labels-idx1-ubyte.gz")),
    ]
}

/// Loads a Fashion-MNIST split (28x28 gray, 10 classes) from `dir`.
pub fn load_fashion_mnist(dir: &Path, kind: SplitKind) -> Result<Split> {
    let [images_path, labels_path] = fashion_mnist_files(dir, kind);
    let split = load_pair(&images_path, &labels_path, 10)?;
    if split.shape != [1, 28, 28] {
        return Err(DataError::format(
            &images_path,
            format!("expected 28x28 images, found {}x{}", split.shape[1], split.shape[2]),
        ));
    }
    Ok(split)
}

/// Loads an IDX3 image file and its IDX1 label file as one gray-scale split.
pub fn load_pair(images_path: &Path, labels_path: &Path, classes: usize) -> Result<Split> {
    let images = read_images(images_path)?;
    let labels = read_labels(labels_path, classes)?;
    if labels.len() != images.count {
        return Err(DataError::CountMismatch {
            images_path: images_path.to_path_buf(),
            images: images.count,
            labels_path: labels_path.to_path_buf(),
            labels: labels.len(),
        });
    }
    let shape = [1, images.rows, images.cols];
    Ok(Split {
        shape,
        classes,
        images: images.pixels,
        labels,
    })
}

/// Reads an IDX3 unsigned-byte image file.
pub fn read_images(path: &Path) -> Result<IdxImages> {
    let mut input = Input::open(path)?;
    let dims = read_header(&mut input, IMAGES_MAGIC)?;
    let [count, rows, cols] = [dims[0], dims[1], dims[2]];
    if rows == 0 || cols == 0 {
        return Err(DataError::format(path, format!("empty image size {rows}x{cols}")));
    }
    let pixels = read_body(&mut input, &dims)?;
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels,
    })
}

/// Reads an IDX1 unsigned-byte label file, checking every label is `< classes`.
pub fn read_labels(path: &Path, classes: usize) -> Result<Vec<u16>> {
    let mut input = Input::open(path)?;
    let dims = read_header(&mut input, LABELS_MAGIC)?;
    let raw = read_body(&mut input, &dims)?;
    if let Some((index, &label)) = raw.iter().enumerate().find(|(_, &l)| usize::from(l) >= classes) {
        return Err(DataError::LabelOutOfRange {
            path: path.to_path_buf(),
            index,
            label: label.into(),
            classes,
        });
    }
    Ok(raw.into_iter().map(u16::from).collect())
}

/// Checks the magic, then returns the dimensions it announces.
fn read_header(input: &mut Input, magic: u32) -> Result<Vec<usize>> {
    let ndims = (magic & 0xff) as usize;
    let header_len = 4 + 4 * ndims;
    let found = be_u32(&input.read_exact(4, header_len as u64)?);
    if found != magic {
        return Err(DataError::format(
            input.path(),
            format!("bad magic 0x{found:08x}: expected 0x{magic:08x} (IDX unsigned bytes, {ndims} dimensions)"),
        ));
    }
    let dims = input.read_exact(4 * ndims, header_len as u64)?;
    Ok(dims.chunks_exact(4).map(|c| be_u32(c) as usize).collect())
}

/// Reads the data that follows the header and checks the file ends there.
fn read_body(input: &mut Input, dims: &[usize]) -> Result<Vec<u8>> {
    let header_len = 4 + 4 * dims.len() as u64;
    let body_len = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let total = body_len.and_then(|b| (b as u64).checked_add(header_len));
    let (Some(body_len), Some(total)) = (body_len, total) else {
        return Err(DataError::format(
            input.path(),
            format!("impossible dimensions {dims:?}"),
        ));
    };
    let body = input.read_exact(body_len, total)?;
    input.expect_end(total)?;
    Ok(body)
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{gz, write};

    fn idx(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
        let mut out = magic.to_be_bytes().to_vec();
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(body);
        out
    }

    fn images_file(n: u32) -> Vec<u8> {
        let body: Vec<u8> = (0..n * 6).map(|i| i as u8).collect();
        gz(&idx(IMAGES_MAGIC, &[n, 2, 3], &body))
    }

    fn labels_file(labels: &[u8]) -> Vec<u8> {
        gz(&idx(LABELS_MAGIC, &[labels.len() as u32], labels))
    }

    #[test]
    fn loads_gzipped_pair() {
        let dir = tempfile::tempdir().unwrap();
        let im = write(dir.path(), "im.gz", &images_file(3));
        let lb = write(dir.path(), "lb.gz", &labels_file(&[4, 0, 9]));
        let split = load_pair(&im, &lb, 10).unwrap();
        assert_eq!(split.shape, [1, 2, 3]);
        assert_eq!(split.labels, vec![4, 0, 9]);
        assert_eq!(split.image(1), &[6, 7, 8, 9, 10, 11]);
    }

    #[test]
    fn loads_plain_files_too() {
        let dir = tempfile::tempdir().unwrap();
        let lb = write(dir.path(), "lb", &idx(LABELS_MAGIC, &[2], &[1, 2]));
        assert_eq!(read_labels(&lb, 10).unwrap(), vec![1, 2]);
    }

    #[test]
    fn truncated_images_name_file_and_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let raw = idx(IMAGES_MAGIC, &[3, 2, 3], &[0; 10]);
        let im = write(dir.path(), "im.gz", &gz(&raw));
        let msg = read_images(&im).err().unwrap().to_string();
        assert_eq!(msg, format!("{}: truncated: expected 34 bytes, found 26", im.display()));
    }

    #[test]
    fn truncated_header() {
        let dir = tempfile::tempdir().unwrap();
        let im = write(dir.path(), "im", &[0, 0, 8]);
        let msg = read_images(&im).err().unwrap().to_string();
        assert_eq!(msg, format!("{}: truncated: expected 16 bytes, found 3", im.display()));
    }

    #[test]
    fn truncated_gzip_stream() {
        let dir = tempfile::tempdir().unwrap();
        let full = images_file(50);
        let im = write(dir.path(), "im.gz", &full[..full.len() / 2]);
        let msg = read_images(&im).err().unwrap().to_string();
        assert!(msg.starts_with(&im.display().to_string()), "{msg}");
    }

    #[test]
    fn gzip_checksum_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = labels_file(&[1, 2, 3]);
        let crc_at = bytes.len() - 8;
        bytes[crc_at] ^= 1;
        let lb = write(dir.path(), "lb.gz", &bytes);
        let msg = read_labels(&lb, 10).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!("{}: cannot read (corrupt or truncated gzip?)", lb.display())),
            "{msg}"
        );
    }

    #[test]
    fn trailing_data_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let lb = write(dir.path(), "lb", &idx(LABELS_MAGIC, &[2], &[1, 2, 3]));
        let msg = read_labels(&lb, 10).unwrap_err().to_string();
        assert_eq!(
            msg,
            format!("{}: trailing data: expected exactly 10 bytes, found more", lb.display())
        );
    }

    #[test]
    fn bad_magic() {
        let dir = tempfile::tempdir().unwrap();
        let im = write(dir.path(), "im.gz", &labels_file(&[1, 2]));
        let msg = read_images(&im).err().unwrap().to_string();
        assert!(
            msg.starts_with(&format!("{}: bad magic 0x00000801", im.display())),
            "{msg}"
        );
    }

    #[test]
    fn label_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let lb = write(dir.path(), "lb.gz", &labels_file(&[1, 10, 2]));
        let msg = read_labels(&lb, 10).unwrap_err().to_string();
        assert_eq!(
            msg,
            format!("{}: record 1: label 10 out of range (expected 0..10)", lb.display())
        );
    }

    #[test]
    fn count_mismatch_names_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let im = write(dir.path(), "im.gz", &images_file(3));
        let lb = write(dir.path(), "lb.gz", &labels_file(&[1, 2]));
        let msg = load_pair(&im, &lb, 10).unwrap_err().to_string();
        assert!(
            msg.contains(&lb.display().to_string()) && msg.contains(&im.display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("2 labels") && msg.contains("3 images"), "{msg}");
    }

    #[test]
    fn missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let im = dir.path().join("nope.gz");
        let msg = read_images(&im).err().unwrap().to_string();
        assert_eq!(msg, format!("{}: not found", im.display()));
    }

    #[test]
    fn huge_dimensions_do_not_allocate_or_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let im = write(
            dir.path(),
            "im",
            &idx(IMAGES_MAGIC, &[u32::MAX, u32::MAX, u32::MAX], &[0; 4]),
        );
        let msg = read_images(&im).err().unwrap().to_string();
        assert!(msg.starts_with(&im.display().to_string()), "{msg}");
    }

    #[test]
    fn fashion_mnist_rejects_wrong_image_size() {
        let dir = tempfile::tempdir().unwrap();
        let [im, lb] = fashion_mnist_files(dir.path(), SplitKind::Test);
        write(dir.path(), im.file_name().unwrap().to_str().unwrap(), &images_file(2));
        write(
            dir.path(),
            lb.file_name().unwrap().to_str().unwrap(),
            &labels_file(&[1, 2]),
        );
        let msg = load_fashion_mnist(dir.path(), SplitKind::Test).unwrap_err().to_string();
        assert_eq!(msg, format!("{}: expected 28x28 images, found 2x3", im.display()));
    }
}
