//! Hardware configurations for boards: the smallest buffers a model compiles with
//! for a given array shape (shared by `divqat fit` and `divqat flow`).

use compiler::hw::HwConfig;
use compiler::lower::CompileError;

/// Instruction queue and fetch depth of board candidates: the smallest the
/// controller supports (each entry costs a few hundred flip-flops).
pub const QUEUE_DEPTH: usize = 2;

/// Small buffers for a `rows x cols` array, with the activation and output
/// buffers doubled until `model` compiles (the only ones a layer can outgrow:
/// `CompileError::DoesNotFit`), queues at their minimum depth. `None` when the
/// model does not compile for this shape.
pub fn smallest_config(model: &compiler::Model, rows: usize, cols: usize, target_mhz: f64) -> Option<HwConfig> {
    let mut hw = HwConfig::preset(rows, cols).ok()?;
    hw.clock_mhz = target_mhz;
    (hw.queue_depth, hw.fetch_depth) = (QUEUE_DEPTH, QUEUE_DEPTH);
    (hw.act_buffer_words, hw.weight_buffer_words, hw.acc_buffer_words) = (256, 256, 256);
    (hw.out_buffer_words, hw.param_buffer_entries) = (256, 64);
    loop {
        match compiler::lower::compile(model, &hw) {
            Ok(_) => return Some(hw),
            Err(CompileError::DoesNotFit { buffer: "activation", .. }) => hw.act_buffer_words *= 2,
            Err(CompileError::DoesNotFit { buffer: "output", .. }) => hw.out_buffer_words *= 2,
            Err(_) => return None,
        }
        hw.validate().ok()?;
    }
}
