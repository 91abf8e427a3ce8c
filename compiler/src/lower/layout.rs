//! Pass 1: where every tensor lives in external memory and how its bytes are laid out.
//!
//! Activations are stored pixel-major with channels innermost, padded to whole
//! activation words ("HWC-padded"): byte `((y*W + x)*G + g)*R + lane` holds channel
//! `g*R + lane`, where `R` is the array's row count and `G = ceil(C / R)`. One word
//! is exactly what the array consumes per cycle. Tensors wider than 8 bits (only the
//! logits may be) use 2 bytes per value, little-endian, and must be vectors.

use crate::arith::DType;
use crate::hw::HwConfig;
use crate::ir::{Model, Op, INPUT_NAME};

/// Alignment of every region in external memory.
pub const REGION_ALIGN: usize = 64;

/// Geometry of a tensor as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Activation words per pixel: `ceil(channels / rows)`.
    pub groups: usize,
    pub dtype: DType,
}

impl Geometry {
    /// 1, or 2 for values wider than 8 bits.
    pub fn elem_bytes(&self) -> usize {
        if self.dtype.bits > 8 {
            2
        } else {
            1
        }
    }

    pub fn pixels(&self) -> usize {
        self.height * self.width
    }

    /// Words of the whole tensor.
    pub fn words(&self) -> usize {
        self.pixels() * self.groups
    }

    pub fn bytes(&self, rows: usize) -> usize {
        if self.elem_bytes() == 2 {
            self.channels * 2
        } else {
            self.words() * rows
        }
    }

    /// Byte offset of channel `c` at pixel `(y, x)`.
    pub fn offset(&self, rows: usize, c: usize, y: usize, x: usize) -> usize {
        if self.elem_bytes() == 2 {
            c * 2
        } else {
            ((y * self.width + x) * self.groups) * rows + c
        }
    }
}

/// A tensor's region of external memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub base: usize,
    pub geometry: Geometry,
}

/// How the host writes the input image into its region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputPacking {
    /// The image as it is, HWC-padded.
    Direct,
    /// The patches of the first convolution (im2col): output pixel `(y, x)` holds the
    /// `C*kh*kw` inputs of its window (zeros in the padding), channel
    /// `(c*kh + ky)*kw + kx`, so the first convolution becomes a 1x1 convolution. A
    /// network input with few channels would otherwise use only `C` of the array rows.
    Im2col {
        image: [usize; 3],
        kernel: [usize; 2],
        stride: usize,
        padding: [usize; 2],
    },
}

/// Every tensor's region, indexed like the reference trace: 0 = input, `i + 1` =
/// output of layer `i`. `flatten` outputs alias their input's region and geometry.
#[derive(Clone, Debug)]
pub struct Layout {
    pub tensors: Vec<Region>,
    /// First byte after the activation regions (weights and parameters follow).
    pub end: usize,
    pub input_packing: InputPacking,
}

pub fn align(n: usize) -> usize {
    n.div_ceil(REGION_ALIGN) * REGION_ALIGN
}

fn geometry_of(hw: &HwConfig, t: &crate::ir::TensorType) -> Geometry {
    let [c, h, w] = t.shape;
    Geometry {
        channels: c,
        height: h,
        width: w,
        groups: c.div_ceil(hw.rows),
        dtype: t.dtype,
    }
}

/// Index of a named tensor in the trace numbering.
pub fn slot(model: &Model, name: &str) -> usize {
    if name == INPUT_NAME {
        0
    } else {
        1 + model
            .layers
            .iter()
            .position(|l| l.name == name)
            .expect("validated model")
    }
}

/// Whether the first layer is a convolution of the network input that im2col packing
/// makes cheaper: fewer reduction slices (`ceil(C*kh*kw / rows)` instead of
/// `kh*kw*ceil(C / rows)`).
pub fn input_packing(model: &Model, hw: &HwConfig) -> InputPacking {
    let Some(first) = model.layers.first() else {
        return InputPacking::Direct;
    };
    let Op::Conv2d(conv) = &first.op else {
        return InputPacking::Direct;
    };
    let [c, _, _] = model.input.shape;
    let k = conv.kernel[0] * conv.kernel[1];
    let uses_input_once = model.layers[1..]
        .iter()
        .all(|l| !l.inputs.iter().any(|n| n == INPUT_NAME));
    let fewer_slices = (c * k).div_ceil(hw.rows) < k * c.div_ceil(hw.rows);
    if first.inputs[0] == INPUT_NAME && uses_input_once && fewer_slices && conv.stride[0] == conv.stride[1] {
        InputPacking::Im2col {
            image: model.input.shape,
            kernel: conv.kernel,
            stride: conv.stride[0],
            padding: conv.padding,
        }
    } else {
        InputPacking::Direct
    }
}

