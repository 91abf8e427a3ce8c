//! Builds integer models layer by layer, deriving every output shape, so exporters
//! and tests never write shapes by hand. `build` validates the result.

use crate::arith::{AddRescale, DType, Requant};
use crate::ir::*;
use crate::validate::{validate, ModelError};

/// Dtype and real scale of a layer's output.
#[derive(Clone, Copy, Debug)]
pub struct OutType {
    pub dtype: DType,
    pub scale: f32,
}

/// Geometry of a convolution.
#[derive(Clone, Copy, Debug)]
pub struct ConvGeometry {
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
}

impl ConvGeometry {
    /// A square `k x k` convolution with "same" padding for odd `k` at stride 1.
    pub fn square(out_channels: usize, k: usize, stride: usize) -> Self {
        ConvGeometry {
            out_channels,
            kernel: [k, k],
            stride: [stride, stride],
            padding: [k / 2, k / 2],
        }
    }
}

pub struct ModelBuilder {
    model: Model,
    /// Name of the tensor the next layer reads by default.
    current: String,
}

impl ModelBuilder {
    /// A model whose input is `u8` pixels of `shape` with scale 1/255 (docs §1).
    pub fn new(name: &str, shape: [usize; 3]) -> Self {
        let input = TensorType {
            shape,
            dtype: DType::U8,
            scale: 1.0 / 255.0,
        };
        let model = Model {
            format_version: FORMAT_VERSION,
            name: name.to_string(),
            input,
            layers: Vec::new(),
        };
        ModelBuilder {
            model,
            current: INPUT_NAME.to_string(),
        }
    }

    /// The type of the tensor the next layer will read.
    pub fn current(&self) -> &TensorType {
        self.tensor(&self.current.clone())
    }

    pub fn current_name(&self) -> &str {
        &self.current
    }

    fn tensor(&self, name: &str) -> &TensorType {
        if name == INPUT_NAME {
            return &self.model.input;
        }
        self.model
            .layers
            .iter()
            .find(|l| l.name == name)
            .map_or(&self.model.input, |l| &l.output)
    }

    fn push(&mut self, name: &str, inputs: Vec<String>, op: Op, shape: [usize; 3], out: OutType) -> &mut Self {
        let output = TensorType {
            shape,
            dtype: out.dtype,
            scale: out.scale,
        };
        self.model.layers.push(Layer {
            name: name.to_string(),
            inputs,
            op,
            output,
        });
        self.current = name.to_string();
        self
    }

    pub fn conv2d(&mut self, name: &str, g: ConvGeometry, params: MacParams, out: OutType) -> &mut Self {
        let [c, h, w] = self.current().shape;
        let oh = window_output(h, g.kernel[0], g.stride[0], g.padding[0]).unwrap_or(0);
        let ow = window_output(w, g.kernel[1], g.stride[1], g.padding[1]).unwrap_or(0);
        let op = Op::Conv2d(Conv2d {
            in_channels: c,
            out_channels: g.out_channels,
            kernel: g.kernel,
            stride: g.stride,
            padding: g.padding,
            params,
        });
        self.push(name, vec![self.current.clone()], op, [g.out_channels, oh, ow], out)
    }

    pub fn linear(&mut self, name: &str, out_features: usize, params: MacParams, out: OutType) -> &mut Self {
        let in_features = self.current().elements();
        let op = Op::Linear(Linear {
            in_features,
            out_features,
            params,
        });
        self.push(name, vec![self.current.clone()], op, [out_features, 1, 1], out)
    }

    fn pooled_shape(&self, pool: &Pool) -> [usize; 3] {
        let [c, h, w] = self.current().shape;
        let oh = window_output(h, pool.kernel[0], pool.stride[0], 0).unwrap_or(0);
        let ow = window_output(w, pool.kernel[1], pool.stride[1], 0).unwrap_or(0);
        [c, oh, ow]
    }

    pub fn max_pool(&mut self, name: &str, kernel: usize, stride: usize) -> &mut Self {
        let pool = Pool {
            kernel: [kernel, kernel],
            stride: [stride, stride],
        };
        let input = self.current().clone();
        let out = OutType {
            dtype: input.dtype,
            scale: input.scale,
        };
        self.push(
            name,
            vec![self.current.clone()],
            Op::MaxPool(pool),
            self.pooled_shape(&pool),
            out,
        )
    }

    pub fn avg_pool(&mut self, name: &str, kernel: usize, stride: usize, requant: Requant, out: OutType) -> &mut Self {
        let pool = Pool {
            kernel: [kernel, kernel],
            stride: [stride, stride],
        };
        let shape = self.pooled_shape(&pool);
        self.push(
            name,
            vec![self.current.clone()],
            Op::AvgPool { pool, requant },
            shape,
            out,
        )
    }

    pub fn global_avg_pool(&mut self, name: &str, requant: Requant, out: OutType) -> &mut Self {
        let c = self.current().shape[0];
        self.push(
            name,
            vec![self.current.clone()],
            Op::GlobalAvgPool { requant },
            [c, 1, 1],
            out,
        )
    }

    /// Residual add of the current tensor (`a`) and the earlier tensor `other` (`b`).
    pub fn add(&mut self, name: &str, other: &str, rescale: AddRescale, out: OutType) -> &mut Self {
        let shape = self.current().shape;
        self.push(
            name,
            vec![self.current.clone(), other.to_string()],
            Op::Add(rescale),
            shape,
            out,
        )
    }

    pub fn flatten(&mut self, name: &str) -> &mut Self {
        let input = self.current().clone();
        let out = OutType {
            dtype: input.dtype,
            scale: input.scale,
        };
        self.push(
            name,
            vec![self.current.clone()],
            Op::Flatten,
            [input.elements(), 1, 1],
            out,
        )
    }

    /// Continue from an earlier tensor (to start a second branch).
    pub fn from_tensor(&mut self, name: &str) -> &mut Self {
        self.current = name.to_string();
        self
    }

    pub fn build(self) -> Result<Model, ModelError> {
        validate(&self.model)?;
        Ok(self.model)
    }

    /// The model without validation, for tests that build deliberately broken models.
    pub fn build_unchecked(self) -> Model {
        self.model
    }
}
