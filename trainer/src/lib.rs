//! Training of quantized CNNs on libtorch (via `tch`).
//!
//! libtorch 2.13.0 is installed into `.deps/libtorch` by `scripts/setup.sh`;
//! `.cargo/config.toml` points `LIBTORCH` at it and `build.rs` adds the rpath.

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

use tch::{Device, Kind, Tensor};

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
    /// A pixel buffer whose length does not match `n * C * H * W`.
    #[error("image buffer has {actual} bytes, expected {expected} ({n} images of {shape:?})")]
    ImageBufferLength {
        actual: usize,
        expected: usize,
        n: usize,
        shape: [usize; 3],
    },
    /// An error reported by libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
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

/// Converts `n` 8-bit images stored contiguously as `shape = [C, H, W]`
/// (channel-major, i.e. NCHW) into a float32 CPU tensor of shape `[n, C, H, W]`
/// with values `pixel / 255` in `[0, 1]`.
pub fn images_to_tensor(images: &[u8], n: usize, shape: [usize; 3]) -> Result<Tensor, TrainerError> {
    let [c, h, w] = shape;
    let expected = [n, c, h, w].iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if expected != Some(images.len()) {
        return Err(TrainerError::ImageBufferLength {
            actual: images.len(),
            expected: expected.unwrap_or(usize::MAX),
            n,
            shape,
        });
    }
    let dims = [n, c, h, w].map(|d| d as i64);
    let t = Tensor::f_from_slice(images)?
        .f_to_kind(Kind::Float)?
        .f_div_scalar(255.0)?
        .f_reshape(dims)?;
    Ok(t)
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

    #[test]
    fn images_become_scaled_nchw_floats() {
        // 2 images, 2 channels, 2x3 pixels.
        let pixels: Vec<u8> = (0..24u8).map(|i| i * 10 + 15).collect();
        let t = images_to_tensor(&pixels, 2, [2, 2, 3]).unwrap();
        assert_eq!(t.size(), vec![2, 2, 2, 3]);
        assert_eq!(t.kind(), Kind::Float);
        assert_eq!(t.device(), Device::Cpu);
        let flat: Vec<f32> = Vec::try_from(t.flatten(0, -1)).unwrap();
        for (v, p) in flat.iter().zip(&pixels) {
            assert_eq!(*v, *p as f32 / 255.0);
        }
        // Element [1, 0, 1, 2] is pixel index 1*12 + 0*6 + 1*3 + 2 = 17.
        assert_eq!(t.double_value(&[1, 0, 1, 2]), (pixels[17] as f32 / 255.0) as f64);
    }

    #[test]
    fn extremes_map_to_zero_and_one() {
        let t = images_to_tensor(&[0, 255, 128, 255], 4, [1, 1, 1]).unwrap();
        assert_eq!(t.size(), vec![4, 1, 1, 1]);
        assert_eq!(t.min().double_value(&[]), 0.0);
        assert_eq!(t.max().double_value(&[]), 1.0);
        assert_eq!(t.sum(Kind::Float).double_value(&[]), (2.0 + 128.0f32 / 255.0) as f64);
    }

    #[test]
    fn empty_batch_is_allowed() {
        let t = images_to_tensor(&[], 0, [1, 28, 28]).unwrap();
        assert_eq!(t.size(), vec![0, 1, 28, 28]);
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let err = images_to_tensor(&[0; 10], 2, [1, 2, 3]).unwrap_err();
        match err {
            TrainerError::ImageBufferLength {
                actual,
                expected,
                n,
                shape,
            } => {
                assert_eq!((actual, expected, n, shape), (10, 12, 2, [1, 2, 3]));
            }
            other => panic!("unexpected error {other}"),
        }
        assert!(images_to_tensor(&[0; 4], usize::MAX, [2, 2, 2]).is_err());
    }
}
