//! The one error type of this crate. Every variant that concerns a file names
//! it first, so the one-line `Display` reads "<path>: <what was wrong>".

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DataError {
    /// A required file (or directory) does not exist. `hint` says how to get it.
    #[error("{}: not found{}", path.display(), hint_suffix(hint))]
    Missing { path: PathBuf, hint: String },

    /// The file exists but could not be read (permissions, I/O error, corrupt gzip stream).
    #[error("{}: {what}: {source}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// The (decompressed) content ends before the size implied by its header.
    #[error("{}: truncated: expected {expected} bytes, found {found}", path.display())]
    Truncated { path: PathBuf, expected: u64, found: u64 },

    /// The content does not follow the format (bad magic, wrong dimensions, trailing bytes, ...).
    #[error("{}: {what}", path.display())]
    Format { path: PathBuf, what: String },

    /// A label is not a valid class index.
    #[error("{}: record {index}: label {label} out of range (expected 0..{classes})", path.display())]
    LabelOutOfRange {
        path: PathBuf,
        index: usize,
        label: i64,
        classes: usize,
    },

    /// An image file and its label file disagree on the number of examples.
    #[error("{}: {labels} labels, but {} has {images} images", labels_path.display(), images_path.display())]
    CountMismatch {
        images_path: PathBuf,
        images: usize,
        labels_path: PathBuf,
        labels: usize,
    },

    /// The dataset has no such split (Animal-MNIST has no test split).
    #[error("{dataset}: no {split} split: {why}")]
    NoSuchSplit {
        dataset: &'static str,
        split: &'static str,
        why: &'static str,
    },

    /// A CIFAR dataset was requested but no CIFAR directory was configured.
    #[error("{dataset}: no CIFAR directory configured (pass one with DataLocations::with_cifar_dir / --cifar-dir)")]
    NoCifarDir { dataset: &'static str },

    /// An unknown dataset name was parsed.
    #[error("unknown dataset '{0}' (expected one of: fashion-mnist, animal-mnist, digits, cifar10, cifar100)")]
    UnknownDataset(String),

    /// An unknown split name was parsed.
    #[error("unknown split '{0}' (expected train or test)")]
    UnknownSplit(String),

    /// A bad argument to an in-memory operation on a `Split`.
    #[error("{0}")]
    InvalidArgument(String),
}

fn hint_suffix(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!(" ({hint})")
    }
}

impl DataError {
    /// Attaches an installation hint to a `Missing` error; other errors pass through.
    pub(crate) fn with_hint(self, new_hint: &str) -> Self {
        match self {
            DataError::Missing { path, hint } if hint.is_empty() => DataError::Missing {
                path,
                hint: new_hint.to_string(),
            },
            other => other,
        }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            what: what.into(),
        }
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
