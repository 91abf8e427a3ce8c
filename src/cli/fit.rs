//! `divqat fit`: the fastest accelerator configuration that fits a board and meets
//! its clock, for one model. Candidates (array shapes, each with the smallest
//! buffers the model compiles with, with the queued controller and with the serial
//! one) are ranked by the cycle model's images/s at
//! the board's clock and synthesized in that order (cached runs cost nothing)
//! until one fits and meets timing; a candidate at least as large in every
//! dimension as one that overflowed is skipped without synthesis.

use std::path::PathBuf;

use anyhow::{bail, Context};
use boards::flow::cache_root;
use boards::top::DEFAULT_BAUD;
use boards::{synthesize_board, Board, SynthRequest};
use clap::Args;
use compiler::hw::HwConfig;
use serde::Serialize;

use super::board_hw::smallest_config;
use super::output::print_json;
use super::synth::{costs_of, summarize, SynthSummary};

#[derive(Args)]
#[command(after_help = "\
Each shape is tried with the queued controller (units overlap) and the serial one (smaller, slower;
labeled RxC-serial). Each synthesized candidate's artifacts land in DIR/<label>/; DIR/fit.json
holds the table.

Examples:
  divqat fit --board icebreaker --model runs/qat/model.qnn --out build/fit-ice
  divqat fit --board alchitry-cu --model runs/qat/model.qnn --out build/fit-cu --json
  divqat fit --board icebreaker --model model.qnn --shapes 1x1,1x2,2x2 --out build/fit")]
pub struct FitArgs {
    #[arg(long)]
    pub board: String,
    /// Integer model (.qnn) the configuration must run.
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Array shapes to consider, RxC, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1x1,1x2,2x1,2x2,2x4,4x2,4x4,8x8")]
    pub shapes: Vec<String>,
    /// Accelerator clock (default: the board's).
    #[arg(long)]
    pub target_mhz: Option<f64>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
}

/// One configuration the search considered.
#[derive(Debug, Serialize)]
pub struct Candidate {
    pub hw: HwConfig,
    pub cycles_per_image: u64,
    /// At the target clock, from the cycle model.
    pub predicted_images_per_second: f64,
    /// "chosen", "fits", "does not fit", "misses timing", "skipped: larger than
    /// <shape>, which does not fit", or "not synthesized: a faster one fits".
    pub status: String,
    pub synth: Option<SynthSummary>,
    #[serde(skip)]
    link: boards::host::LinkTraffic,
}

#[derive(Debug, Serialize)]
pub struct FitReport {
    pub board: String,
    pub model: PathBuf,
    pub target_mhz: f64,
    /// The chosen configuration (the fastest that fits and meets timing).
    pub best: Option<usize>,
    pub images_per_second: Option<f64>,
    pub candidates: Vec<Candidate>,
}

/// Whether `a` is at least as large as `b` in every dimension that costs area.
fn at_least_as_large(a: &HwConfig, b: &HwConfig) -> bool {
    a.rows >= b.rows
        && a.cols >= b.cols
        && a.act_buffer_words >= b.act_buffer_words
        && a.weight_buffer_words >= b.weight_buffer_words
        && a.acc_buffer_words >= b.acc_buffer_words
        && a.out_buffer_words >= b.out_buffer_words
        && a.param_buffer_entries >= b.param_buffer_entries
        && a.queue_depth >= b.queue_depth
        && a.bus_bytes >= b.bus_bytes
        && (a.add_unit || !b.add_unit)
}

/// A candidate's name in the table and its artifact directory: `RxC`, `RxC-serial`.
fn label(hw: &HwConfig) -> String {
    let serial = if hw.is_serial() { "-serial" } else { "" };
    format!("{}x{}{serial}", hw.rows, hw.cols)
}

fn parse_shape(shape: &str) -> anyhow::Result<(usize, usize)> {
    let (r, c) = shape
        .split_once('x')
        .with_context(|| format!("--shapes: {shape:?} is not RxC"))?;
    Ok((
        r.parse().with_context(|| format!("--shapes: {shape:?}"))?,
        c.parse().with_context(|| format!("--shapes: {shape:?}"))?,
    ))
}

