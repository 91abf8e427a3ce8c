//! Image-classification datasets loaded into memory for the trainer, the CLI
//! and the attack harness.
//!
//! ```no_run
//! use datasets::{load, DataLocations, DatasetId, SplitKind};
//! let loc = DataLocations::default_locations();
//! let train = load(DatasetId::FashionMnist, SplitKind::Train, &loc)?;
//! let (train, val) = train.split_off_validation(0.1, 7)?;
//! println!("{} train / {} val images of shape {:?}", train.len(), val.len(), train.shape);
//! # Ok::<(), datasets::DataError>(())
//! ```
//!
//! Every image is stored as `C*H*W` bytes (channel-major), pixels 0..=255;
//! every seeded operation uses ChaCha8, so results match across platforms.

pub mod animal;
pub mod cifar;
pub mod digits;
mod error;
pub mod idx;
mod input;
pub mod pickle;
mod split;
#[cfg(test)]
mod testutil;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use error::{DataError, Result};
pub use split::Split;

/// The datasets this crate knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetId {
    FashionMnist,
    AnimalMnist,
    Digits,
    Cifar10,
    Cifar100,
}

impl DatasetId {
    pub const ALL: [DatasetId; 5] = [
        DatasetId::FashionMnist,
        DatasetId::AnimalMnist,
        DatasetId::Digits,
        DatasetId::Cifar10,
        DatasetId::Cifar100,
    ];

    /// The command-line name: "fashion-mnist", "animal-mnist", "digits", "cifar10", "cifar100".
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetId::FashionMnist => "fashion-mnist",
            DatasetId::AnimalMnist => "animal-mnist",
            DatasetId::Digits => "digits",
            DatasetId::Cifar10 => "cifar10",
            DatasetId::Cifar100 => "cifar100",
        }
    }

    /// The human-readable name, e.g. "Fashion-MNIST".
    pub fn display_name(self) -> &'static str {
        match self {
            DatasetId::FashionMnist => "Fashion-MNIST",
            DatasetId::AnimalMnist => "Animal-MNIST",
            DatasetId::Digits => "scikit-learn digits",
            DatasetId::Cifar10 => "CIFAR-10",
            DatasetId::Cifar100 => "CIFAR-100",
        }
    }

    /// Image shape `[C, H, W]`.
    pub fn shape(self) -> [usize; 3] {
        match self {
            DatasetId::FashionMnist | DatasetId::AnimalMnist => [1, 28, 28],
            DatasetId::Digits => [1, 8, 8],
            DatasetId::Cifar10 | DatasetId::Cifar100 => [3, 32, 32],
        }
    }

    pub fn classes(self) -> usize {
        match self {
            DatasetId::Cifar100 => 100,
            _ => 10,
        }
    }

    /// Number of images in the (train, test) splits of the official files.
    pub fn sizes(self) -> (usize, usize) {
        match self {
            DatasetId::FashionMnist => (60_000, 10_000),
            DatasetId::AnimalMnist => (10_000, 0),
            DatasetId::Digits => (digits::TRAIN_ROWS, digits::ROWS - digits::TRAIN_ROWS),
            DatasetId::Cifar10 | DatasetId::Cifar100 => (50_000, 10_000),
        }
    }

    fn note(self) -> &'static str {
        match self {
            DatasetId::FashionMnist => "default training set; Debian package dataset-fashion-mnist",
            DatasetId::AnimalMnist => {
                "query set for extraction attacks; no test split (all 10000 images are train; loading test is an error)"
            }
            DatasetId::Digits => "tiny fallback; fixed split: first 1437 rows train, last 360 test",
            DatasetId::Cifar10 | DatasetId::Cifar100 => {
                "binary version; not shipped, pass a directory with the batches (--cifar-dir)"
            }
        }
    }

    /// How to obtain the files, appended to "not found" errors.
    fn install_hint(self) -> &'static str {
        match self {
            DatasetId::FashionMnist => "install the Debian package dataset-fashion-mnist",
            DatasetId::AnimalMnist | DatasetId::Digits => "run scripts/setup.sh or set DIVQAT_DATA_DIR",
            DatasetId::Cifar10 => {
                "expected the CIFAR-10 binary batches in the CIFAR directory or its cifar-10-batches-bin/"
            }
            DatasetId::Cifar100 => {
                "expected the CIFAR-100 binary files in the CIFAR directory or its cifar-100-binary/"
            }
        }
    }
}

impl fmt::Display for DatasetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DatasetId {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        DatasetId::ALL
            .into_iter()
            .find(|id| id.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| DataError::UnknownDataset(s.to_string()))
    }
}

/// Which part of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitKind {
    Train,
    Test,
}

impl SplitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SplitKind::Train => "train",
            SplitKind::Test => "test",
        }
    }
}

impl fmt::Display for SplitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SplitKind {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "train" => Ok(SplitKind::Train),
            "test" => Ok(SplitKind::Test),
            _ => Err(DataError::UnknownSplit(s.to_string())),
        }
    }
}

/// Where the dataset files live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataLocations {
    /// The project's downloaded data: `animal-mnist/` and `digits/` below it.
    pub deps_data: PathBuf,
    /// The directory with the four Fashion-MNIST IDX `.gz` files.
    pub fashion_mnist: PathBuf,
    /// A directory with CIFAR binary batches, if the user has them.
    pub cifar_dir: Option<PathBuf>,
}

/// Environment variable that overrides `DataLocations::deps_data`.
pub const DATA_DIR_ENV: &str = "DIVQAT_DATA_DIR";
/// Where Debian's dataset-fashion-mnist package installs the files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

