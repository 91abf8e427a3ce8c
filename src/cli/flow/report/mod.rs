//! The report step: DIR/report.md (charts in DIR/report/*.svg) and the
//! self-contained DIR/report.html, from what the other steps wrote.

mod doc;
mod html;
mod markdown;
mod sections;

use std::path::Path;

use trainer::attack::metrics::AttackMetrics;

use super::results::*;
use super::stamp::{read_json, read_stamp, write_atomic};
use super::steps::{Ctx, Step, ALL};
use super::Invocation;
use doc::Doc;

pub const MARKDOWN_FILE: &str = "report.md";
pub const HTML_FILE: &str = "report.html";
/// Charts of report.md, next to it.
pub const FIGURE_DIR: &str = "report";

/// Everything the report shows, read back from the steps' outputs.
pub struct Inputs {
    pub accuracy: Accuracies,
    pub compile: CompileResult,
    pub simulate: SimResult,
    pub attacks: Vec<AttackMetrics>,
    pub cross_checks: Vec<CrossCheck>,
    pub board: BoardResult,
    /// (step, seconds of the run that finished it).
    pub step_seconds: Vec<(Step, Option<f64>)>,
}

fn load(ctx: &Ctx) -> anyhow::Result<Inputs> {
    let dir = |s: Step| ctx.dir(s);
    Ok(Inputs {
        accuracy: read_json(&dir(Step::Evaluate).join(ACCURACY_FILE))?,
        compile: read_json(&dir(Step::Compile).join(COMPILE_FILE))?,
        simulate: read_json(&dir(Step::Simulate).join(SIMULATE_FILE))?,
        attacks: read_json(&dir(Step::Attack).join(trainer::attack::experiment::RESULTS_JSON))?,
        cross_checks: read_json(&dir(Step::Attack).join(CROSS_CHECK_FILE))?,
        board: read_json(&dir(Step::Synthesize).join(BOARD_FILE))?,
        step_seconds: ALL
            .iter()
            .filter(|s| **s != Step::Report)
            .map(|&s| (s, read_stamp(&dir(s)).map(|st| st.seconds)))
            .collect(),
    })
}

pub fn run(ctx: &Ctx, invocation: &Invocation) -> anyhow::Result<()> {
    let inputs = load(ctx)?;
    let doc = sections::build(ctx.config, &inputs, invocation);
    write(ctx.out(), &doc)
}

fn write(out: &Path, doc: &Doc) -> anyhow::Result<()> {
    let figures = out.join(FIGURE_DIR);
    std::fs::create_dir_all(&figures)?;
    for block in &doc.blocks {
        if let doc::Block::Figure { file, svg, .. } = block {
            write_atomic(&figures.join(file), svg.as_bytes())?;
        }
    }
    write_atomic(&out.join(MARKDOWN_FILE), markdown::render(doc, FIGURE_DIR).as_bytes())?;
    write_atomic(&out.join(HTML_FILE), html::render(doc).as_bytes())
}
