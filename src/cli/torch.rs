//! The libtorch options every training command takes (`train`, `attack`, `experiment`).

use clap::Args;
use trainer::ComputeDevice;

#[derive(Args, Clone, Debug)]
pub struct TorchArgs {
    /// libtorch threads (default: all cores).
    #[arg(long)]
    pub threads: Option<i32>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl TorchArgs {
    /// Sets libtorch's thread count and returns the device to run on.
    pub fn setup(&self) -> anyhow::Result<tch::Device> {
        if let Some(n) = self.threads {
            tch::set_num_threads(n);
        }
        let device: ComputeDevice = self.device.parse()?;
        Ok(device.to_tch()?)
    }
}
