//! A saved model is a directory: `model.json` (format version, family config, task spec),
//! `weights.bpk` (burn's burnpack record of the parameters) and `normalizers.json`. Every
//! file is written to a temporary name and renamed into place, so a crash never leaves a
//! half-written file under the real name.

use std::fs;
use std::path::Path;

use burn::module::Module;
use plasma_protocol::TaskSpec;
use serde::{Deserialize, Serialize};

use crate::config::WorldModelConfig;
use crate::error::{Result, WorldModelError};
use crate::normalize::Normalizers;

/// Version of the directory layout written by this crate.
pub const FORMAT_VERSION: u32 = 1;
/// The model document's file name.
pub const MODEL_FILE: &str = "model.json";
/// The weights' file name.
pub const WEIGHTS_FILE: &str = "weights.bpk";
/// The normalizers' file name.
pub const NORMALIZERS_FILE: &str = "normalizers.json";

/// `model.json`: what the registry needs to rebuild the model before loading its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelDocument {
    /// Layout version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Family and parameters.
    pub config: WorldModelConfig,
    /// The task modelled.
    pub spec: TaskSpec,
    /// Whether the weights were trained.
    pub trained: bool,
}

impl ModelDocument {
    /// A document of the current format.
    pub fn new(config: WorldModelConfig, spec: TaskSpec, trained: bool) -> Self {
        ModelDocument {
            format_version: FORMAT_VERSION,
            config,
            spec,
            trained,
        }
    }

    /// Reads `dir/model.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let doc: ModelDocument = read_json(&dir.join(MODEL_FILE), "model document")?;
        if doc.format_version != FORMAT_VERSION {
            return Err(WorldModelError::Config(format!(
                "checkpoint format {} is not supported (this build reads {FORMAT_VERSION})",
                doc.format_version
            )));
        }
        doc.spec.validate()?;
        Ok(doc)
    }
}

/// Largest JSON document of a checkpoint (model document, normalizers) that is read.
pub const MAX_JSON_BYTES: u64 = 16 << 20;

/// The whole file, refused when larger than `limit` bytes (checked before and while
/// reading, so a file growing underneath cannot exceed it either).
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = fs::File::open(path).map_err(|e| WorldModelError::io(path, e))?;
    let too_large = || {
        WorldModelError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("larger than the {limit} bytes a checkpoint file may have"),
            ),
        )
    };
    let len = file
        .metadata()
        .map_err(|e| WorldModelError::io(path, e))?
        .len();
    if len > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| WorldModelError::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let text = read_bounded(path, MAX_JSON_BYTES)?;
    serde_json::from_slice(&text).map_err(|source| WorldModelError::Json {
        what: format!("{what} {}", path.display()),
        source,
    })
}

/// Atomic and durable (`plasma_packets::durable`): a crash never leaves half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    plasma_packets::durable::write_atomic(path, bytes).map_err(|e| WorldModelError::io(path, e))
}

fn write_json<T: Serialize>(path: &Path, value: &T, what: &str) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| WorldModelError::Json {
        what: what.into(),
        source,
    })?;
    write_atomic(path, text.as_bytes())
}

/// Writes a model directory: weights and normalizers first, the model document last, so a
/// directory with a `model.json` is complete.
pub fn save<M: Module>(
    dir: &Path,
    doc: &ModelDocument,
    normalizers: &Normalizers,
    weights: M,
) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| WorldModelError::io(dir, e))?;
    let path = dir.join(WEIGHTS_FILE);
    // burn writes the weights file itself: to a name of this process, synced, then
    // renamed into place like every other file (`write_atomic`).
    let tmp = dir.join(format!(
        ".{WEIGHTS_FILE}.tmp-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    weights
        .save_file(&tmp)
        .map_err(|e| WorldModelError::Record {
            path: tmp.clone(),
            message: e.to_string(),
        })?;
    let synced = fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .and_then(|()| fs::rename(&tmp, &path))
        .and_then(|()| plasma_packets::durable::sync_dir(dir));
    if let Err(e) = synced {
        let _ = fs::remove_file(&tmp);
        return Err(WorldModelError::io(&path, e));
    }
    write_json(&dir.join(NORMALIZERS_FILE), normalizers, "normalizers")?;
    write_json(&dir.join(MODEL_FILE), doc, "model document")
}

/// Reads `dir/normalizers.json`.
pub fn read_normalizers(dir: &Path) -> Result<Normalizers> {
    read_json(&dir.join(NORMALIZERS_FILE), "normalizers")
}

/// Loads `dir/weights.bpk` into `module` (whose architecture must match: shapes are
/// validated).
///
/// The file is read into memory whole, so that the loaded module owns its weights: burn's
/// file loader reads tensors lazily, and a model whose checkpoint is replaced or deleted
/// later (a newer fit, a temporary directory) must keep working. The read is bounded by
/// what the module's parameters can take.
pub fn read_weights<M: Module>(dir: &Path, module: M) -> Result<M> {
    let path = dir.join(WEIGHTS_FILE);
    // Up to 8 bytes a parameter (f64 records) plus the header and names.
    let limit = (module.num_params() as u64).saturating_mul(8) + (1 << 20);
    let bytes = read_bounded(&path, limit)?;
    let record = burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| WorldModelError::Record {
            path: path.clone(),
            message: e.to_string(),
        })?;
    module
        .try_load_record(record)
        .map_err(|e| WorldModelError::Record {
            path,
            message: e.to_string(),
        })
}
