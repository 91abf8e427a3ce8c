//! Checks that an integer model is well formed: shapes chain layer to layer, every
//! integer lies in its declared range, and no accumulation can overflow (docs §2).
//! Every error names the layer and the field.

use std::collections::HashMap;

use crate::arith::{self, DType, MAX_ACTIVATION_BITS, MAX_MAC_OPERAND_BITS, MIN_BITS};
use crate::ir::*;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("unsupported format version {found} (this build reads version {expected})")]
    Version { found: u32, expected: u32 },
    #[error("layer '{layer}': field '{field}': {message}")]
    Invalid {
        layer: String,
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    Format(String),
}

type Check = Result<(), ModelError>;

fn invalid(layer: &str, field: &'static str, message: impl Into<String>) -> ModelError {
    ModelError::Invalid {
        layer: layer.to_string(),
        field,
        message: message.into(),
    }
}

fn ensure(cond: bool, layer: &str, field: &'static str, message: impl FnOnce() -> String) -> Check {
    if cond {
        Ok(())
    } else {
        Err(invalid(layer, field, message()))
    }
}

/// Validate a whole model.
pub fn validate(model: &Model) -> Check {
    if model.format_version != FORMAT_VERSION {
        return Err(ModelError::Version {
            found: model.format_version,
            expected: FORMAT_VERSION,
        });
    }
    check_input(&model.input)?;
    ensure(!model.layers.is_empty(), "(model)", "layers", || {
        "the model has no layers".into()
    })?;
    let mut tensors: HashMap<&str, &TensorType> = HashMap::from([(INPUT_NAME, &model.input)]);
    for layer in &model.layers {
        let inputs = resolve_inputs(layer, &tensors)?;
        check_op(layer, &inputs)?;
        check_tensor_type(&layer.name, &layer.output)?;
        tensors.insert(&layer.name, &layer.output);
    }
    check_all_outputs_used(model)?;
    check_logits(model)
}

fn check_input(input: &TensorType) -> Check {
    ensure(input.dtype == DType::U8, INPUT_NAME, "dtype", || {
        format!("the network input must be u8 image pixels, found {}", input.dtype)
    })?;
    check_shape(INPUT_NAME, "shape", input)?;
    check_scale(INPUT_NAME, input.scale)
}

fn check_scale(layer: &str, scale: f32) -> Check {
    ensure(scale.is_finite() && scale > 0.0, layer, "scale", || {
        format!("must be a positive finite number, found {scale}")
    })
}

fn check_tensor_type(layer: &str, t: &TensorType) -> Check {
    ensure(
        (MIN_BITS..=MAX_ACTIVATION_BITS).contains(&t.dtype.bits),
        layer,
        "output.dtype.bits",
        || format!("must be {MIN_BITS}..={MAX_ACTIVATION_BITS}, found {}", t.dtype.bits),
    )?;
    check_shape(layer, "output.shape", t)?;
    check_scale(layer, t.scale)
}

fn check_shape(layer: &str, field: &'static str, t: &TensorType) -> Check {
    ensure(t.shape.iter().all(|&d| d > 0), layer, field, || {
        format!("every dimension must be positive, found {:?}", t.shape)
    })?;
    ensure(t.elements() <= MAX_TENSOR_ELEMENTS, layer, field, || {
        format!("{:?} has more than {MAX_TENSOR_ELEMENTS} values", t.shape)
    })
}

fn resolve_inputs<'m>(
    layer: &Layer,
    tensors: &HashMap<&str, &'m TensorType>,
) -> Result<Vec<&'m TensorType>, ModelError> {
    let name = &layer.name;
    ensure(!name.is_empty() && name != INPUT_NAME, name, "name", || {
        format!("layer names must be non-empty and not '{INPUT_NAME}'")
    })?;
    ensure(!tensors.contains_key(name.as_str()), name, "name", || {
        "duplicate layer name".into()
    })?;
    let arity = if matches!(layer.op, Op::Add(_)) { 2 } else { 1 };
    ensure(layer.inputs.len() == arity, name, "inputs", || {
        format!(
            "{} takes {arity} input(s), found {}",
            layer.op.kind(),
            layer.inputs.len()
        )
    })?;
    layer
        .inputs
        .iter()
        .map(|i| {
            tensors.get(i.as_str()).copied().ok_or_else(|| {
                invalid(
                    name,
                    "inputs",
                    format!("'{i}' is neither '{INPUT_NAME}' nor an earlier layer"),
                )
            })
        })
        .collect()
}

