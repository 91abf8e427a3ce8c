//! Export of a quantized network to the integer model. It reuses
//! `QMac::quantize`, `gap_requant` and `add_rescale` — the very functions the
//! fake-quant forward pass uses — so the file holds exactly what was trained.

use compiler::arith::DType;
use compiler::builder::{ConvGeometry, ModelBuilder, OutType};
use compiler::ir::MacParams;
use compiler::{Model, ModelError};
use tch::Kind;

use crate::quant_net::{add_rescale, gap_requant, QLayer, QMac, QuantNet, INPUT_SCALE};

/// Real scale and dtype of the tensor being exported.
#[derive(Clone, Copy)]
struct Meta {
    scale: f64,
    dtype: DType,
}

/// The integer model of `net` for inputs of `input` shape `[C, H, W]`.
pub fn export(net: &QuantNet, name: &str, input: [usize; 3]) -> Result<Model, ModelError> {
    tch::no_grad(|| {
        let mut b = ModelBuilder::new(name, input);
        let mut meta = Meta {
            scale: INPUT_SCALE,
            dtype: DType::U8,
        };
        for (i, layer) in net.layers.iter().enumerate() {
            meta = export_layer(&mut b, &format!("b{i}"), layer, meta);
        }
        b.build()
    })
}

fn export_layer(b: &mut ModelBuilder, name: &str, layer: &QLayer, meta: Meta) -> Meta {
    match layer {
        QLayer::Mac(m) => export_mac(b, &format!("{name}_{}", if m.linear { "fc" } else { "conv" }), m, meta),
        QLayer::MaxPool { kernel, stride } => {
            b.max_pool(&format!("{name}_maxpool"), *kernel as usize, *stride as usize);
            meta
        }
        QLayer::GlobalAvgPool => {
            let [_, h, w] = b.current().shape;
            let out = OutType {
                dtype: meta.dtype,
                scale: meta.scale as f32,
            };
            b.global_avg_pool(&format!("{name}_gap"), gap_requant((h * w) as i64), out);
            meta
        }
        QLayer::Flatten => {
            b.flatten(&format!("{name}_flatten"));
            meta
        }
        QLayer::Residual {
            body,
            shortcut,
            observer,
            output,
        } => {
            let block_input = b.current_name().to_string();
            let skip_meta = match shortcut {
                Some(s) => export_mac(b, &format!("{name}_shortcut"), s, meta),
                None => meta,
            };
            let skip = b.current_name().to_string();
            b.from_tensor(&block_input);
            let mut h = meta;
            for (j, m) in body.iter().enumerate() {
                h = export_mac(b, &format!("{name}_conv{j}"), m, h);
            }
            let s_out = observer.scale(*output);
            let rescale = add_rescale(h.scale / s_out, skip_meta.scale / s_out);
            b.add(
                &format!("{name}_add"),
                &skip,
                rescale,
                OutType {
                    dtype: *output,
                    scale: s_out as f32,
                },
            );
            Meta {
                scale: s_out,
                dtype: *output,
            }
        }
    }
}

fn export_mac(b: &mut ModelBuilder, name: &str, m: &QMac, input: Meta) -> Meta {
    let q = m.quantize(input.scale, input.dtype);
    let weights: Vec<f32> =
        Vec::try_from(q.weights.to_kind(Kind::Float).flatten(0, -1)).expect("weights are a float tensor");
    let bias: Vec<f64> = Vec::try_from(q.bias.to_kind(Kind::Double)).expect("bias is a 1-D tensor");
    let params = MacParams {
        weight_bits: m.weight_bits,
        weights: weights.iter().map(|&w| w as i8).collect(),
        weight_scales: q.weight_scales.iter().map(|&s| s as f32).collect(),
        bias: bias.iter().map(|&v| v as i32).collect(),
        requant: q.requant.clone(),
    };
    let out = OutType {
        dtype: m.output,
        scale: q.output_scale as f32,
    };
    let outputs = m.spec.out_channels;
    if m.linear {
        b.linear(name, outputs, params, out);
    } else {
        let s = m.spec;
        let g = ConvGeometry {
            out_channels: outputs,
            kernel: [s.kernel; 2],
            stride: [s.stride; 2],
            padding: [s.padding; 2],
        };
        b.conv2d(name, g, params, out);
    }
    Meta {
        scale: q.output_scale,
        dtype: m.output,
    }
}
