//! Hardware configurations for boards: the smallest buffers a model compiles with
//! for a given array shape (shared by `divqat fit` and `divqat flow`).

use compiler::hw::HwConfig;
use compiler::lower::CompileError;

/// Instruction queue depth of board candidates with overlapping units: the smallest
/// the queued controller supports (each entry is 344 flip-flops; depth 1 costs
/// cycles: small-cnn on 1x1 takes 4.6 M cycles instead of 3.1 M at depth 2).
pub const QUEUE_DEPTH: usize = 1;

/// Small buffers for a `rows x cols` array, with the activation and output
/// buffers doubled until `model` compiles (the only ones a layer can outgrow:
/// `CompileError::DoesNotFit`), a fetch buffer of one instruction, unit queues of
/// [`QUEUE_DEPTH`] or none (`serial`: the serial controller, the smallest design,
/// ~70% more cycles for small-cnn), a bus one array word wide (a wider one only
/// speeds up the 8-byte parameter loads: 1% of small-cnn's cycles on 1x1, for
/// hundreds of logic cells of byte shifters), and the residual-add unit only when
/// the model has an add layer. `None` when the model does not compile for this shape.
pub fn smallest_config(
    model: &compiler::Model,
    rows: usize,
    cols: usize,
    target_mhz: f64,
    serial: bool,
) -> Option<HwConfig> {
    let mut hw = HwConfig::preset(rows, cols).ok()?;
    hw.clock_mhz = target_mhz;
    hw.queue_depth = if serial { 0 } else { QUEUE_DEPTH };
    hw.fetch_depth = 1;
    hw.bus_bytes = rows.max(cols).next_power_of_two();
    (hw.act_buffer_words, hw.weight_buffer_words, hw.acc_buffer_words) = (256, 256, 256);
    (hw.out_buffer_words, hw.param_buffer_entries) = (256, 64);
    hw.add_unit = false;
    loop {
        match compiler::lower::compile(model, &hw) {
            Ok(_) => return Some(hw),
            Err(CompileError::DoesNotFit {
                buffer: "activation", ..
            }) => hw.act_buffer_words *= 2,
            Err(CompileError::DoesNotFit { buffer: "output", .. }) => hw.out_buffer_words *= 2,
            Err(CompileError::NoAddUnit { .. }) if !hw.add_unit => hw.add_unit = true,
            Err(_) => return None,
        }
        hw.validate().ok()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use compiler::arith::Precision;

    const W8A8: Precision = Precision {
        weight_bits: 8,
        activation_bits: 8,
    };

    #[test]
    fn grows_only_the_buffer_the_compiler_names_and_leaves_out_the_add_unit() {
        let model = compiler::synthetic::small_cnn([1, 28, 28], 10, W8A8, 0).unwrap();
        let hw = smallest_config(&model, 1, 1, 12.0, false).unwrap();
        // small-cnn's last conv needs a 576-word window: half the buffer must hold it.
        assert_eq!(
            (hw.act_buffer_words, hw.out_buffer_words, hw.weight_buffer_words),
            (2048, 256, 256)
        );
        assert_eq!(
            (hw.queue_depth, hw.add_unit, hw.clock_mhz, hw.bus_bytes),
            (QUEUE_DEPTH, false, 12.0, 1)
        );
        let serial = smallest_config(&model, 1, 1, 12.0, true).unwrap();
        assert_eq!(
            serial,
            HwConfig {
                queue_depth: 0,
                ..hw.clone()
            }
        );
        let mut smaller = hw.clone();
        smaller.act_buffer_words /= 2;
        assert!(compiler::lower::compile(&model, &smaller).is_err());
    }

    #[test]
    fn keeps_the_add_unit_for_residual_models() {
        let model = compiler::synthetic::tiny_resnet([3, 16, 16], 10, W8A8, 0).unwrap();
        let hw = smallest_config(&model, 2, 2, 12.0, true).unwrap();
        assert!(hw.add_unit);
        assert_eq!(hw.bus_bytes, 2);
    }
}
