//! Lowering an integer model onto the accelerator, as small named passes:
//! `check` (does the hardware support the model), `layout` (external-memory regions),
//! `pack` (weights/params in machine order), `emit` (tiling, double buffering and
//! instructions) with `deps` (the waits between units).

pub mod deps;
pub mod emit;
pub mod layout;
pub mod pack;

use crate::arith::accumulator_bound;
use crate::hw::HwConfig;
use crate::ir::{Model, Op as IrOp, Pool};
use crate::isa::Instruction;

use layout::{slot, Layout, Region};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    #[error("layer '{layer}': {what} but the hardware supports {supported} ({field} in the hardware config)")]
    Width {
        layer: String,
        what: String,
        supported: String,
        field: &'static str,
    },
    #[error("layer '{layer}': even the smallest tile needs {need} words of the {buffer} buffer, but half of it holds {have}")]
    DoesNotFit {
        layer: String,
        buffer: &'static str,
        need: usize,
        have: usize,
    },
    #[error("layer '{layer}': {what} is not supported by the accelerator")]
    Unsupported { layer: String, what: String },
    #[error("layer '{layer}': a residual add needs the add unit, which this hardware leaves out (add_unit = false in the hardware config)")]
    NoAddUnit { layer: String },
    #[error("layer '{layer}': {range}")]
    MatmulRange {
        layer: String,
        range: crate::isa::MatmulRange,
    },
    #[error("the model needs {need} bytes of external memory, more than the 32-bit address space")]
    MemoryTooLarge { need: usize },
}

/// A compiled model: the program, the initial external-memory image, and where the
/// input goes and the logits come from.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub hw: HwConfig,
    pub program: Vec<Instruction>,
    /// External memory at start, without the input image.
    pub memory: Vec<u8>,
    pub layout: Layout,
    /// For each model layer, the range of program indices it emitted.
    pub layer_instructions: Vec<std::ops::Range<usize>>,
    pub logits_slot: usize,
}

impl Compiled {
    pub fn input(&self) -> &Region {
        &self.layout.tensors[0]
    }

    pub fn logits(&self) -> &Region {
        &self.layout.tensors[self.logits_slot]
    }

    /// The external memory at the start of a run: the compiled image with `image`
    /// (the model's input, `[C][H][W]` bytes) packed into the input region.
    pub fn memory_with_input(&self, image: &[u8]) -> Vec<u8> {
        let mut memory = self.memory.clone();
        let input = self.input();
        let packed = layout::pack_input(image, &self.layout, self.hw.rows);
        memory[input.base..input.base + packed.len()].copy_from_slice(&packed);
        memory
    }

    /// The logits a finished run left in `memory`.
    pub fn read_logits(&self, memory: &[u8]) -> Vec<i32> {
        let logits = self.logits();
        let bytes = &memory[logits.base..logits.base + logits.geometry.bytes(self.hw.rows)];
        layout::unpack_vector(bytes, &logits.geometry, self.hw.rows)
    }
}

