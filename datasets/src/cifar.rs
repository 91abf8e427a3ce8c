//! CIFAR-10 / CIFAR-100 "binary version" batches: fixed-size records of label
//! byte(s) followed by 3072 pixel bytes (3x32x32, channel-major, as we store them).

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::input::read_all;
use crate::split::Split;
use crate::SplitKind;

const PIXELS: usize = 3 * 32 * 32;
/// Far above the real CIFAR-100 train.bin (153 MB); guards against wrong files.
const MAX_FILE_BYTES: usize = 1 << 30;

/// Which CIFAR variant: its file layout and record format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Cifar10,
    Cifar100,
}

impl Variant {
    fn subdir(self) -> &'static str {
        match self {
            Variant::Cifar10 => "cifar-10-batches-bin",
            Variant::Cifar100 => "cifar-100-binary",
        }
    }

    fn file_names(self, kind: SplitKind) -> Vec<String> {
        match (self, kind) {
            (Variant::Cifar10, SplitKind::Train) => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
            (Variant::Cifar10, SplitKind::Test) => vec!["test_batch.bin".into()],
            (Variant::Cifar100, SplitKind::Train) => vec!["train.bin".into()],
            (Variant::Cifar100, SplitKind::Test) => vec!["test.bin".into()],
        }
    }

    /// Label bytes per record and which of them is the label we keep.
    fn label_layout(self) -> (usize, usize) {
        match self {
            Variant::Cifar10 => (1, 0),
            Variant::Cifar100 => (2, 1), // (coarse, fine): keep the fine label
        }
    }

    pub fn classes(self) -> usize {
        match self {
            Variant::Cifar10 => 10,
            Variant::Cifar100 => 100,
        }
    }
}

/// The files of a split: in `dir` itself if its first file is there, otherwise
/// in the archive's usual subdirectory.
pub fn split_files(dir: &Path, variant: Variant, kind: SplitKind) -> Vec<PathBuf> {
    let names = variant.file_names(kind);
    let nested = dir.join(variant.subdir());
    let base = if !dir.join(&names[0]).exists() && nested.join(&names[0]).exists() {
        nested
    } else {
        dir.to_path_buf()
    };
    names.iter().map(|n| base.join(n)).collect()
}

/// Loads a split from the batches in `dir` (or its archive subdirectory).
pub fn load(dir: &Path, variant: Variant, kind: SplitKind) -> Result<Split> {
    let mut split = Split::empty([3, 32, 32], variant.classes());
    for path in split_files(dir, variant, kind) {
        let bytes = read_all(&path, MAX_FILE_BYTES)?;
        append_records(&mut split, &path, &bytes, variant)?;
    }
    Ok(split)
}

/// Decodes the records of one batch file into `split`.
fn append_records(split: &mut Split, path: &Path, bytes: &[u8], variant: Variant) -> Result<()> {
    let (label_bytes, label_at) = variant.label_layout();
    let record = label_bytes + PIXELS;
    check_size(path, bytes.len(), record)?;
    split.images.reserve(bytes.len() / record * PIXELS);
    for (index, rec) in bytes.chunks_exact(record).enumerate() {
        let label = rec[label_at];
        if usize::from(label) >= variant.classes() {
            let classes = variant.classes();
            return Err(DataError::LabelOutOfRange {
                path: path.into(),
                index,
                label: label.into(),
                classes,
            });
        }
        split.labels.push(label.into());
        split.images.extend_from_slice(&rec[label_bytes..]);
    }
    Ok(())
}