/// Geometry of the input region: the image, or the first convolution's patches.
fn input_geometry(model: &Model, hw: &HwConfig, packing: InputPacking) -> Geometry {
    match packing {
        InputPacking::Direct => geometry_of(hw, &model.input),
        InputPacking::Im2col { image, kernel, .. } => {
            let [_, oh, ow] = model.layers[0].output.shape;
            let channels = image[0] * kernel[0] * kernel[1];
            Geometry {
                channels,
                height: oh,
                width: ow,
                groups: channels.div_ceil(hw.rows),
                dtype: model.input.dtype,
            }
        }
    }
}

/// Assign regions: the input first, then every layer output in order.
pub fn plan(model: &Model, hw: &HwConfig) -> Layout {
    let input_packing = input_packing(model, hw);
    let mut tensors = vec![Region {
        base: 0,
        geometry: input_geometry(model, hw, input_packing),
    }];
    let mut next = align(tensors[0].geometry.bytes(hw.rows));
    for layer in &model.layers {
        let region = match layer.op {
            Op::Flatten => tensors[slot(model, &layer.inputs[0])],
            _ => {
                let geometry = geometry_of(hw, &layer.output);
                let region = Region { base: next, geometry };
                next = align(next + geometry.bytes(hw.rows));
                region
            }
        };
        tensors.push(region);
    }
    Layout {
        tensors,
        end: next,
        input_packing,
    }
}

/// The input image (u8, `[C][H][W]`) as the host writes it into the input region.
pub fn pack_input(image: &[u8], layout: &Layout, rows: usize) -> Vec<u8> {
    let g = &layout.tensors[0].geometry;
    let mut out = vec![0u8; g.bytes(rows)];
    match layout.input_packing {
        InputPacking::Direct => {
            for c in 0..g.channels {
                for y in 0..g.height {
                    for x in 0..g.width {
                        out[g.offset(rows, c, y, x)] = image[(c * g.height + y) * g.width + x];
                    }
                }
            }
        }
        InputPacking::Im2col {
            image: [ic, ih, iw],
            kernel: [kh, kw],
            stride,
            padding: [ph, pw],
        } => {
            for y in 0..g.height {
                for x in 0..g.width {
                    for (lane, (c, ky, kx)) in (0..ic)
                        .flat_map(|c| (0..kh).flat_map(move |ky| (0..kw).map(move |kx| (c, ky, kx))))
                        .enumerate()
                    {
                        let iy = (y * stride + ky) as isize - ph as isize;
                        let ix = (x * stride + kx) as isize - pw as isize;
                        if iy >= 0 && ix >= 0 && (iy as usize) < ih && (ix as usize) < iw {
                            out[g.offset(rows, lane, y, x)] = image[(c * ih + iy as usize) * iw + ix as usize];
                        }
                    }
                }
            }
        }
    }
    out
}

impl Layout {
    /// Bytes of one input image as the host receives it (`C*H*W` u8 codes).
    pub fn image_len(&self) -> usize {
        match self.input_packing {
            InputPacking::Direct => {
                let g = &self.tensors[0].geometry;
                g.channels * g.height * g.width
            }
            InputPacking::Im2col { image, .. } => image.iter().product(),
        }
    }
}

/// Read a vector tensor (the logits) back from its bytes.
pub fn unpack_vector(bytes: &[u8], g: &Geometry, rows: usize) -> Vec<i32> {
    (0..g.channels)
        .map(|c| {
            let at = g.offset(rows, c, 0, 0);
            match (g.elem_bytes(), g.dtype.signed) {
                (2, true) => i16::from_le_bytes([bytes[at], bytes[at + 1]]) as i32,
                (2, false) => u16::from_le_bytes([bytes[at], bytes[at + 1]]) as i32,
                (_, true) => bytes[at] as i8 as i32,
                (_, false) => bytes[at] as i32,
            }
        })
        .collect()
}