fn check_op(layer: &Layer, inputs: &[&TensorType]) -> Check {
    let input = inputs[0];
    match &layer.op {
        Op::Conv2d(conv) => check_conv(layer, conv, input),
        Op::Linear(linear) => check_linear(layer, linear, input),
        Op::MaxPool(pool) => {
            check_pool_window(layer, pool, input)?;
            check_same_dtype_and_scale(layer, input)
        }
        Op::AvgPool { pool, requant } => {
            check_pool_window(layer, pool, input)?;
            check_requant(&layer.name, "requant", requant)
        }
        Op::GlobalAvgPool { requant } => {
            let [c, _, _] = input.shape;
            check_output_shape(layer, [c, 1, 1])?;
            check_requant(&layer.name, "requant", requant)
        }
        Op::Add(rescale) => check_add(layer, rescale, inputs),
        Op::Flatten => {
            check_output_shape(layer, [input.elements(), 1, 1])?;
            check_same_dtype_and_scale(layer, input)
        }
    }
}

fn check_output_shape(layer: &Layer, expected: [usize; 3]) -> Check {
    ensure(layer.output.shape == expected, &layer.name, "output.shape", || {
        format!(
            "expected {expected:?} from the input shape, found {:?}",
            layer.output.shape
        )
    })
}

fn check_same_dtype_and_scale(layer: &Layer, input: &TensorType) -> Check {
    ensure(layer.output.dtype == input.dtype, &layer.name, "output.dtype", || {
        format!(
            "{} keeps its input dtype {}, found {}",
            layer.op.kind(),
            input.dtype,
            layer.output.dtype
        )
    })?;
    ensure(layer.output.scale == input.scale, &layer.name, "output.scale", || {
        format!(
            "{} keeps its input scale {}, found {}",
            layer.op.kind(),
            input.scale,
            layer.output.scale
        )
    })
}

fn check_requant(layer: &str, field: &'static str, rq: &arith::Requant) -> Check {
    ensure(rq.is_valid(), layer, field, || {
        format!(
            "multiplier {} / shift {} outside 0..2^{} / 0..={}",
            rq.multiplier,
            rq.shift,
            arith::REQUANT_MULTIPLIER_BITS,
            arith::MAX_REQUANT_SHIFT
        )
    })
}

fn check_mac_input(layer: &Layer, input: &TensorType) -> Check {
    ensure(input.dtype.bits <= MAX_MAC_OPERAND_BITS, &layer.name, "inputs", || {
        format!(
            "a {} input may be at most {MAX_MAC_OPERAND_BITS} bits wide, found {}",
            layer.op.kind(),
            input.dtype
        )
    })
}

fn check_conv(layer: &Layer, conv: &Conv2d, input: &TensorType) -> Check {
    let name = &layer.name;
    check_mac_input(layer, input)?;
    let [c, h, w] = input.shape;
    ensure(conv.in_channels == c, name, "in_channels", || {
        format!("input has {c} channels, found {}", conv.in_channels)
    })?;
    let oh = window_output(h, conv.kernel[0], conv.stride[0], conv.padding[0]);
    let ow = window_output(w, conv.kernel[1], conv.stride[1], conv.padding[1]);
    let (Some(oh), Some(ow)) = (oh, ow) else {
        return Err(invalid(
            name,
            "kernel",
            format!(
                "kernel {:?} / stride {:?} / padding {:?} do not fit the {h}x{w} input",
                conv.kernel, conv.stride, conv.padding
            ),
        ));
    };
    check_output_shape(layer, [conv.out_channels, oh, ow])?;
    check_mac_params(name, &conv.params, conv.out_channels, conv.products(), input.dtype)
}

fn check_linear(layer: &Layer, linear: &Linear, input: &TensorType) -> Check {
    let name = &layer.name;
    check_mac_input(layer, input)?;
    ensure(input.shape == [linear.in_features, 1, 1], name, "in_features", || {
        format!(
            "input must be a vector [{}, 1, 1] (flatten first), found {:?}",
            linear.in_features, input.shape
        )
    })?;
    check_output_shape(layer, [linear.out_features, 1, 1])?;
    check_mac_params(
        name,
        &linear.params,
        linear.out_features,
        linear.in_features,
        input.dtype,
    )
}

