//! Training of quantized CNNs on libtorch (via `tch`).
//!
//! libtorch 2.13.0 is installed into `.deps/libtorch` by `scripts/setup.sh`;
//! `.cargo/config.toml` points `LIBTORCH` at it and `build.rs` adds the rpath.

pub mod attack;
pub mod batches;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod export;
pub mod float_net;
pub mod loss;
pub mod optim;
pub mod progress;
pub mod quant_net;
pub mod train;

use std::fmt;
use std::str::FromStr;

use tch::Device;

/// Errors of the trainer crate.
#[derive(Debug, thiserror::Error)]
pub enum TrainerError {
    /// A device string that is not `cpu`, `cuda` or `cuda:<index>`.
    #[error("invalid device {0:?}: expected \"cpu\", \"cuda\" or \"cuda:<index>\"")]
    InvalidDevice(String),
    /// CUDA was requested but libtorch sees no usable CUDA device.
    #[error("CUDA device {requested} requested, but CUDA is not available to libtorch (this build uses the CPU-only libtorch from scripts/setup.sh); use --device cpu")]
    CudaUnavailable { requested: usize },
    /// CUDA is available but the index is out of range.
    #[error("CUDA device {requested} requested, but only {available} CUDA device(s) exist")]
    CudaIndexOutOfRange { requested: usize, available: usize },
}

/// Where tensors live and computations run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ComputeDevice {
    Cpu,
    /// A CUDA device by index (`cuda` means `cuda:0`).
    Cuda(usize),
}

impl FromStr for ComputeDevice {
    type Err = TrainerError;

    /// Parses `cpu`, `cuda` (= `cuda:0`) or `cuda:<index>`, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "cpu" => Ok(ComputeDevice::Cpu),
            "cuda" => Ok(ComputeDevice::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .filter(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|i| i.parse().ok())
                .map(ComputeDevice::Cuda)
                .ok_or_else(|| TrainerError::InvalidDevice(s.to_owned())),
        }
    }
}

impl fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComputeDevice::Cpu => f.write_str("cpu"),
            ComputeDevice::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl ComputeDevice {
    /// The `tch` device, checking that a requested CUDA device exists.
    pub fn to_tch(self) -> Result<Device, TrainerError> {
        match self {
            ComputeDevice::Cpu => Ok(Device::Cpu),
            ComputeDevice::Cuda(requested) => {
                if !tch::Cuda::is_available() {
                    return Err(TrainerError::CudaUnavailable { requested });
                }
                let available = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
                if requested >= available {
                    return Err(TrainerError::CudaIndexOutOfRange { requested, available });
                }
                Ok(Device::Cuda(requested))
            }
        }
    }
}

impl TryFrom<ComputeDevice> for Device {
    type Error = TrainerError;

    fn try_from(d: ComputeDevice) -> Result<Self, Self::Error> {
        d.to_tch()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse::<ComputeDevice>().unwrap(), ComputeDevice::Cpu);
        assert_eq!(" CPU ".parse::<ComputeDevice>().unwrap(), ComputeDevice::Cpu);
        assert_eq!("cuda".parse::<ComputeDevice>().unwrap(), ComputeDevice::Cuda(0));
        assert_eq!("cuda:0".parse::<ComputeDevice>().unwrap(), ComputeDevice::Cuda(0));
        assert_eq!("cuda:1".parse::<ComputeDevice>().unwrap(), ComputeDevice::Cuda(1));
        for bad in ["", "gpu", "cuda:", "cuda:-1", "cuda:+1", "cuda:x", "cuda1", "cpu:0"] {
            let err = bad.parse::<ComputeDevice>().unwrap_err();
            assert!(matches!(err, TrainerError::InvalidDevice(_)), "{bad:?}: {err}");
        }
    }

    #[test]
    fn display_round_trips() {
        for d in [ComputeDevice::Cpu, ComputeDevice::Cuda(0), ComputeDevice::Cuda(3)] {
            assert_eq!(d.to_string().parse::<ComputeDevice>().unwrap(), d);
        }
    }

    #[test]
    fn converts_to_tch_device() {
        assert_eq!(ComputeDevice::Cpu.to_tch().unwrap(), Device::Cpu);
        assert_eq!(Device::try_from(ComputeDevice::Cpu).unwrap(), Device::Cpu);
        let far = ComputeDevice::Cuda(1000);
        if tch::Cuda::is_available() {
            assert!(matches!(far.to_tch(), Err(TrainerError::CudaIndexOutOfRange { .. })));
            assert_eq!(ComputeDevice::Cuda(0).to_tch().unwrap(), Device::Cuda(0));
        } else {
            let err = ComputeDevice::Cuda(0).to_tch().unwrap_err();
            assert!(matches!(err, TrainerError::CudaUnavailable { requested: 0 }));
            assert!(err.to_string().contains("not available"), "{err}");
        }
    }
}
