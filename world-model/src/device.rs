//! Choosing the compute device at run time from a string, so that one build serves a CPU
//! host and a GPU host alike.

use burn::tensor::Device;

use crate::error::{Result, WorldModelError};

/// The device names [`parse_device`] accepts in this build.
pub fn known_devices() -> &'static [&'static str] {
    if cfg!(feature = "wgpu") {
        &["cpu", "flex", "wgpu"]
    } else {
        &["cpu", "flex"]
    }
}

/// Builds the device named by `name`: `"cpu"` or `"flex"` for burn's pure-Rust CPU backend
/// (always available), `"wgpu"` for the best GPU adapter wgpu finds (needs the crate's `wgpu`
/// feature). The device is constructed explicitly, never with `Device::default()`, which
/// would prefer whatever GPU backend happens to be compiled in.
pub fn parse_device(name: &str) -> Result<Device> {
    match name.trim().to_ascii_lowercase().as_str() {
        "cpu" | "flex" => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" | "gpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(not(feature = "wgpu"))]
        "wgpu" | "gpu" => Err(WorldModelError::Device(
            name.to_owned(),
            "this build lacks the `wgpu` feature of plasma-world-model".to_owned(),
        )),
        _ => Err(WorldModelError::Device(
            name.to_owned(),
            format!("unknown device name; known: {:?}", known_devices()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_names_parse_and_unknown_names_are_errors() {
        assert!(parse_device("cpu").is_ok());
        assert!(parse_device(" Flex ").is_ok());
        assert!(matches!(
            parse_device("tpu"),
            Err(WorldModelError::Device(..))
        ));
        #[cfg(not(feature = "wgpu"))]
        assert!(matches!(
            parse_device("wgpu"),
            Err(WorldModelError::Device(..))
        ));
    }
}