/// Pass `check`: refuse models the configured hardware cannot run, naming the layer.
pub fn check(model: &Model, hw: &HwConfig) -> Result<(), CompileError> {
    let mut dtypes = vec![model.input.dtype];
    dtypes.extend(model.layers.iter().map(|l| l.output.dtype));
    for (i, layer) in model.layers.iter().enumerate() {
        let input = dtypes[slot(model, &layer.inputs[0])];
        let last = i + 1 == model.layers.len();
        if matches!(layer.op, IrOp::Add(_)) && !hw.add_unit {
            return Err(CompileError::NoAddUnit {
                layer: layer.name.clone(),
            });
        }
        if layer.output.dtype.bits > 8 && !(last && matches!(layer.op, IrOp::Linear(_) | IrOp::Conv2d(_))) {
            return Err(CompileError::Unsupported {
                layer: layer.name.clone(),
                what: format!(
                    "a {}-bit output (only the logits may exceed 8 bits)",
                    layer.output.dtype.bits
                ),
            });
        }
        let Some(p) = layer.op.mac_params() else { continue };
        let name = || layer.name.clone();
        if p.weight_bits > hw.weight_bits {
            return Err(CompileError::Width {
                layer: name(),
                what: format!("{}-bit weights", p.weight_bits),
                supported: format!("{} bits", hw.weight_bits),
                field: "weight_bits",
            });
        }
        if input.bits > hw.activation_bits {
            return Err(CompileError::Width {
                layer: name(),
                what: format!("{}-bit input activations", input.bits),
                supported: format!("{} bits", hw.activation_bits),
                field: "activation_bits",
            });
        }
        let products = p.weights.len() / p.bias.len().max(1);
        let bound = p
            .bias
            .iter()
            .map(|&b| accumulator_bound(b, products, input, p.weight_bits))
            .max()
            .unwrap_or(0);
        let needed = 64 - (bound as u64).leading_zeros() + 1;
        if needed > hw.accumulator_bits as u32 {
            return Err(CompileError::Width {
                layer: name(),
                what: format!("accumulations needing {needed} bits"),
                supported: format!("{} bits", hw.accumulator_bits),
                field: "accumulator_bits",
            });
        }
    }
    Ok(())
}

/// The first convolution over an im2col-packed input: a 1x1 convolution whose input
/// channels are the window positions. The weights stay as they are: their
/// `[in][kh][kw]` order per output is exactly the packed channel order.
fn as_pointwise(conv: &crate::ir::Conv2d) -> crate::ir::Conv2d {
    crate::ir::Conv2d {
        in_channels: conv.in_channels * conv.kernel[0] * conv.kernel[1],
        kernel: [1, 1],
        stride: [1, 1],
        padding: [0, 0],
        ..conv.clone()
    }
}

/// Compile `model` (validated) for `hw` (validated).
pub fn compile(model: &Model, hw: &HwConfig) -> Result<Compiled, CompileError> {
    check(model, hw)?;
    let layout = layout::plan(model, hw);
    let mut e = emit::Emitter::new(hw, layout.end);
    let mut layer_instructions = Vec::with_capacity(model.layers.len());
    for (i, layer) in model.layers.iter().enumerate() {
        let start = e.program.len();
        let src_slot = slot(model, &layer.inputs[0]);
        let src = (&layout.tensors[src_slot], src_slot);
        let dst = (&layout.tensors[i + 1], i + 1);
        match &layer.op {
            IrOp::Conv2d(conv) if i == 0 && layout.input_packing != layout::InputPacking::Direct => {
                e.conv(layer, &as_pointwise(conv), src, dst)?
            }
            IrOp::Conv2d(conv) => e.conv(layer, conv, src, dst)?,
            IrOp::Linear(linear) => e.linear(layer, linear, src, dst)?,
            IrOp::MaxPool(pool) => e.pool(layer, *pool, None, src, dst)?,
            IrOp::AvgPool { pool, requant } => e.pool(layer, *pool, Some(*requant), src, dst)?,
            IrOp::GlobalAvgPool { requant } => {
                let g = src.0.geometry;
                let pool = Pool {
                    kernel: [g.height, g.width],
                    stride: [1, 1],
                };
                e.pool(layer, pool, Some(*requant), src, dst)?
            }
            IrOp::Add(rescale) => {
                let b_slot = slot(model, &layer.inputs[1]);
                e.add(layer, *rescale, src, (&layout.tensors[b_slot], b_slot), dst)?
            }
            IrOp::Flatten => {}
        }
        layer_instructions.push(start..e.program.len());
    }
    let logits_slot = model.layers.len();
    e.end(&layout.tensors[logits_slot]);
    let mut memory = vec![0u8; layout.end];
    memory.extend_from_slice(&e.constants);
    if memory.len() > u32::MAX as usize {
        return Err(CompileError::MemoryTooLarge { need: memory.len() });
    }
    Ok(Compiled {
        hw: hw.clone(),
        program: e.program,
        memory,
        layout,
        layer_instructions,
        logits_slot,
    })
}