fn check_size(path: &Path, len: usize, record: usize) -> Result<()> {
    if len == 0 {
        return Err(DataError::format(
            path,
            format!("empty file: expected {record}-byte records"),
        ));
    }
    if !len.is_multiple_of(record) {
        let expected = (len / record + 1) * record;
        return Err(DataError::Truncated {
            path: path.into(),
            expected: expected as u64,
            found: len as u64,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::write;

    /// One record; pixel bytes are `seed, seed+1, ...` (wrapping).
    fn record(labels: &[u8], seed: u8) -> Vec<u8> {
        let mut out = labels.to_vec();
        out.extend((0..PIXELS).map(|i| seed.wrapping_add(i as u8)));
        out
    }

    fn write_cifar10(dir: &Path, labels_per_file: &[&[u8]; 6]) {
        let names = [
            "data_batch_1",
            "data_batch_2",
            "data_batch_3",
            "data_batch_4",
            "data_batch_5",
            "test_batch",
        ];
        for (name, labels) in names.iter().zip(labels_per_file) {
            let bytes: Vec<u8> = labels.iter().flat_map(|&l| record(&[l], l * 3)).collect();
            write(dir, &format!("{name}.bin"), &bytes);
        }
    }

    #[test]
    fn cifar10_train_concatenates_five_batches() {
        let dir = tempfile::tempdir().unwrap();
        write_cifar10(dir.path(), &[&[1, 2], &[3], &[4], &[5, 6], &[7], &[9]]);
        let train = load(dir.path(), Variant::Cifar10, SplitKind::Train).unwrap();
        assert_eq!(train.labels, vec![1, 2, 3, 4, 5, 6, 7]);
        assert_eq!((train.shape, train.classes), ([3, 32, 32], 10));
        assert_eq!(train.image(2)[..3], [9, 10, 11]);
        let test = load(dir.path(), Variant::Cifar10, SplitKind::Test).unwrap();
        assert_eq!(test.labels, vec![9]);
        assert_eq!(test.image(0)[PIXELS - 1], 27u8.wrapping_add(255));
    }

    #[test]
    fn cifar10_in_archive_subdirectory() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("cifar-10-batches-bin");
        std::fs::create_dir(&nested).unwrap();
        write_cifar10(&nested, &[&[1], &[2], &[3], &[4], &[5], &[6]]);
        let test = load(dir.path(), Variant::Cifar10, SplitKind::Test).unwrap();
        assert_eq!(test.labels, vec![6]);
    }

    #[test]
    fn cifar100_uses_fine_label() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("cifar-100-binary");
        std::fs::create_dir(&nested).unwrap();
        let bytes: Vec<u8> = [record(&[3, 99], 1), record(&[19, 42], 2)].concat();
        write(&nested, "test.bin", &bytes);
        let test = load(dir.path(), Variant::Cifar100, SplitKind::Test).unwrap();
        assert_eq!((test.labels.clone(), test.classes), (vec![99, 42], 100));
        assert_eq!(test.image(1)[0], 2);
    }

    #[test]
    fn label_out_of_range_names_file_and_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "test.bin",
            &[record(&[0, 5], 0), record(&[0, 100], 0)].concat(),
        );
        let msg = load(dir.path(), Variant::Cifar100, SplitKind::Test)
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            format!("{}: record 1: label 100 out of range (expected 0..100)", path.display())
        );
        let path = write(dir.path(), "test_batch.bin", &record(&[10], 0));
        let msg = load(dir.path(), Variant::Cifar10, SplitKind::Test)
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            format!("{}: record 0: label 10 out of range (expected 0..10)", path.display())
        );
    }

    #[test]
    fn truncated_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = [record(&[1], 0), record(&[2], 0)].concat();
        bytes.truncate(3073 + 1000);
        let path = write(dir.path(), "test_batch.bin", &bytes);
        let msg = load(dir.path(), Variant::Cifar10, SplitKind::Test)
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            format!("{}: truncated: expected 6146 bytes, found 4073", path.display())
        );
    }

    #[test]
    fn missing_batch_names_it() {
        let dir = tempfile::tempdir().unwrap();
        write_cifar10(dir.path(), &[&[1], &[2], &[3], &[4], &[5], &[6]]);
        std::fs::remove_file(dir.path().join("data_batch_4.bin")).unwrap();
        let msg = load(dir.path(), Variant::Cifar10, SplitKind::Train)
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            format!("{}: not found", dir.path().join("data_batch_4.bin").display())
        );
    }

    #[test]
    fn empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "train.bin", &[]);
        let msg = load(dir.path(), Variant::Cifar100, SplitKind::Train)
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with(&format!("{}: empty file", path.display())), "{msg}");
    }
}
