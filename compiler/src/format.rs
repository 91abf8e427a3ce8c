//! The model file: one safetensors container. The layer structure is JSON in the
//! safetensors metadata (key `model`); weights, weight scales, biases and
//! requantizers are tensors named `<layer>.<field>`. A SHA-256 over the JSON and every
//! tensor's bytes (key `sha256`) makes any flipped byte detectable.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use sha2::{Digest, Sha256};

use crate::arith::Requant;
use crate::ir::{MacParams, Model, Op, FORMAT_VERSION};
use crate::validate::{validate, ModelError};

/// Value of the metadata key `format`, telling our files from other safetensors files.
pub const FORMAT_TAG: &str = "divqat-integer-model";

/// An error reading or writing a model file; its message names the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {error}", path.display())]
pub struct ModelFileError {
    pub path: PathBuf,
    pub error: ModelError,
}

fn format_err(msg: impl Into<String>) -> ModelError {
    ModelError::Format(msg.into())
}

/// Validate and write `model` to `path` atomically (temp file + rename).
pub fn save(model: &Model, path: &Path) -> Result<(), ModelFileError> {
    let wrap = |error| ModelFileError {
        path: path.to_path_buf(),
        error,
    };
    validate(model).map_err(wrap)?;
    let bytes = to_bytes(model).map_err(wrap)?;
    write_atomic(path, &bytes).map_err(|e| wrap(format_err(format!("cannot write: {e}"))))
}

/// Read, verify and validate a model file.
pub fn load(path: &Path) -> Result<Model, ModelFileError> {
    let wrap = |error| ModelFileError {
        path: path.to_path_buf(),
        error,
    };
    let bytes = std::fs::read(path).map_err(|e| wrap(format_err(format!("cannot read: {e}"))))?;
    from_bytes(&bytes).map_err(wrap)
}

/// Write `bytes` to a temporary file beside `path`, flush it to disk, then rename it
/// over `path`, so readers never see a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Temp files are created 0600; the result should be an ordinary file (0666 less
    // the umask), like any other file the user writes.
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// One named little-endian tensor ready for the container.
struct RawTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

fn le_bytes<T: Copy, const N: usize>(values: &[T], to_le: fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| to_le(v)).collect()
}

fn tensors_of(model: &Model) -> BTreeMap<String, RawTensor> {
    let mut out = BTreeMap::new();
    for layer in &model.layers {
        let Some(p) = layer.op.mac_params() else { continue };
        let outputs = p.bias.len();
        let weight_shape = match &layer.op {
            Op::Conv2d(c) => vec![c.out_channels, c.in_channels, c.kernel[0], c.kernel[1]],
            Op::Linear(l) => vec![l.out_features, l.in_features],
            _ => unreachable!("only conv2d and linear have MAC parameters"),
        };
        let name = |field: &str| format!("{}.{field}", layer.name);
        let mults: Vec<u32> = p.requant.iter().map(|r| r.multiplier).collect();
        let shifts: Vec<u8> = p.requant.iter().map(|r| r.shift).collect();
        let tensors = [
            (
                "weight",
                Dtype::I8,
                weight_shape,
                p.weights.iter().map(|&w| w as u8).collect(),
            ),
            (
                "weight_scale",
                Dtype::F32,
                vec![outputs],
                le_bytes(&p.weight_scales, f32::to_le_bytes),
            ),
            ("bias", Dtype::I32, vec![outputs], le_bytes(&p.bias, i32::to_le_bytes)),
            (
                "requant_multiplier",
                Dtype::U32,
                vec![outputs],
                le_bytes(&mults, u32::to_le_bytes),
            ),
            ("requant_shift", Dtype::U8, vec![outputs], shifts),
        ];
        for (field, dtype, shape, data) in tensors {
            out.insert(name(field), RawTensor { dtype, shape, data });
        }
    }
    out
}

fn digest<'a>(model_json: &str, tensors: impl Iterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(model_json.as_bytes());
    for (name, data) in tensors {
        hasher.update(name.as_bytes());
        hasher.update([0u8]);
        hasher.update(data);
    }
    hex::encode(hasher.finalize())
}