impl DataLocations {
    /// `deps_data` = `$DIVQAT_DATA_DIR` if set, else `<workspace>/.deps/data`;
    /// Fashion-MNIST from the Debian package; no CIFAR directory.
    pub fn default_locations() -> Self {
        let deps_data = match std::env::var_os(DATA_DIR_ENV) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => workspace_deps_data(),
        };
        DataLocations {
            deps_data,
            fashion_mnist: PathBuf::from(FASHION_MNIST_DIR),
            cifar_dir: None,
        }
    }

    pub fn with_cifar_dir(self, dir: Option<PathBuf>) -> Self {
        DataLocations { cifar_dir: dir, ..self }
    }

    pub fn with_deps_data(self, dir: PathBuf) -> Self {
        DataLocations { deps_data: dir, ..self }
    }

    pub fn with_fashion_mnist(self, dir: PathBuf) -> Self {
        DataLocations {
            fashion_mnist: dir,
            ..self
        }
    }

    pub fn animal_mnist_dir(&self) -> PathBuf {
        self.deps_data.join("animal-mnist")
    }

    pub fn digits_dir(&self) -> PathBuf {
        self.deps_data.join("digits")
    }

    /// The files a split is read from (for CIFAR without a directory: none).
    pub fn files(&self, id: DatasetId, kind: SplitKind) -> Vec<PathBuf> {
        match id {
            DatasetId::FashionMnist => idx::fashion_mnist_files(&self.fashion_mnist, kind).to_vec(),
            DatasetId::AnimalMnist => animal::files(&self.animal_mnist_dir()).to_vec(),
            DatasetId::Digits => vec![digits::file(&self.digits_dir())],
            DatasetId::Cifar10 | DatasetId::Cifar100 => match &self.cifar_dir {
                Some(dir) => cifar::split_files(dir, cifar_variant(id), kind),
                None => Vec::new(),
            },
        }
    }

    /// Where a dataset lives, as shown in the catalog.
    fn location(&self, id: DatasetId) -> String {
        let dir = match id {
            DatasetId::FashionMnist => self.fashion_mnist.clone(),
            DatasetId::AnimalMnist => self.animal_mnist_dir(),
            DatasetId::Digits => digits::file(&self.digits_dir()),
            DatasetId::Cifar10 | DatasetId::Cifar100 => match &self.cifar_dir {
                Some(dir) => dir.clone(),
                None => return "(no CIFAR directory given)".to_string(),
            },
        };
        dir.display().to_string()
    }

    /// Whether all files of both splits exist (no decoding).
    pub fn is_installed(&self, id: DatasetId) -> bool {
        let files: Vec<PathBuf> = [SplitKind::Train, SplitKind::Test]
            .into_iter()
            .flat_map(|k| self.files(id, k))
            .collect();
        !files.is_empty() && files.iter().all(|f| f.is_file())
    }
}

impl Default for DataLocations {
    fn default() -> Self {
        Self::default_locations()
    }
}

/// `<workspace root>/.deps/data`, from this crate's location at build time.
fn workspace_deps_data() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).join(".deps").join("data")
}

fn cifar_variant(id: DatasetId) -> cifar::Variant {
    match id {
        DatasetId::Cifar100 => cifar::Variant::Cifar100,
        _ => cifar::Variant::Cifar10,
    }
}

/// One row of the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DatasetInfo {
    pub id: DatasetId,
    pub name: String,
    /// `[C, H, W]`.
    pub shape: [usize; 3],
    pub classes: usize,
    pub train: usize,
    pub test: usize,
    /// All files exist (checked cheaply, without decoding).
    pub installed: bool,
    pub location: String,
    pub note: String,
}

/// Every known dataset with its shape, sizes and whether its files are present.
pub fn catalog(loc: &DataLocations) -> Vec<DatasetInfo> {
    DatasetId::ALL.into_iter().map(|id| info(id, loc)).collect()
}

/// The catalog row of one dataset.
pub fn info(id: DatasetId, loc: &DataLocations) -> DatasetInfo {
    let (train, test) = id.sizes();
    DatasetInfo {
        id,
        name: id.display_name().to_string(),
        shape: id.shape(),
        classes: id.classes(),
        train,
        test,
        installed: loc.is_installed(id),
        location: loc.location(id),
        note: id.note().to_string(),
    }
}

/// Loads one split into memory. Animal-MNIST has no test split: asking for it
/// is a `DataError::NoSuchSplit` (use `Split::split_off_validation` instead).
pub fn load(id: DatasetId, kind: SplitKind, loc: &DataLocations) -> Result<Split> {
    let loaded = match id {
        DatasetId::FashionMnist => idx::load_fashion_mnist(&loc.fashion_mnist, kind),
        DatasetId::AnimalMnist => match kind {
            SplitKind::Train => animal::load(&loc.animal_mnist_dir()),
            SplitKind::Test => Err(DataError::NoSuchSplit {
                dataset: id.as_str(),
                split: kind.as_str(),
                why: "all 10000 images are in the train split (a query set for extraction attacks)",
            }),
        },
        DatasetId::Digits => digits::load(&loc.digits_dir(), kind),
        DatasetId::Cifar10 | DatasetId::Cifar100 => {
            let dir = loc
                .cifar_dir
                .as_deref()
                .ok_or(DataError::NoCifarDir { dataset: id.as_str() })?;
            cifar::load(dir, cifar_variant(id), kind)
        }
    };
    loaded.map_err(|e| e.with_hint(id.install_hint()))
}

#[cfg(test)]
mod tests;
