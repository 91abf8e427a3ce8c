//! The reference interpreter: runs an integer model exactly as
//! `docs/integer-semantics.md` defines it. It is the ground truth that the functional
//! model, the RTL and the trainer's export are all checked against.
//!
//! Speed comes from a per-layer im2col into `i16` rows and dot products that the
//! compiler vectorizes; images of a batch run in parallel (rayon).

use rayon::prelude::*;

use crate::arith::{self, Requant};
use crate::backend::{Backend, BackendError, Inference};
use crate::ir::{Conv2d, Layer, Linear, MacParams, Model, Op, Pool, TensorType, INPUT_NAME};

/// A validated model prepared for fast repeated inference.
pub struct Reference {
    model: Model,
    /// For each layer, the indices of its inputs in the trace (0 = network input).
    input_slots: Vec<Vec<usize>>,
    /// Weights widened to i16 once, per MAC layer (empty for other layers).
    wide_weights: Vec<Vec<i16>>,
}

impl Reference {
    /// Prepare `model`, which must already be validated (as `format::load` does).
    pub fn new(model: Model) -> Self {
        let input_slots = model
            .layers
            .iter()
            .map(|layer| layer.inputs.iter().map(|name| slot_of(&model, name)).collect())
            .collect();
        let wide_weights = model
            .layers
            .iter()
            .map(|l| {
                l.op.mac_params()
                    .map_or_else(Vec::new, |p| p.weights.iter().map(|&w| w as i16).collect())
            })
            .collect();
        Reference {
            model,
            input_slots,
            wide_weights,
        }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Every layer's output for one image: element 0 is the input, element `i + 1` the
    /// output of layer `i`, each flattened in `[C][H][W]` order.
    pub fn trace(&self, image: &[u8]) -> Vec<Vec<i32>> {
        let mut trace: Vec<Vec<i32>> = Vec::with_capacity(self.model.layers.len() + 1);
        trace.push(image.iter().map(|&p| p as i32).collect());
        for (i, layer) in self.model.layers.iter().enumerate() {
            let inputs: Vec<(&[i32], &TensorType)> = self.input_slots[i]
                .iter()
                .map(|&s| (trace[s].as_slice(), self.tensor_type(s)))
                .collect();
            let out = self.run_layer(layer, &self.wide_weights[i], &inputs);
            trace.push(out);
        }
        trace
    }

    /// Integer logits of one image.
    pub fn logits(&self, image: &[u8]) -> Vec<i32> {
        self.trace(image).pop().expect("a validated model has layers")
    }

    fn tensor_type(&self, slot: usize) -> &TensorType {
        if slot == 0 {
            &self.model.input
        } else {
            &self.model.layers[slot - 1].output
        }
    }

    fn run_layer(&self, layer: &Layer, weights: &[i16], inputs: &[(&[i32], &TensorType)]) -> Vec<i32> {
        let (x, x_type) = inputs[0];
        match &layer.op {
            Op::Conv2d(conv) => conv2d(conv, weights, x, x_type, &layer.output),
            Op::Linear(linear) => linear_layer(linear, weights, x, &layer.output),
            Op::MaxPool(pool) => max_pool(pool, x, x_type, &layer.output),
            Op::AvgPool { pool, requant } => avg_pool(pool, *requant, x, x_type, &layer.output),
            Op::GlobalAvgPool { requant } => global_avg_pool(*requant, x, x_type, &layer.output),
            Op::Add(rescale) => {
                let b = inputs[1].0;
                x.iter()
                    .zip(b)
                    .map(|(&a, &b)| arith::residual_add(a, b, *rescale, layer.output.dtype))
                    .collect()
            }
            Op::Flatten => x.to_vec(),
        }
    }
}

fn slot_of(model: &Model, name: &str) -> usize {
    if name == INPUT_NAME {
        return 0;
    }
    1 + model
        .layers
        .iter()
        .position(|l| l.name == name)
        .expect("validated models only name existing layers")
}

impl Backend for Reference {
    fn name(&self) -> &str {
        "reference"
    }

    fn input_len(&self) -> usize {
        self.model.input.elements()
    }

