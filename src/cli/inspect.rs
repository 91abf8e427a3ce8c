//! `divqat inspect`: what is inside an integer model file.

use std::path::PathBuf;

use clap::Args;
use compiler::ir::{Layer, Model, Op};
use serde::Serialize;

use super::output::print_json;

#[derive(Args)]
#[command(after_help = "Examples:\n  divqat inspect --model run/qat/model.qnn\n  divqat inspect --model m.qnn --json")]
pub struct InspectArgs {
    /// Integer model file (.qnn, written by divqat train or random-model).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct LayerSummary {
    name: String,
    op: &'static str,
    inputs: Vec<String>,
    output_shape: [usize; 3],
    output_dtype: String,
    weight_bits: Option<u8>,
    parameters: usize,
    macs: u64,
}

#[derive(Serialize)]
struct ModelSummary {
    name: String,
    format_version: u32,
    input_shape: [usize; 3],
    classes: usize,
    parameters: usize,
    macs_per_image: u64,
    layers: Vec<LayerSummary>,
}

fn summarize_layer(layer: &Layer) -> LayerSummary {
    let params = layer.op.mac_params();
    LayerSummary {
        name: layer.name.clone(),
        op: layer.op.kind(),
        inputs: layer.inputs.clone(),
        output_shape: layer.output.shape,
        output_dtype: layer.output.dtype.to_string(),
        weight_bits: params.map(|p| p.weight_bits),
        parameters: params.map_or(0, |p| p.weights.len() + p.bias.len()),
        macs: layer.macs(),
    }
}

fn summarize(model: &Model) -> ModelSummary {
    ModelSummary {
        name: model.name.clone(),
        format_version: model.format_version,
        input_shape: model.input.shape,
        classes: model.num_classes(),
        parameters: model.parameter_count(),
        macs_per_image: model.macs(),
        layers: model.layers.iter().map(summarize_layer).collect(),
    }
}

/// Geometry in words, e.g. "3x3 s1 p1" for a conv.
fn geometry(op: &Op) -> String {
    match op {
        Op::Conv2d(c) => format!("{}x{} s{} p{}", c.kernel[0], c.kernel[1], c.stride[0], c.padding[0]),
        Op::MaxPool(p) | Op::AvgPool { pool: p, .. } => format!("{}x{} s{}", p.kernel[0], p.kernel[1], p.stride[0]),
        _ => String::new(),
    }
}

pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let model = compiler::load(&args.model)?;
    let summary = summarize(&model);
    if args.json {
        return print_json(&summary);
    }
    let [c, h, w] = summary.input_shape;
    println!(
        "model {} (format v{}), input {c}x{h}x{w} u8, {} classes",
        summary.name, summary.format_version, summary.classes
    );
    println!(
        "{:<14} {:<16} {:<12} {:>12} {:>6} {:>5} {:>9} {:>11}",
        "layer", "op", "geometry", "output", "dtype", "wbits", "params", "MACs"
    );
    for (l, layer) in summary.layers.iter().zip(&model.layers) {
        let [oc, oh, ow] = l.output_shape;
        let wbits = l.weight_bits.map_or("-".to_string(), |b| b.to_string());
        println!(
            "{:<14} {:<16} {:<12} {:>12} {:>6} {:>5} {:>9} {:>11}",
            l.name,
            l.op,
            geometry(&layer.op),
            format!("{oc}x{oh}x{ow}"),
            l.output_dtype,
            wbits,
            l.parameters,
            l.macs
        );
    }
    println!(
        "total: {} parameters, {} MACs per image",
        summary.parameters, summary.macs_per_image
    );
    Ok(())
}
