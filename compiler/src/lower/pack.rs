//! Pass 2: weights and post-processing parameters in the order the machine reads them.
//!
//! A MAC layer's weights are cut into column tiles of `cols` output channels. Within
//! a tile, slice `s` (one reduction step of `rows` inputs) is `rows` weight words of
//! `cols` bytes; word `r`, lane `c` holds the weight of output channel `t*cols + c`
//! for the input feature that activation lane `r` carries in slice `s`. Padding
//! lanes hold 0, so whatever padding activation lanes contain never matters.

use crate::arith::Requant;
use crate::hw::{HwConfig, PARAM_ENTRY_BYTES};
use crate::ir::MacParams;

use super::layout::Geometry;

/// How a reduction slice maps to input features.
#[derive(Clone, Copy, Debug)]
pub enum Reduction {
    /// A convolution: slice `s = (ky*kw + kx)*G + g`.
    Conv { kernel: [usize; 2], input: Geometry },
    /// A linear layer over a stored tensor: slice `s` is word `s` of the tensor
    /// (pixel `s / G`, group `s % G`); features are numbered in `[C][H][W]` order.
    Linear { input: Geometry },
}

impl Reduction {
    pub fn slices(&self) -> usize {
        match self {
            Reduction::Conv { kernel, input } => kernel[0] * kernel[1] * input.groups,
            Reduction::Linear { input } => input.words(),
        }
    }

    /// Column index into a weight row (`[in][kh][kw]` or `[features]`) of lane `r` in
    /// slice `s`, or `None` for a padding lane.
    fn weight_index(&self, rows: usize, s: usize, r: usize) -> Option<usize> {
        match *self {
            Reduction::Conv {
                kernel: [kh, kw],
                input,
            } => {
                let (pos, g) = (s / input.groups, s % input.groups);
                let (ky, kx) = (pos / kw, pos % kw);
                let channel = g * rows + r;
                (channel < input.channels).then_some((channel * kh + ky) * kw + kx)
            }
            Reduction::Linear { input } => {
                let (pixel, g) = (s / input.groups, s % input.groups);
                let channel = g * rows + r;
                (channel < input.channels).then_some(channel * input.pixels() + pixel)
            }
        }
    }
}

/// All column tiles' weights, tile after tile, each `slices * rows * cols` bytes.
pub fn pack_weights(hw: &HwConfig, p: &MacParams, outputs: usize, reduction: &Reduction) -> Vec<u8> {
    let (rows, cols) = (hw.rows, hw.cols);
    let per_output = p.weights.len() / outputs;
    let slices = reduction.slices();
    let tiles = outputs.div_ceil(cols);
    let mut out = vec![0u8; tiles * slices * rows * cols];
    for t in 0..tiles {
        for s in 0..slices {
            for r in 0..rows {
                let Some(k) = reduction.weight_index(rows, s, r) else {
                    continue;
                };
                for c in 0..cols.min(outputs - t * cols) {
                    let o = t * cols + c;
                    out[((t * slices + s) * rows + r) * cols + c] = p.weights[o * per_output + k] as u8;
                }
            }
        }
    }
    out
}

/// One parameter entry per output channel: i32 bias, u16 multiplier, u8 shift, 0.
pub fn pack_params(p: &MacParams) -> Vec<u8> {
    p.bias
        .iter()
        .zip(&p.requant)
        .flat_map(|(&b, rq)| param_entry(b, *rq))
        .collect()
}

pub fn param_entry(bias: i32, rq: Requant) -> [u8; PARAM_ENTRY_BYTES] {
    let mut e = [0u8; PARAM_ENTRY_BYTES];
    e[..4].copy_from_slice(&bias.to_le_bytes());
    e[4..6].copy_from_slice(&(rq.multiplier as u16).to_le_bytes());
    e[6] = rq.shift;
    e
}

/// Decode a parameter entry (the post-processing unit's view).
pub fn read_param(e: &[u8]) -> (i32, Requant) {
    let bias = i32::from_le_bytes(e[..4].try_into().expect("4 bytes"));
    let multiplier = u16::from_le_bytes([e[4], e[5]]) as u32;
    (
        bias,
        Requant {
            multiplier,
            shift: e[6],
        },
    )
}
