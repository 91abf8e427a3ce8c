//! Step bookkeeping on disk. A step's directory `DIR/<step>/` holds, besides its
//! outputs:
//! - `.inputs`: the hash of the inputs it is working on, written before it starts;
//! - `stamp.json`: the same hash plus its run time, written (atomically) last.
//!
//! A step is up to date when its stamp's hash equals the hash of its current inputs;
//! it is resumed when only `.inputs` matches (it was interrupted: its partial
//! outputs, e.g. a training checkpoint or finished attack cells, are kept); otherwise
//! its directory is emptied and it starts over.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

pub const STAMP_FILE: &str = "stamp.json";
const INPUTS_FILE: &str = ".inputs";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stamp {
    pub step: String,
    /// Hash of the step's config sections and its dependencies' hashes.
    pub inputs: String,
    /// Wall time of the run that finished the step (resumed parts included only
    /// from the last invocation).
    pub seconds: f64,
}

/// What a step's directory says about its current inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    UpToDate,
    Interrupted,
    Stale,
}

pub fn read_stamp(dir: &Path) -> Option<Stamp> {
    let text = std::fs::read_to_string(dir.join(STAMP_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn state(dir: &Path, inputs: &str) -> State {
    if read_stamp(dir).is_some_and(|s| s.inputs == inputs) {
        return State::UpToDate;
    }
    match std::fs::read_to_string(dir.join(INPUTS_FILE)) {
        Ok(text) if text.trim() == inputs => State::Interrupted,
        _ => State::Stale,
    }
}

/// Make `dir` ready for a run on `inputs`: kept when resuming, emptied otherwise.
/// The old stamp goes first, so a crash never leaves a stamp over new outputs.
pub fn begin(dir: &Path, inputs: &str, resume: bool) -> anyhow::Result<()> {
    if !resume && dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("{}: cannot remove the stale step", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let stamp = dir.join(STAMP_FILE);
    if stamp.exists() {
        std::fs::remove_file(&stamp).with_context(|| format!("{}: cannot remove", stamp.display()))?;
    }
    write_atomic(&dir.join(INPUTS_FILE), inputs.as_bytes())
}

pub fn finish(dir: &Path, stamp: &Stamp) -> anyhow::Result<()> {
    write_atomic(&dir.join(STAMP_FILE), serde_json::to_string_pretty(stamp)?.as_bytes())
}

/// Write through a temporary file and a rename, so readers never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    compiler::format::write_atomic(path, bytes).with_context(|| format!("{}: cannot write", path.display()))
}

/// Serialize `value` as pretty JSON into `path`, atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    write_atomic(path, serde_json::to_string_pretty(value)?.as_bytes())
}

/// Read a JSON file a step wrote; errors name the file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: unexpected contents", path.display()))
}
