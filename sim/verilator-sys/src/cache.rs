//! The on-disk cache of built models and of Verilator's runtime objects.
//!
//! Layout under the cache root ([`default_cache_root`] unless
//! `BuildOptions::cache_dir` says otherwise):
//!
//! ```text
//! models/<key>/             one built model: libdivqat_model.so, top.v,
//!                           shim.cpp, build.log, obj/ (Verilator's C++)
//! models/<key>.lock         held while <key> is being built
//! models/.tmp-<key>-<pid>-<n>/   a build in progress, or a failed compile
//!                           kept for debugging (safe to delete)
//! runtime/<name>-<key>/<name>.o  verilated.cpp & co., compiled once per
//!                           Verilator version, g++ version and flags
//! ```
//!
//! An entry exists only once complete: it is built in a temporary sibling
//! directory and renamed into place, so a reader never sees half of one and
//! concurrent builders of one key cannot corrupt each other. Entries are
//! never modified afterwards; deleting the whole root is always safe when no
//! build is running.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::VerilatorError;

/// `$DIVQAT_CACHE_DIR/verilator` when that variable is set, otherwise
/// `<workspace>/target/divqat-cache/verilator`, the workspace being found
/// from this crate's source location at compile time (a binary installed
/// elsewhere should set `DIVQAT_CACHE_DIR`).
pub fn default_cache_root() -> PathBuf {
    divqat_cache_dir().join("verilator")
}

/// `$DIVQAT_CACHE_DIR` when set, otherwise `<workspace>/target/divqat-cache`: the
/// root of every divqat cache (Verilator models here, synthesis runs in `boards`).
pub fn divqat_cache_dir() -> PathBuf {
    match std::env::var_os("DIVQAT_CACHE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_dir().join("target/divqat-cache"),
    }
}

/// This crate lives in `<workspace>/sim/verilator-sys`.
fn workspace_dir() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.ancestors().nth(2).unwrap_or(manifest_dir).to_path_buf()
}

/// Hex SHA-256 (first 128 bits) of labelled parts; each part is
/// length-prefixed so that no two different lists hash alike.
pub fn hash_key(parts: &[(&str, &str)]) -> String {
    let mut hasher = Sha256::new();
    for (label, value) in parts {
        for field in [label, value] {
            hasher.update((field.len() as u64).to_le_bytes());
            hasher.update(field.as_bytes());
        }
    }
    hasher.finalize()[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Whether [`ensure_entry`] found the entry or built it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Found,
    Built,
}

/// An error of an [`ensure_entry`] fill: says whether the failed temporary
/// directory is worth keeping for debugging.
pub trait FillError: From<VerilatorError> {
    fn keeps_build_dir(&self) -> bool {
        false
    }
}

impl FillError for VerilatorError {
    fn keeps_build_dir(&self) -> bool {
        VerilatorError::keeps_build_dir(self)
    }
}

/// Makes sure directory `entry` exists, filling a fresh temporary sibling
/// with `fill` and renaming it into place when it does not.
///
/// A lock file beside the entry makes a second builder of the same key wait
/// and then use the first one's result instead of repeating the work; the
/// rename alone already keeps concurrent builds correct (where locking is
/// unsupported the builds merely duplicate work). On failure the temporary
/// directory is removed unless the error asks to keep it for debugging.
pub fn ensure_entry<E: FillError>(entry: &Path, fill: impl FnOnce(&Path) -> Result<(), E>) -> Result<Entry, E> {
    if entry.is_dir() {
        return Ok(Entry::Found);
    }
    let parent = entry.parent().unwrap_or(Path::new("."));
    create_dir_all(parent)?;
    let _lock = lock(&entry.with_extension("lock"));
    if entry.is_dir() {
        return Ok(Entry::Found);
    }
    let temp = temp_sibling(entry);
    create_dir_all(&temp)?;
    if let Err(err) = fill(&temp) {
        if !err.keeps_build_dir() {
            let _ = std::fs::remove_dir_all(&temp);
        }
        return Err(err);
    }
    match std::fs::rename(&temp, entry) {
        Ok(()) => Ok(Entry::Built),
        // Another builder (without a working lock) renamed first: use theirs.
        Err(_) if entry.is_dir() => {
            let _ = std::fs::remove_dir_all(&temp);
            Ok(Entry::Found)
        }
        Err(source) => Err(VerilatorError::Io {
            action: "move the build into the cache at",
            path: entry.to_path_buf(),
            source,
        }
        .into()),
    }
}

/// An exclusive lock on `path`, released when the file is dropped; `None`
/// when the file system cannot lock (the build then just runs unlocked).
fn lock(path: &Path) -> Option<File> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ok()?;
    file.lock().ok()?;
    Some(file)
}

/// `.tmp-<name>-<pid>-<n>` next to `entry`: unique within and across
/// processes, and on the same file system so that the rename is atomic.
fn temp_sibling(entry: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = entry.file_name().unwrap_or_default().to_string_lossy();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    entry.with_file_name(format!(".tmp-{name}-{}-{n}", std::process::id()))
}

pub fn create_dir_all(path: &Path) -> Result<(), VerilatorError> {
    std::fs::create_dir_all(path).map_err(|source| VerilatorError::Io {
        action: "create directory",
        path: path.to_path_buf(),
        source,
    })
}

pub fn write_file(path: &Path, contents: &str) -> Result<(), VerilatorError> {
    std::fs::write(path, contents).map_err(|source| VerilatorError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_every_part_and_its_boundaries() {
        let key = hash_key(&[("a", "bc")]);
        assert_eq!(key.len(), 32);
        assert_ne!(key, hash_key(&[("a", "b")]));
        assert_ne!(key, hash_key(&[("ab", "c")]));
        assert_eq!(key, hash_key(&[("a", "bc")]));
    }

    #[test]
    fn default_root_is_in_the_workspace_target_dir() {
        if std::env::var_os("DIVQAT_CACHE_DIR").is_none() {
            let root = default_cache_root();
            assert!(root.ends_with("target/divqat-cache/verilator"), "{root:?}");
            assert!(root
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("Cargo.toml")
                .is_file());
        }
    }

    #[test]
    fn an_entry_is_built_once_and_failures_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("models/k");
        let failed = ensure_entry(&entry, |temp| {
            write_file(&temp.join("half"), "x")?;
            Err(VerilatorError::NotOnPath)
        });
        assert!(failed.is_err());
        assert!(!entry.exists());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("models"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|name| name.to_string_lossy().starts_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        let built = ensure_entry(&entry, |temp| write_file(&temp.join("lib"), "1"));
        assert_eq!(built.unwrap(), Entry::Built);
        let again = ensure_entry::<VerilatorError>(&entry, |_| panic!("must not rebuild"));
        assert_eq!(again.unwrap(), Entry::Found);
        assert_eq!(std::fs::read_to_string(entry.join("lib")).unwrap(), "1");
    }

    #[test]
    fn concurrent_builders_of_one_key_agree() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("k");
        let results: Vec<Entry> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    let entry = &entry;
                    scope.spawn(move || {
                        ensure_entry(entry, |temp| write_file(&temp.join("id"), &i.to_string())).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|r| **r == Entry::Built).count(), 1);
        assert!(std::fs::read_to_string(entry.join("id")).is_ok());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "only the entry and its lock file: {names:?}");
    }
}
