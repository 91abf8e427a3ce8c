//! Animal-MNIST 0.4: two gzipped pickles of numpy arrays — images uint8
//! (N, 28, 28) and labels int64 (N,). In the released files the raw pixels
//! start at byte 150 of the un-gzipped image pickle and the labels at byte 146,
//! but we do not rely on offsets: the pickle is parsed and its dtype, shape and
//! length are checked.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::input::read_all;
use crate::pickle::{parse_ndarray, NdArray};
use crate::split::Split;

pub const IMAGES_FILE: &str = "animal_data_version_3.gz";
pub const LABELS_FILE: &str = "animal_label_version_3.gz";
const CLASSES: usize = 10;
const SIDE: usize = 28;
/// The real image pickle is 7.8 MB; anything far larger is the wrong file.
const MAX_FILE_BYTES: usize = 256 << 20;

/// The (images, labels) files inside the `animal-mnist` data directory.
pub fn files(dir: &Path) -> [PathBuf; 2] {
    [dir.join(IMAGES_FILE), dir.join(LABELS_FILE)]
}

/// Loads all Animal-MNIST images (1x28x28 gray, 10 classes).
pub fn load(dir: &Path) -> Result<Split> {
    let [images_path, labels_path] = files(dir);
    let image_bytes = read_all(&images_path, MAX_FILE_BYTES)?;
    let images = parse_images(&images_path, &image_bytes)?;
    let label_bytes = read_all(&labels_path, MAX_FILE_BYTES)?;
    let labels = parse_labels(&labels_path, &label_bytes)?;
    let count = images.len() / (SIDE * SIDE);
    if labels.len() != count {
        return Err(DataError::CountMismatch {
            images_path,
            images: count,
            labels_path,
            labels: labels.len(),
        });
    }
    Ok(Split {
        shape: [1, SIDE, SIDE],
        classes: CLASSES,
        images,
        labels,
    })
}

/// The pixels of a uint8 (N, 28, 28) C-ordered array pickle.
fn parse_images(path: &Path, bytes: &[u8]) -> Result<Vec<u8>> {
    let array = parse_ndarray(path, bytes)?;
    let ok = array.dtype == "u1" && array.shape.len() == 3 && array.shape[1..] == [SIDE, SIDE];
    if !ok || array.fortran_order {
        return Err(DataError::format(
            path,
            format!(
                "expected a uint8 (N, 28, 28) C-ordered array, found {}",
                describe(&array)
            ),
        ));
    }
    Ok(array.data.to_vec())
}

/// The labels of an integer (N,) array pickle, each checked to be `< 10`.
fn parse_labels(path: &Path, bytes: &[u8]) -> Result<Vec<u16>> {
    let array = parse_ndarray(path, bytes)?;
    if array.int_size().is_none() || array.shape.len() != 1 {
        return Err(DataError::format(
            path,
            format!("expected an integer (N,) array, found {}", describe(&array)),
        ));
    }
    (0..array.shape[0])
        .map(|index| {
            let value = array.int_at(index).unwrap_or(-1);
            u16::try_from(value)
                .ok()
                .filter(|&l| usize::from(l) < CLASSES)
                .ok_or_else(|| {
                    let label = i64::try_from(value).unwrap_or(i64::MIN);
                    DataError::LabelOutOfRange {
                        path: path.to_path_buf(),
                        index,
                        label,
                        classes: CLASSES,
                    }
                })
        })
        .collect()
}

fn describe(array: &NdArray) -> String {
    let order = if array.fortran_order { ", Fortran-ordered" } else { "" };
    format!(
        "dtype {}{} shape {:?}{order}",
        array.byte_order, array.dtype, array.shape
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pickle::write_ndarray;
    use crate::testutil::{gz, write};

    fn write_files(dir: &Path, n: u32, labels: &[i64]) -> [PathBuf; 2] {
        let pixels: Vec<u8> = (0..n as usize * 784).map(|i| (i % 251) as u8).collect();
        let label_bytes: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
        [
            write(dir, IMAGES_FILE, &gz(&write_ndarray("u1", "|", &[n, 28, 28], &pixels))),
            write(
                dir,
                LABELS_FILE,
                &gz(&write_ndarray("i8", "<", &[labels.len() as u32], &label_bytes)),
            ),
        ]
    }

    #[test]
    fn loads_pickled_arrays() {
        let dir = tempfile::tempdir().unwrap();
        write_files(dir.path(), 3, &[0, 9, 4]);
        let split = load(dir.path()).unwrap();
        assert_eq!((split.len(), split.shape, split.classes), (3, [1, 28, 28], 10));
        assert_eq!(split.labels, vec![0, 9, 4]);
        assert_eq!(split.image(1)[0], (784 % 251) as u8);
    }

    #[test]
    fn fake_header_matches_the_real_layout() {
        // Offsets stated for the real files: pixels at 150, labels at 146.
        let images = write_ndarray("u1", "|", &[10000, 28, 28], &[]);
        let labels = write_ndarray("i8", "<", &[10000], &[]);
        assert_eq!((images.len() - 14, labels.len() - 14), (150, 146));
    }

    #[test]
    fn label_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let [_, labels] = write_files(dir.path(), 3, &[0, 1, -1]);
        let msg = load(dir.path()).unwrap_err().to_string();
        assert_eq!(
            msg,
            format!("{}: record 2: label -1 out of range (expected 0..10)", labels.display())
        );
    }

    #[test]
    fn count_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let [_, labels] = write_files(dir.path(), 3, &[0, 1]);
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!("{}: 2 labels, but ", labels.display())),
            "{msg}"
        );
    }

    #[test]
    fn wrong_dtype_or_shape() {
        let dir = tempfile::tempdir().unwrap();
        let images = write(
            dir.path(),
            IMAGES_FILE,
            &gz(&write_ndarray("u1", "|", &[2, 27, 29], &[0; 2 * 27 * 29])),
        );
        let msg = load(dir.path()).unwrap_err().to_string();
        assert_eq!(
            msg,
            format!(
                "{}: expected a uint8 (N, 28, 28) C-ordered array, found dtype |u1 shape [2, 27, 29]",
                images.display()
            )
        );
    }

    #[test]
    fn truncated_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let [images, labels] = write_files(dir.path(), 2, &[0, 1]);
        let raw = write_ndarray("u1", "|", &[2, 28, 28], &[0; 2 * 784]);
        write(dir.path(), IMAGES_FILE, &gz(&raw[..1000]));
        let msg = load(dir.path()).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!(
                "{}: pickle opcode 0x42 at byte 144: truncated: needs 1568 bytes at byte 149, file ends at 1000",
                images.display()
            )),
            "{msg}"
        );
        std::fs::remove_file(&labels).unwrap();
        write_files(dir.path(), 2, &[0, 1]);
        std::fs::remove_file(&labels).unwrap();
        assert_eq!(
            load(dir.path()).unwrap_err().to_string(),
            format!("{}: not found", labels.display())
        );
    }
}
