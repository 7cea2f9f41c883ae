//! The registry of world-model families: builds a model from its config, or loads one
//! from a saved directory, by the family name the config carries. New families (a
//! recurrent latent model, say) plug in with [`Registry::register`].

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;
use plasma_protocol::TaskSpec;

use crate::checkpoint::ModelDocument;
use crate::config::{ENSEMBLE, WorldModelConfig};
use crate::ensemble::Ensemble;
use crate::error::{Result, WorldModelError};
use crate::model::WorldModel;

/// Builds a fresh model of a family.
pub type BuildFn = fn(&WorldModelConfig, &TaskSpec, &Device) -> Result<Box<dyn WorldModel>>;
/// Loads a saved model of a family from its directory and parsed document.
pub type LoadFn = fn(&Path, &ModelDocument, &Device) -> Result<Box<dyn WorldModel>>;

/// Families by name.
#[derive(Debug, Clone)]
pub struct Registry {
    families: BTreeMap<String, (BuildFn, LoadFn)>,
}

impl Default for Registry {
    /// The registry of this crate's families (`"ensemble"`).
    fn default() -> Self {
        let mut r = Registry::empty();
        r.register(
            ENSEMBLE,
            |config, spec, device| Ok(Box::new(Ensemble::from_config(config, spec, device)?)),
            |dir, doc, device| Ok(Box::new(Ensemble::load(dir, doc, device)?)),
        );
        r
    }
}

impl Registry {
    /// A registry that knows no family.
    pub fn empty() -> Self {
        Registry {
            families: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) a family.
    pub fn register(&mut self, family: &str, build: BuildFn, load: LoadFn) {
        self.families.insert(family.to_owned(), (build, load));
    }

    /// The known family names, sorted.
    pub fn families(&self) -> Vec<String> {
        self.families.keys().cloned().collect()
    }

    fn entry(&self, family: &str) -> Result<&(BuildFn, LoadFn)> {
        self.families
            .get(family)
            .ok_or_else(|| WorldModelError::UnknownFamily {
                family: family.to_owned(),
                known: self.families(),
            })
    }

    /// A fresh model of the family `config` names, for `spec`'s task, on `device`.
    pub fn build(
        &self,
        config: &WorldModelConfig,
        spec: &TaskSpec,
        device: &Device,
    ) -> Result<Box<dyn WorldModel>> {
        spec.validate()?;
        (self.entry(&config.family)?.0)(config, spec, device)
    }

    /// The model saved in `dir` by [`WorldModel::save`], on `device`.
    pub fn load(&self, dir: &Path, device: &Device) -> Result<Box<dyn WorldModel>> {
        let doc = ModelDocument::read(dir)?;
        (self.entry(&doc.config.family)?.1)(dir, &doc, device)
    }
}

/// [`Registry::build`] with the default registry.
pub fn build(
    config: &WorldModelConfig,
    spec: &TaskSpec,
    device: &Device,
) -> Result<Box<dyn WorldModel>> {
    Registry::default().build(config, spec, device)
}

/// [`Registry::load`] with the default registry.
pub fn load(dir: &Path, device: &Device) -> Result<Box<dyn WorldModel>> {
    Registry::default().load(dir, device)
}