fn check_mac_params(layer: &str, p: &MacParams, outputs: usize, products: usize, input: DType) -> Check {
    ensure(
        (MIN_BITS..=MAX_MAC_OPERAND_BITS).contains(&p.weight_bits),
        layer,
        "weight_bits",
        || format!("must be {MIN_BITS}..={MAX_MAC_OPERAND_BITS}, found {}", p.weight_bits),
    )?;
    check_len(layer, "weights", p.weights.len(), outputs.saturating_mul(products))?;
    check_len(layer, "weight_scales", p.weight_scales.len(), outputs)?;
    check_len(layer, "bias", p.bias.len(), outputs)?;
    check_len(layer, "requant", p.requant.len(), outputs)?;
    let wtype = DType::signed(p.weight_bits);
    if let Some((i, w)) = p.weights.iter().enumerate().find(|(_, &w)| !wtype.contains(w as i64)) {
        return Err(invalid(
            layer,
            "weights",
            format!(
                "value {w} at index {i} outside the {}-bit signed range [{}, {}]",
                p.weight_bits,
                wtype.min(),
                wtype.max()
            ),
        ));
    }
    if let Some((c, s)) = p
        .weight_scales
        .iter()
        .enumerate()
        .find(|(_, s)| !(s.is_finite() && **s > 0.0))
    {
        return Err(invalid(
            layer,
            "weight_scales",
            format!("channel {c}: must be positive and finite, found {s}"),
        ));
    }
    for (c, rq) in p.requant.iter().enumerate() {
        check_requant(layer, "requant", rq).map_err(|e| invalid(layer, "requant", format!("channel {c}: {e}")))?;
    }
    check_accumulator_bound(layer, p, products, input)
}

fn check_len(layer: &str, field: &'static str, found: usize, expected: usize) -> Check {
    ensure(found == expected, layer, field, || {
        format!("expected {expected} values, found {found}")
    })
}

/// docs §2: no accumulation may leave the i32 range.
fn check_accumulator_bound(layer: &str, p: &MacParams, products: usize, input: DType) -> Check {
    for (c, &bias) in p.bias.iter().enumerate() {
        let bound = arith::accumulator_bound(bias, products, input, p.weight_bits);
        ensure(bound <= i32::MAX as i128, layer, "bias", || {
            format!("channel {c}: |bias| + K*max|x|*max|w| = {bound} can overflow the 32-bit accumulator")
        })?;
    }
    Ok(())
}

fn check_pool_window(layer: &Layer, pool: &Pool, input: &TensorType) -> Check {
    let [c, h, w] = input.shape;
    let oh = window_output(h, pool.kernel[0], pool.stride[0], 0);
    let ow = window_output(w, pool.kernel[1], pool.stride[1], 0);
    let (Some(oh), Some(ow)) = (oh, ow) else {
        return Err(invalid(
            &layer.name,
            "kernel",
            format!(
                "pool kernel {:?} / stride {:?} do not fit the {h}x{w} input",
                pool.kernel, pool.stride
            ),
        ));
    };
    check_output_shape(layer, [c, oh, ow])
}

fn check_add(layer: &Layer, rescale: &arith::AddRescale, inputs: &[&TensorType]) -> Check {
    let (a, b) = (inputs[0], inputs[1]);
    ensure(a.shape == b.shape, &layer.name, "inputs", || {
        format!("add needs equal shapes, found {:?} and {:?}", a.shape, b.shape)
    })?;
    check_output_shape(layer, a.shape)?;
    ensure(rescale.is_valid(), &layer.name, "rescale", || {
        format!(
            "multipliers {}/{} or shift {} out of range",
            rescale.multiplier_a, rescale.multiplier_b, rescale.shift
        )
    })
}

/// A layer whose result nobody reads is almost certainly an exporter bug.
fn check_all_outputs_used(model: &Model) -> Check {
    let last = model.layers.len() - 1;
    for (i, layer) in model.layers.iter().enumerate().take(last) {
        let used = model.layers[i + 1..].iter().any(|l| l.inputs.contains(&layer.name));
        ensure(used, &layer.name, "name", || {
            "the output of this layer is never used".into()
        })?;
    }
    Ok(())
}

fn check_logits(model: &Model) -> Check {
    let last = model.layers.last().expect("checked non-empty");
    let [n, h, w] = last.output.shape;
    ensure(h == 1 && w == 1 && n >= 2, &last.name, "output.shape", || {
        format!(
            "the last layer must produce a logit vector [classes >= 2, 1, 1], found {:?}",
            last.output.shape
        )
    })
}