/// Serialize a model (not validated here; `save` validates first).
pub fn to_bytes(model: &Model) -> Result<Vec<u8>, ModelError> {
    let json = serde_json::to_string(model).map_err(|e| format_err(format!("cannot encode model JSON: {e}")))?;
    let tensors = tensors_of(model);
    let sha = digest(&json, tensors.iter().map(|(n, t)| (n.as_str(), t.data.as_slice())));
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT_TAG.to_string()),
        ("model".to_string(), json),
        ("sha256".to_string(), sha),
    ]);
    let mut views = Vec::with_capacity(tensors.len());
    for (name, t) in &tensors {
        // safetensors multiplies the shape unchecked; refuse inconsistent sizes first.
        let values = t.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if values.and_then(|v| v.checked_mul(t.dtype.bitsize() / 8)) != Some(t.data.len()) {
            return Err(format_err(format!(
                "tensor '{name}': shape {:?} does not match its {} bytes",
                t.shape,
                t.data.len()
            )));
        }
        let view = TensorView::new(t.dtype, t.shape.clone(), &t.data)
            .map_err(|e| format_err(format!("tensor '{name}': {e}")))?;
        views.push((name.clone(), view));
    }
    safetensors::serialize(views, Some(metadata)).map_err(|e| format_err(format!("cannot encode tensors: {e}")))
}

/// Parse, verify the checksum, and validate a model from file bytes.
pub fn from_bytes(bytes: &[u8]) -> Result<Model, ModelError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| format_err(format!("not a valid safetensors file: {e}")))?;
    let (_, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| format_err(format!("not a valid safetensors file: {e}")))?;
    let meta = header
        .metadata()
        .as_ref()
        .ok_or_else(|| format_err("no divqat metadata (not a divqat model file)"))?;
    let field = |key: &str| {
        meta.get(key)
            .ok_or_else(|| format_err(format!("metadata key '{key}' is missing")))
    };
    if field("format")? != FORMAT_TAG {
        return Err(format_err(format!("metadata 'format' is not '{FORMAT_TAG}'")));
    }
    let json = field("model")?;
    check_version(json)?;
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    let views: Vec<TensorView> = names
        .iter()
        .map(|n| st.tensor(n))
        .collect::<Result<_, _>>()
        .map_err(|e| format_err(e.to_string()))?;
    let sha = digest(
        json,
        names.iter().map(String::as_str).zip(views.iter().map(|v| v.data())),
    );
    if &sha != field("sha256")? {
        return Err(format_err(
            "checksum mismatch: the file is corrupted (sha256 of model and tensors differs)",
        ));
    }
    let mut model: Model = serde_json::from_str(json).map_err(|e| format_err(format!("model JSON: {e}")))?;
    attach_tensors(&mut model, &st)?;
    validate(&model)?;
    Ok(model)
}

/// Report a version mismatch before the JSON is decoded, so that a file from a
/// newer divqat gets "unsupported version" rather than a confusing field error.
fn check_version(json: &str) -> Result<(), ModelError> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| format_err(format!("model JSON: {e}")))?;
    let found = value
        .get("format_version")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| format_err("model JSON: 'format_version' missing"))?;
    if found != FORMAT_VERSION as u64 {
        return Err(ModelError::Version {
            found: found.min(u32::MAX as u64) as u32,
            expected: FORMAT_VERSION,
        });
    }
    Ok(())
}

fn attach_tensors(model: &mut Model, st: &SafeTensors) -> Result<(), ModelError> {
    for layer in &mut model.layers {
        let name = layer.name.clone();
        let Some(p) = layer.op.mac_params_mut() else { continue };
        let get = |field: &str, dtype: Dtype| -> Result<Vec<u8>, ModelError> {
            let key = format!("{name}.{field}");
            let view = st
                .tensor(&key)
                .map_err(|_| format_err(format!("layer '{name}': tensor '{key}' is missing")))?;
            if view.dtype() != dtype {
                return Err(format_err(format!(
                    "layer '{name}': tensor '{key}' has dtype {:?}, expected {dtype:?}",
                    view.dtype()
                )));
            }
            Ok(view.data().to_vec())
        };
        fill_mac_params(p, |f, d| get(f, d))?;
    }
    Ok(())
}

fn from_le<T, const N: usize>(bytes: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|c| from(c.try_into().expect("chunks_exact yields N bytes")))
        .collect()
}

fn fill_mac_params(
    p: &mut MacParams,
    get: impl Fn(&str, Dtype) -> Result<Vec<u8>, ModelError>,
) -> Result<(), ModelError> {
    p.weights = get("weight", Dtype::I8)?.into_iter().map(|b| b as i8).collect();
    p.weight_scales = from_le(&get("weight_scale", Dtype::F32)?, f32::from_le_bytes);
    p.bias = from_le(&get("bias", Dtype::I32)?, i32::from_le_bytes);
    let mults = from_le(&get("requant_multiplier", Dtype::U32)?, u32::from_le_bytes);
    let shifts = get("requant_shift", Dtype::U8)?;
    if mults.len() != shifts.len() {
        return Err(format_err(format!(
            "requant_multiplier has {} values but requant_shift {}",
            mults.len(),
            shifts.len()
        )));
    }
    p.requant = mults
        .into_iter()
        .zip(shifts)
        .map(|(multiplier, shift)| Requant { multiplier, shift })
        .collect();
    Ok(())
}