pub fn run(args: FitArgs) -> anyhow::Result<()> {
    let board = Board::by_name(&args.board)?;
    let target_mhz = args.target_mhz.unwrap_or(board.target_mhz);
    let model = compiler::format::load(&args.model).with_context(|| format!("cannot load {}", args.model.display()))?;
    let mut candidates = Vec::new();
    for (shape, serial) in args.shapes.iter().flat_map(|s| [(s, false), (s, true)]) {
        let (rows, cols) = parse_shape(shape)?;
        let Some(hw) = smallest_config(&model, rows, cols, target_mhz, serial) else {
            // The controller does not change what compiles: say it once per shape.
            if serial {
                eprintln!("{shape}: the model does not compile for this shape; skipped");
            }
            continue;
        };
        let (cycles, link) = costs_of(&model, &hw)?;
        candidates.push(Candidate {
            link,
            predicted_images_per_second: target_mhz * 1e6 / cycles as f64,
            cycles_per_image: cycles,
            hw,
            status: String::new(),
            synth: None,
        });
    }
    if candidates.is_empty() {
        bail!("no candidate shape compiles {}", args.model.display());
    }
    candidates.sort_by(|a, b| b.predicted_images_per_second.total_cmp(&a.predicted_images_per_second));
    let best = search(&mut candidates, board, &args, target_mhz)?;
    let report = FitReport {
        board: board.name.to_string(),
        model: args.model.clone(),
        target_mhz,
        images_per_second: best.and_then(|i| candidates[i].synth.as_ref()?.images_per_second),
        best,
        candidates,
    };
    std::fs::create_dir_all(&args.out)?;
    let json = serde_json::to_string_pretty(&report)?;
    let path = args.out.join("fit.json");
    std::fs::write(args.out.join(".fit.json.tmp"), json)?;
    std::fs::rename(args.out.join(".fit.json.tmp"), &path)?;
    if args.json {
        print_json(&report)?;
    } else {
        print_table(&report);
    }
    if best.is_none() {
        bail!(
            "no candidate fits {} and meets {target_mhz} MHz (table: {})",
            board.name,
            path.display()
        );
    }
    Ok(())
}

/// Synthesizes candidates fastest first until one fits and meets timing.
fn search(
    candidates: &mut [Candidate],
    board: &Board,
    args: &FitArgs,
    target_mhz: f64,
) -> anyhow::Result<Option<usize>> {
    let mut overflowed: Vec<HwConfig> = Vec::new();
    let mut best = None;
    for (i, candidate) in candidates.iter_mut().enumerate() {
        let hw = candidate.hw.clone();
        let shape = label(&hw);
        if best.is_some() {
            candidate.status = "not synthesized: a faster one fits".into();
            continue;
        }
        if let Some(smaller) = overflowed.iter().find(|o| at_least_as_large(&hw, o)) {
            candidate.status = format!("skipped: at least as large as {}, which does not fit", label(smaller));
            continue;
        }
        if !args.json {
            eprintln!(
                "synthesizing {shape} ({:.1} images/s predicted) ...",
                candidate.predicted_images_per_second
            );
        }
        let request = SynthRequest {
            board,
            hw: &hw,
            target_mhz,
            baud: DEFAULT_BAUD,
            seed: args.seed,
        };
        let out = args.out.join(&shape);
        let (report, entry) = synthesize_board(&request, &cache_root(), &out)?;
        let cycles = candidate.cycles_per_image;
        let link = candidate.link;
        candidate.status = match (report.fits, report.meets_timing()) {
            (false, _) => {
                overflowed.push(hw.clone());
                "does not fit".into()
            }
            (true, Some(false)) => "misses timing".into(),
            (true, _) => {
                best = Some(i);
                "chosen".into()
            }
        };
        candidate.synth = Some(summarize(
            &report,
            &out,
            Some((cycles, link)),
            entry == verilator_sys::Entry::Found,
        ));
    }
    Ok(best)
}

fn print_table(report: &FitReport) {
    println!(
        "{} at {} MHz, model {}",
        report.board,
        report.target_mhz,
        report.model.display()
    );
    println!(
        "{:>10} {:>12} {:>10} {:>8} {:>6} {:>10}  status",
        "array", "cycles/img", "images/s", "LUT", "DSP", "fmax MHz"
    );
    for c in &report.candidates {
        let s = c.synth.as_ref();
        let num = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
        println!(
            "{:>10} {:>12} {:>10.2} {:>8} {:>6} {:>10}  {}",
            label(&c.hw),
            c.cycles_per_image,
            c.predicted_images_per_second,
            num(s.map(|s| s.lut)),
            num(s.map(|s| s.dsp)),
            s.and_then(|s| s.fmax_mhz).map_or("-".into(), |f| format!("{f:.2}")),
            c.status
        );
    }
    match report.best {
        Some(i) => println!(
            "best: {} at {:.2} images/s",
            label(&report.candidates[i].hw),
            report.images_per_second.unwrap_or(0.0)
        ),
        None => println!("no candidate fits and meets timing"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dominance_is_every_dimension_at_least_as_large() {
        let small = HwConfig::preset(1, 1).unwrap();
        let mut big = HwConfig::preset(2, 2).unwrap();
        assert!(at_least_as_large(&big, &small));
        big.act_buffer_words = small.act_buffer_words - 1;
        assert!(!at_least_as_large(&big, &small));
        assert!(at_least_as_large(&small, &small));
    }

    #[test]
    fn shapes_parse_or_name_the_bad_one() {
        assert_eq!(parse_shape("2x4").unwrap(), (2, 4));
        assert!(parse_shape("2by4")
            .unwrap_err()
            .to_string()
            .contains("\"2by4\" is not RxC"));
    }
}