    /// Runs the images of the batch in parallel on the rayon thread pool.
    fn infer(&self, images: &[u8]) -> Result<Inference, BackendError> {
        let logits = self
            .split_images(images)?
            .par_iter()
            .map(|image| self.logits(image))
            .collect();
        Ok(Inference { logits, cycles: None })
    }
}

/// `sum(a[k] * b[k])` in i32; written so the loop vectorizes (pmaddwd on x86).
fn dot(a: &[i16], b: &[i16]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

/// The accumulate-requantize-clamp of one output value (docs §2-§4).
fn mac_output(p: &MacParams, channel: usize, dot: i32, out: &TensorType) -> i32 {
    let acc = p.bias[channel] as i64 + dot as i64;
    arith::requantize(acc, p.requant[channel], out.dtype)
}

/// Patches of the zero-padded input, one row of `in_channels*kh*kw` values per output
/// position, in the same `(i, ky, kx)` order as the weights.
fn im2col(conv: &Conv2d, x: &[i32], x_type: &TensorType, out_hw: (usize, usize)) -> Vec<i16> {
    let [c, h, w] = x_type.shape;
    let [kh, kw] = conv.kernel;
    let (oh, ow) = out_hw;
    let k = conv.products();
    let mut cols = vec![0i16; oh * ow * k];
    for oy in 0..oh {
        for ox in 0..ow {
            let row = &mut cols[(oy * ow + ox) * k..][..k];
            let mut idx = 0;
            for ci in 0..c {
                for ky in 0..kh {
                    let iy = (oy * conv.stride[0] + ky) as isize - conv.padding[0] as isize;
                    for kx in 0..kw {
                        let ix = (ox * conv.stride[1] + kx) as isize - conv.padding[1] as isize;
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                            // MAC inputs are at most 8 bits wide (validated), so i16 holds them.
                            row[idx] = x[(ci * h + iy as usize) * w + ix as usize] as i16;
                        }
                        idx += 1;
                    }
                }
            }
        }
    }
    cols
}

fn conv2d(conv: &Conv2d, weights: &[i16], x: &[i32], x_type: &TensorType, out: &TensorType) -> Vec<i32> {
    let [oc, oh, ow] = out.shape;
    let k = conv.products();
    let cols = im2col(conv, x, x_type, (oh, ow));
    let mut y = vec![0i32; oc * oh * ow];
    for (o, w_row) in weights.chunks_exact(k).enumerate() {
        let y_plane = &mut y[o * oh * ow..][..oh * ow];
        for (pos, patch) in cols.chunks_exact(k).enumerate() {
            y_plane[pos] = mac_output(&conv.params, o, dot(patch, w_row), out);
        }
    }
    y
}

fn linear_layer(linear: &Linear, weights: &[i16], x: &[i32], out: &TensorType) -> Vec<i32> {
    let xs: Vec<i16> = x.iter().map(|&v| v as i16).collect();
    weights
        .chunks_exact(linear.in_features)
        .enumerate()
        .map(|(o, w_row)| mac_output(&linear.params, o, dot(&xs, w_row), out))
        .collect()
}

/// Apply `reduce` to every pooling window of every channel.
fn pool_windows(
    pool: &Pool,
    x: &[i32],
    x_type: &TensorType,
    out: &TensorType,
    reduce: impl Fn(&mut dyn Iterator<Item = i32>) -> i32,
) -> Vec<i32> {
    let [_, h, w] = x_type.shape;
    let [c, oh, ow] = out.shape;
    let [kh, kw] = pool.kernel;
    let mut y = Vec::with_capacity(c * oh * ow);
    for ci in 0..c {
        let plane = &x[ci * h * w..][..h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let (y0, x0) = (oy * pool.stride[0], ox * pool.stride[1]);
                let mut window = (y0..y0 + kh).flat_map(|iy| plane[iy * w + x0..][..kw].iter().copied());
                y.push(reduce(&mut window));
            }
        }
    }
    y
}

fn max_pool(pool: &Pool, x: &[i32], x_type: &TensorType, out: &TensorType) -> Vec<i32> {
    pool_windows(pool, x, x_type, out, |w: &mut dyn Iterator<Item = i32>| {
        w.max().expect("windows are non-empty")
    })
}

fn avg_pool(pool: &Pool, rq: Requant, x: &[i32], x_type: &TensorType, out: &TensorType) -> Vec<i32> {
    let dtype = out.dtype;
    pool_windows(pool, x, x_type, out, |w: &mut dyn Iterator<Item = i32>| {
        arith::requantize(w.map(i64::from).sum(), rq, dtype)
    })
}

fn global_avg_pool(rq: Requant, x: &[i32], x_type: &TensorType, out: &TensorType) -> Vec<i32> {
    let [_, h, w] = x_type.shape;
    x.chunks_exact(h * w)
        .map(|plane| arith::requantize(plane.iter().map(|&v| v as i64).sum(), rq, out.dtype))
        .collect()
}
