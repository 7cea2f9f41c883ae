//! A saved model is a directory: `model.json` (format version, family config, task spec),
//! `weights.bpk` (burn's burnpack record of the parameters) and `normalizers.json`. Every
//! file is written to a temporary name and renamed into place, so a crash never leaves a
//! half-written file under the real name.

use std::fs;
use std::path::{Path, PathBuf};

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

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let text = fs::read_to_string(path).map_err(|e| WorldModelError::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| WorldModelError::Json {
        what: format!("{what} {}", path.display()),
        source,
    })
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    fs::write(&tmp, bytes).map_err(|e| WorldModelError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| WorldModelError::io(path, e))
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
    let tmp = tmp_path(&path);
    weights
        .save_file(&tmp)
        .map_err(|e| WorldModelError::Record {
            path: tmp.clone(),
            message: e.to_string(),
        })?;
    fs::rename(&tmp, &path).map_err(|e| WorldModelError::io(&path, e))?;
    write_json(&dir.join(NORMALIZERS_FILE), normalizers, "normalizers")?;
    write_json(&dir.join(MODEL_FILE), doc, "model document")
}

/// Reads `dir/normalizers.json`.
pub fn read_normalizers(dir: &Path) -> Result<Normalizers> {
    read_json(&dir.join(NORMALIZERS_FILE), "normalizers")
}

/// Loads `dir/weights.bpk` into `module` (whose architecture must match: shapes are
/// validated).
pub fn read_weights<M: Module>(dir: &Path, module: M) -> Result<M> {
    let path = dir.join(WEIGHTS_FILE);
    if !path.is_file() {
        return Err(WorldModelError::io(
            &path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "weights file missing"),
        ));
    }
    module
        .try_load_file(&path)
        .map_err(|e| WorldModelError::Record {
            path,
            message: e.to_string(),
        })
}
