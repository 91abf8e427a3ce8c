//! What each step writes for the report (JSON files in its directory).

use serde::{Deserialize, Serialize};

/// `evaluate/accuracy.json`.
pub const ACCURACY_FILE: &str = "accuracy.json";
/// `compile/compile.json`.
pub const COMPILE_FILE: &str = "compile.json";
/// `simulate/simulate.json`.
pub const SIMULATE_FILE: &str = "simulate.json";
/// `attack/cross-check.json` (the grid's own files are results.json and cells.jsonl).
pub const CROSS_CHECK_FILE: &str = "cross-check.json";
/// `synthesize/board.json` (the tools' report is synth-report.json next to it).
pub const BOARD_FILE: &str = "board.json";

/// Test accuracy of one model through each backend that applies to it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelAccuracy {
    /// FP, QAT or DivQAT.
    pub model: String,
    /// The float network (for QAT/DivQAT: their float shadow weights, no quantization).
    pub float: f64,
    pub fakequant: Option<f64>,
    /// The exported integer model on the software reference.
    pub integer: Option<f64>,
    /// Top-1 agreement of the fake-quant network and the integer model.
    pub agreement: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accuracies {
    pub dataset: String,
    pub images: usize,
    pub models: Vec<ModelAccuracy>,
    pub seconds: f64,
}

/// One layer in the cycle model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerRow {
    pub name: String,
    pub kind: String,
    pub macs: u64,
    pub cycles: u64,
    pub utilization: f64,
    pub dram_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompiledVictim {
    /// qat or divqat.
    pub victim: String,
    pub instructions: usize,
    pub program_bytes: usize,
    pub memory_image_bytes: usize,
    pub total_cycles: u64,
    pub macs: u64,
    pub utilization: f64,
    pub dram_bytes: u64,
    pub layers: Vec<LayerRow>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompileResult {
    pub board: String,
    pub hw: compiler::hw::HwConfig,
    pub victims: Vec<CompiledVictim>,
}

/// RTL co-simulation of one victim on a sample of test images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimVictim {
    pub victim: String,
    pub images: usize,
    /// Logits compared with the integer reference: every value of every image.
    pub logits_compared: usize,
    pub rtl_mismatches: usize,
    pub functional_mismatches: usize,
    /// The first differing image, layer and value (none when bit-exact).
    pub first_mismatch: Option<String>,
    pub rtl_accuracy: f64,
    pub reference_accuracy: f64,
    /// Measured cycles per image (the mean over the sample; every image takes the same).
    pub rtl_cycles_per_image: f64,
    pub model_cycles_per_image: u64,
    /// Per layer, measured on the first image (same order as the compile step's layers).
    pub rtl_layer_cycles: Vec<u64>,
    pub sim_cycles_per_second: f64,
    pub build_seconds: f64,
    pub seconds: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimResult {
    pub hw: String,
    pub victims: Vec<SimVictim>,
}

/// The RTL oracle answering attack queries, checked against the reference oracle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CrossCheck {
    pub victim: String,
    pub query_set: String,
    pub queries: usize,
    /// Queries whose probability vectors were equal bit for bit (the check fails the
    /// step on the first that differs).
    pub confirmed: usize,
    pub seconds: f64,
}

/// The board flow's outcome; a design that does not fit is a result, not an error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoardResult {
    pub board: String,
    pub device: String,
    pub hw: String,
    pub estimate_only: bool,
    pub fits: bool,
    pub used: boards::Utilization,
    pub available: boards::Resources,
    /// "LUT: 26774 used, 5280 available (+21494)" per overflowing resource.
    pub overflows: Vec<String>,
    pub fmax_mhz: Option<f64>,
    pub target_mhz: f64,
    pub meets_timing: Option<bool>,
    pub bitstream: Option<String>,
    pub cycles_per_image: u64,
    pub images_per_second: f64,
    pub link_images_per_second: f64,
    pub cached: bool,
    pub tool_versions: Vec<String>,
    pub seconds: f64,
}
