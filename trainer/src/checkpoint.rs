//! Checkpoints: every variable of a var store (parameters, batch-norm statistics,
//! range observers) plus the optimizer state and the finished epoch count, in one
//! safetensors file written atomically.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::nn::VarStore;
use tch::Tensor;

use crate::optim::Optimizer;

pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
const MODEL_PREFIX: &str = "model.";
const EPOCH_KEY: &str = "epochs_done";

#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct CheckpointError {
    pub path: PathBuf,
    pub message: String,
}

fn error(path: &Path, message: impl Into<String>) -> CheckpointError {
    CheckpointError {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Write `vs`, the optimizer state and `epochs_done` to `path` (temp file + rename).
pub fn save(path: &Path, vs: &VarStore, optimizer: &Optimizer, epochs_done: usize) -> Result<(), CheckpointError> {
    let mut named: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (format!("{MODEL_PREFIX}{n}"), t))
        .collect();
    named.extend(optimizer.state());
    named.push((EPOCH_KEY.to_string(), Tensor::from_slice(&[epochs_done as i64])));
    let tmp = path.with_extension("safetensors.tmp");
    Tensor::write_safetensors(&named, &tmp).map_err(|e| error(path, format!("cannot write: {e}")))?;
    std::fs::rename(&tmp, path).map_err(|e| error(path, format!("cannot write: {e}")))
}

/// A checkpoint read into memory.
pub struct Checkpoint {
    path: PathBuf,
    tensors: HashMap<String, Tensor>,
}

impl Checkpoint {
    pub fn read(path: &Path) -> Result<Self, CheckpointError> {
        if !path.is_file() {
            return Err(error(path, "not found"));
        }
        let tensors = Tensor::read_safetensors(path)
            .map_err(|e| {
                error(
                    path,
                    format!("corrupt or not a checkpoint: {}", first_line(&e.to_string())),
                )
            })?
            .into_iter()
            .collect();
        Ok(Checkpoint {
            path: path.to_path_buf(),
            tensors,
        })
    }

    pub fn epochs_done(&self) -> Result<usize, CheckpointError> {
        let t = self
            .tensors
            .get(EPOCH_KEY)
            .ok_or_else(|| error(&self.path, "corrupt or not a checkpoint: no epoch count"))?;
        Ok(t.int64_value(&[0]).max(0) as usize)
    }

    /// Copy the model variables into `vs`; a missing variable or a shape mismatch
    /// means the checkpoint belongs to another architecture.
    pub fn load_model(&self, vs: &mut VarStore, what: &str) -> Result<(), CheckpointError> {
        for (name, mut var) in vs.variables() {
            let src = self.tensors.get(&format!("{MODEL_PREFIX}{name}")).ok_or_else(|| {
                error(
                    &self.path,
                    format!("{what} has no variable '{name}': it was trained with a different architecture"),
                )
            })?;
            if src.size() != var.size() {
                return Err(error(&self.path, format!(
                    "{what} variable '{name}' has shape {:?}, expected {:?}: it was trained with a different architecture or width",
                    src.size(),
                    var.size()
                )));
            }
            tch::no_grad(|| var.copy_(src));
        }
        Ok(())
    }

    pub fn load_optimizer(&self, optimizer: &mut Optimizer) -> Result<(), CheckpointError> {
        optimizer
            .load_state(|name| self.tensors.get(name).map(Tensor::shallow_clone))
            .map_err(|m| error(&self.path, m))
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}
