//! Choosing where training runs.

use std::{fmt, str::FromStr};

use tch::Device;

use crate::{Error, Result};

/// The device a user asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// CUDA when present, else MPS on Apple, else CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA GPU.
    Cuda,
    /// Apple's Metal Performance Shaders.
    Mps,
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda),
            "mps" => Ok(Self::Mps),
            other => Err(format!("unknown device '{other}' (auto, cpu, cuda, mps)")),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
            Self::Mps => "mps",
        })
    }
}

/// Resolves a choice to a device; an explicit device that is missing is an
/// error rather than a silent fallback.
pub fn resolve(choice: DeviceChoice) -> Result<Device> {
    let cuda = tch::Cuda::is_available();
    let mps = tch::utils::has_mps();
    match choice {
        DeviceChoice::Auto if cuda => Ok(Device::Cuda(0)),
        DeviceChoice::Auto if mps => Ok(Device::Mps),
        DeviceChoice::Auto | DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda if cuda => Ok(Device::Cuda(0)),
        DeviceChoice::Cuda => Err(Error::Device {
            requested: "cuda".into(),
            reason: "libtorch sees no CUDA device (is mnist-train built with --features cuda against a CUDA build of torch?)"
                .into(),
        }),
        DeviceChoice::Mps if mps => Ok(Device::Mps),
        DeviceChoice::Mps => Err(Error::Device { requested: "mps".into(), reason: "this libtorch has no MPS support".into() }),
    }
}

/// A short name for logs and model cards.
pub fn name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        Device::Mps => "mps".into(),
        Device::Vulkan => "vulkan".into(),
    }
}
