//! The co-simulation harness: a compiled model ([`Compiled`]) run on the Verilated
//! accelerator (`hdl::Accelerator`, ports as in docs/rtl.md) against the external
//! memory model [`Memory`].
//!
//! An image is placed in memory exactly as `compiler::functional::run_image` places
//! it; the harness pulses `start`, clocks the design until `done`, reads `cycles` and
//! the logits. Each run starts from a freshly constructed model (cheap: the library is
//! loaded once per process), so a run's result never depends on an earlier image.
//!
//! One cycle is the sequence of [`crate::memory`]'s module docs: drive the memory's
//! outputs, settle, sample the accelerator's outputs and apply the handshakes, clock
//! edge. Inputs are written only when they change. Without a waveform the harness
//! drives the clock itself, so the clock-low evaluation is also the settling one: two
//! evaluations and a few port reads a cycle. Port ids are resolved once per design.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use compiler::backend::{Backend, BackendError, Inference};
use compiler::hw::MAX_BUS_BYTES;
use compiler::isa::{self, Unit, INSTRUCTION_BYTES};
use compiler::lower::layout::{unpack_vector, Region};
use compiler::lower::Compiled;
use compiler::Model;
use rayon::prelude::*;

use crate::memory::{read_queue_capacity, Memory, MemoryStats};
use crate::model::{PortId, VerilatedModel};
use crate::{build_model, BuildOptions, ModelBuild, SimError};

/// How to build and run the accelerator.
#[derive(Debug, Clone, Default)]
pub struct RtlOptions {
    /// Give up after this many clock cycles per image; `None`: [`default_timeout`].
    pub timeout_cycles: Option<u64>,
    /// Record every instruction's end cycle ([`RunResult::instruction_end`]) from the
    /// `retired_*` counters (four more port reads a cycle).
    pub trace_instructions: bool,
    /// Write a VCD waveform of the first image run to this file (the design is built
    /// with tracing, a separate cache entry).
    pub vcd: Option<PathBuf>,
    /// Verilator build options (the cache directory); `trace` is set from `vcd`.
    pub build: BuildOptions,
}

/// One image on the RTL.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub logits: Vec<i32>,
    /// The accelerator's `cycles` output at `done`.
    pub cycles: u64,
    /// Clock cycles simulated, `start` through `done`.
    pub ticks: u64,
    /// For each program instruction, the `cycles` value in the first cycle its unit's
    /// `retired_*` count included it (with [`RtlOptions::trace_instructions`]).
    pub instruction_end: Option<Vec<u64>>,
    /// External memory after the run (for [`first_mismatch`]).
    pub memory: Vec<u8>,
    pub memory_stats: MemoryStats,
    /// Wall time of the simulation loop.
    pub seconds: f64,
}

/// How the design was obtained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildInfo {
    /// Wall time of generating the Verilog ([`Rtl::new`]; 0 when it was given).
    pub generate_seconds: f64,
    /// Wall time of building the Verilated library (or finding it in the cache) and
    /// loading it.
    pub seconds: f64,
    /// The library came from the cache (neither Verilator nor g++ ran).
    pub from_cache: bool,
}

/// A vector port: byte (or bit) `k` is `name$k`, or bit field `k` of one packed port.
#[derive(Debug, Clone)]
enum Lanes {
    Split(Vec<PortId>),
    Packed { port: PortId, lane_bits: u32, count: usize },
}

/// The top level's ports (docs/rtl.md), resolved once.
#[derive(Debug, Clone)]
struct Ports {
    clock: PortId,
    start: PortId,
    done: PortId,
    busy: PortId,
    cycles: PortId,
    status: PortId,
    retired: [PortId; 3],
    ins_req_valid: PortId,
    ins_req_ready: PortId,
    ins_req_index: PortId,
    ins_resp_valid: PortId,
    ins_resp_ready: PortId,
    ins_resp_data: Lanes,
    rd_req_valid: PortId,
    rd_req_ready: PortId,
    rd_req_addr: PortId,
    rd_resp_valid: PortId,
    rd_resp_ready: PortId,
    rd_resp_data: Lanes,
    wr_req_valid: PortId,
    wr_req_ready: PortId,
    wr_req_addr: PortId,
    wr_req_data: Lanes,
    wr_req_strobe: Lanes,
}

/// `name$0 .. name$(count-1)` of `lane_bits` bits each, or one port `name` of
/// `count * lane_bits` bits.
fn lanes(model: &VerilatedModel, name: &str, count: usize, lane_bits: u32) -> Result<Lanes, SimError> {
    let width = |name: &str| model.ports().iter().find(|p| p.name == name).map(|p| p.width);
    let shape_error = |found: String| SimError::PortShape {
        name: name.to_string(),
        expected: format!("{count} lanes of {lane_bits} bits"),
        found,
    };
    let split: Vec<String> = (0..)
        .map(|k| format!("{name}${k}"))
        .take_while(|lane| width(lane).is_some())
        .collect();
    if !split.is_empty() {
        if split.len() != count || split.iter().any(|lane| width(lane) != Some(lane_bits)) {
            let lane_width = width(&split[0]).unwrap_or(0);
            return Err(shape_error(format!("{} lanes of {lane_width} bits", split.len())));
        }
        let ids = split.iter().map(|lane| model.port(lane)).collect::<Result<_, _>>()?;
        return Ok(Lanes::Split(ids));
    }
    let port = model.port(name)?;
    match width(name) {
        Some(w) if w as usize == count * lane_bits as usize => Ok(Lanes::Packed { port, lane_bits, count }),
        w => Err(shape_error(format!("one {}-bit port", w.unwrap_or(0)))),
    }
}

impl Ports {
    fn resolve(model: &VerilatedModel, bus_bytes: usize) -> Result<Ports, SimError> {
        let p = |name: &str| model.port(name);
        Ok(Ports {
            clock: p("clock")?,
            start: p("start")?,
            done: p("done")?,
            busy: p("busy")?,
            cycles: p("cycles")?,
            status: p("status")?,
            retired: [p("retired_load")?, p("retired_exec")?, p("retired_store")?],
            ins_req_valid: p("ins_req_valid")?,
            ins_req_ready: p("ins_req_ready")?,
            ins_req_index: p("ins_req_index")?,
            ins_resp_valid: p("ins_resp_valid")?,
            ins_resp_ready: p("ins_resp_ready")?,
            ins_resp_data: lanes(model, "ins_resp_data", INSTRUCTION_BYTES, 8)?,
            rd_req_valid: p("rd_req_valid")?,
            rd_req_ready: p("rd_req_ready")?,
            rd_req_addr: p("rd_req_addr")?,
            rd_resp_valid: p("rd_resp_valid")?,
            rd_resp_ready: p("rd_resp_ready")?,
            rd_resp_data: lanes(model, "rd_resp_data", bus_bytes, 8)?,
            wr_req_valid: p("wr_req_valid")?,
            wr_req_ready: p("wr_req_ready")?,
            wr_req_addr: p("wr_req_addr")?,
            wr_req_data: lanes(model, "wr_req_data", bus_bytes, 8)?,
            wr_req_strobe: lanes(model, "wr_req_strobe", bus_bytes, 1)?,
        })
    }
}

/// An input with the value last written to it: unchanged values are not rewritten,
/// and the harness knows whether the design must settle again.
struct Input {
    id: PortId,
    /// Every input of a freshly loaded design is 0 (`VerilatedModel::load`).
    value: u64,
}

impl Input {
    fn new(id: PortId) -> Input {
        Input { id, value: 0 }
    }
}

/// The inputs a run drives.
struct Inputs {
    start: Input,
    wr_req_ready: Input,
    rd_req_ready: Input,
    rd_resp_valid: Input,
    rd_resp_data: Vec<Input>,
    ins_req_ready: Input,
    ins_resp_valid: Input,
    ins_resp_data: Vec<Input>,
}

/// One [`Input`] per lane, or a single packed one.
fn lane_inputs(lanes: &Lanes) -> Vec<Input> {
    match lanes {
        Lanes::Split(ids) => ids.iter().map(|&id| Input::new(id)).collect(),
        Lanes::Packed { port, .. } => vec![Input::new(*port)],
    }
}

impl Inputs {
    fn new(p: &Ports) -> Inputs {
        Inputs {
            start: Input::new(p.start),
            wr_req_ready: Input::new(p.wr_req_ready),
            rd_req_ready: Input::new(p.rd_req_ready),
            rd_resp_valid: Input::new(p.rd_resp_valid),
            rd_resp_data: lane_inputs(&p.rd_resp_data),
            ins_req_ready: Input::new(p.ins_req_ready),
            ins_resp_valid: Input::new(p.ins_resp_valid),
            ins_resp_data: lane_inputs(&p.ins_resp_data),
        }
    }
}

fn drive(model: &mut VerilatedModel, input: &mut Input, value: u64, changed: &mut bool) -> Result<(), SimError> {
    if input.value != value {
        input.value = value;
        model.set(input.id, value)?;
        *changed = true;
    }
    Ok(())
}

/// Drives `bytes` onto byte lanes (one input each, or one packed input).
fn drive_bytes(
    model: &mut VerilatedModel,
    lanes: &mut [Input],
    bytes: &[u8],
    changed: &mut bool,
) -> Result<(), SimError> {
    if let [packed] = lanes {
        let value = bytes.iter().rev().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
        return drive(model, packed, value, changed);
    }
    for (input, &b) in lanes.iter_mut().zip(bytes) {
        drive(model, input, u64::from(b), changed)?;
    }
    Ok(())
}

/// Reads `lanes` into `out` (one element per lane).
fn read_lanes(model: &VerilatedModel, lanes: &Lanes, out: &mut [u64]) -> Result<(), SimError> {
    match lanes {
        Lanes::Split(ids) => {
            for (slot, &id) in out.iter_mut().zip(ids) {
                *slot = model.get(id)?;
            }
        }
        Lanes::Packed {
            port, lane_bits, count, ..
        } => {
            let value = model.get(*port)?;
            let mask = (1u64 << lane_bits) - 1;
            for (k, slot) in out.iter_mut().enumerate().take(*count) {
                *slot = value >> (k as u32 * lane_bits) & mask;
            }
        }
    }
    Ok(())
}

/// Generous default timeout: twice the cycle model's prediction plus 100,000 cycles
/// (10,000,000 when the cycle model finds the program deadlocked).
pub fn default_timeout(compiled: &Compiled) -> u64 {
    match compiler::cycles::schedule(&compiled.hw, &compiled.program) {
        Ok(s) => 2 * s.total + 100_000,
        Err(_) => 10_000_000,
    }
}

/// A compiled model on the Verilated accelerator.
pub struct Rtl {
    compiled: Compiled,
    program: Vec<u8>,
    build: ModelBuild,
    build_info: BuildInfo,
    ports: Ports,
    timeout: u64,
    read_capacity: usize,
    /// Program indices of each unit's instructions, in order.
    unit_members: [Vec<usize>; 3],
    trace_instructions: bool,
    vcd: Option<PathBuf>,
    vcd_written: AtomicBool,
}

impl Rtl {
    /// Builds (or finds in the cache) the accelerator for `compiled.hw`
    /// (`hdl::accelerator_verilog`) and prepares to run `compiled` on it.
    pub fn new(compiled: Compiled, options: RtlOptions) -> Result<Rtl, SimError> {
        let started = Instant::now();
        let verilog = hdl::accelerator_verilog(&compiled.hw);
        let generate_seconds = started.elapsed().as_secs_f64();
        let mut rtl = Rtl::from_verilog(compiled, &verilog, options)?;
        rtl.build_info.generate_seconds = generate_seconds;
        Ok(rtl)
    }

    /// Like [`Rtl::new`], with the accelerator's Verilog given (top module `top`,
    /// ports as in docs/rtl.md).
    pub fn from_verilog(compiled: Compiled, verilog: &str, options: RtlOptions) -> Result<Rtl, SimError> {
        let started = Instant::now();
        let build_options = BuildOptions {
            trace: options.vcd.is_some(),
            ..options.build.clone()
        };
        let build = build_model(verilog, "top", &build_options)?;
        let probe = VerilatedModel::load(&build)?;
        let build_info = BuildInfo {
            generate_seconds: 0.0,
            seconds: started.elapsed().as_secs_f64(),
            from_cache: build.stats.from_cache,
        };
        let ports = Ports::resolve(&probe, compiled.hw.bus_bytes)?;
        let mut unit_members: [Vec<usize>; 3] = Default::default();
        for (i, ins) in compiled.program.iter().enumerate() {
            unit_members[ins.op.unit() as usize].push(i);
        }
        Ok(Rtl {
            program: isa::encode(&compiled.program),
            read_capacity: read_queue_capacity(&compiled.program, compiled.hw.bus_bytes, compiled.hw.mem_latency),
            timeout: options.timeout_cycles.unwrap_or_else(|| default_timeout(&compiled)),
            compiled,
            build,
            build_info,
            ports,
            unit_members,
            trace_instructions: options.trace_instructions,
            vcd: options.vcd,
            vcd_written: AtomicBool::new(false),
        })
    }

    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    /// The Verilated library (paths, cache key, build statistics).
    pub fn build(&self) -> &ModelBuild {
        &self.build
    }

    pub fn build_info(&self) -> BuildInfo {
        self.build_info
    }

    pub fn timeout_cycles(&self) -> u64 {
        self.timeout
    }

    /// Runs one image (`C*H*W` u8 codes) with the options given at construction:
    /// the first call writes the VCD file, if one was asked for.
    pub fn run_image(&self, image: &[u8]) -> Result<RunResult, SimError> {
        let vcd = match &self.vcd {
            Some(path) if !self.vcd_written.swap(true, Ordering::SeqCst) => Some(path.as_path()),
            _ => None,
        };
        self.run_image_with(image, self.trace_instructions, vcd)
    }

    /// Runs one image, recording instruction end cycles when `trace_instructions`
    /// and a waveform into `vcd` (which needs [`RtlOptions::vcd`] at construction,
    /// for a build with tracing).
    pub fn run_image_with(
        &self,
        image: &[u8],
        trace_instructions: bool,
        vcd: Option<&Path>,
    ) -> Result<RunResult, SimError> {
        let expected = self.compiled.layout.image_len();
        if image.len() != expected {
            return Err(SimError::ImageLength {
                len: image.len(),
                expected,
            });
        }
        let hw = &self.compiled.hw;
        let memory = Memory::new(
            self.compiled.memory_with_input(image),
            self.program.clone(),
            hw.bus_bytes,
            hw.mem_latency,
            self.read_capacity,
        );
        let mut model = VerilatedModel::load(&self.build)?;
        if let Some(path) = vcd {
            model.open_vcd(path)?;
        }
        let started = Instant::now();
        let mut run = self.simulate(&mut model, memory, trace_instructions, vcd.is_some())?;
        run.seconds = started.elapsed().as_secs_f64();
        run.logits = self.compiled.read_logits(&run.memory);
        Ok(run)
    }

    /// The cycle loop: `start` in the first cycle, then until `done`.
    ///
    /// Without a waveform, the clock's half cycles are driven here: the clock-low
    /// evaluation is also the settling one (the same evaluations as
    /// [`VerilatedModel::tick`], one fewer in cycles whose inputs changed). With a
    /// waveform, `tick` advances the time and dumps both half cycles.
    fn simulate(
        &self,
        model: &mut VerilatedModel,
        mut mem: Memory,
        trace: bool,
        waveform: bool,
    ) -> Result<RunResult, SimError> {
        let p = &self.ports;
        let bus = mem.bus_bytes();
        let mut i = Inputs::new(p);
        let mut changed = false;
        drive(model, &mut i.wr_req_ready, 1, &mut changed)?;
        drive(model, &mut i.start, 1, &mut changed)?;
        let mut retired = [0usize; 3];
        let mut instruction_end = trace.then(|| vec![0u64; self.compiled.program.len()]);
        let mut lanes = [0u64; MAX_BUS_BYTES];
        let mut strobe = [0u64; MAX_BUS_BYTES];
        let mut data = [0u8; MAX_BUS_BYTES];
        for tick in 0..self.timeout {
            // 1. drive the memory's outputs for this cycle.
            if tick == 1 {
                drive(model, &mut i.start, 0, &mut changed)?;
            }
            let rd_ready = mem.rd_req_ready();
            drive(model, &mut i.rd_req_ready, u64::from(rd_ready), &mut changed)?;
            let rd_resp = match mem.rd_resp() {
                Some(beat) => {
                    drive_bytes(model, &mut i.rd_resp_data, beat, &mut changed)?;
                    true
                }
                None => false,
            };
            drive(model, &mut i.rd_resp_valid, u64::from(rd_resp), &mut changed)?;
            let ins_ready = mem.ins_req_ready();
            drive(model, &mut i.ins_req_ready, u64::from(ins_ready), &mut changed)?;
            let ins_resp = mem.ins_resp();
            if let Some((_, bytes)) = &ins_resp {
                drive_bytes(model, &mut i.ins_resp_data, bytes, &mut changed)?;
            }
            drive(
                model,
                &mut i.ins_resp_valid,
                u64::from(ins_resp.is_some()),
                &mut changed,
            )?;
            // 2. settle, only if an input changed since the last evaluation.
            if !waveform {
                model.set(p.clock, 0)?;
                model.eval();
                changed = false;
            } else if std::mem::take(&mut changed) {
                model.eval();
            }
            // 3. sample the accelerator's outputs; apply the handshakes.
            let done = model.get(p.done)? != 0;
            if model.get(p.rd_req_valid)? != 0 {
                if rd_ready {
                    mem.accept_read(model.get(p.rd_req_addr)?);
                } else {
                    mem.refuse_read();
                }
            }
            if rd_resp && model.get(p.rd_resp_ready)? != 0 {
                mem.pop_read();
            }
            if model.get(p.wr_req_valid)? != 0 {
                read_lanes(model, &p.wr_req_data, &mut lanes[..bus])?;
                read_lanes(model, &p.wr_req_strobe, &mut strobe[..bus])?;
                for (byte, &lane) in data.iter_mut().zip(&lanes[..bus]) {
                    *byte = lane as u8;
                }
                let mask = strobe[..bus]
                    .iter()
                    .enumerate()
                    .fold(0u64, |m, (k, &s)| m | u64::from(s != 0) << k);
                mem.write(model.get(p.wr_req_addr)?, &data[..bus], mask);
            }
            if ins_ready && model.get(p.ins_req_valid)? != 0 {
                mem.accept_fetch(model.get(p.ins_req_index)? as u32);
            }
            if ins_resp.is_some() && model.get(p.ins_resp_ready)? != 0 {
                mem.pop_fetch();
            }
            if let Some(ends) = instruction_end.as_mut() {
                self.record_retirements(model, &mut retired, ends)?;
            }
            let cycles = if done { Some(model.get(p.cycles)?) } else { None };
            // 4. the clock edge.
            if waveform {
                model.tick(p.clock)?;
            } else {
                model.set(p.clock, 1)?;
                model.eval();
            }
            mem.advance();
            if let Some(cycles) = cycles {
                if let Some(fault) = mem.fault() {
                    return Err(SimError::WriteOutside {
                        addr: fault.addr,
                        cycle: fault.cycle,
                        size: fault.size,
                    });
                }
                return Ok(RunResult {
                    logits: Vec::new(),
                    cycles,
                    ticks: tick + 1,
                    instruction_end,
                    memory_stats: mem.stats(),
                    memory: mem.into_bytes(),
                    seconds: 0.0,
                });
            }
        }
        Err(SimError::Timeout {
            timeout: self.timeout,
            cycles: model.get(p.cycles)?,
            status: model.get(p.status)?,
            busy: model.get(p.busy)? != 0,
            retired: p.retired.map(|id| model.get(id).unwrap_or(0)),
            totals: self.unit_members.each_ref().map(|m| m.len() as u64),
        })
    }

    /// Assigns the current `cycles` value as the end of every instruction that a
    /// `retired_*` count newly includes.
    fn record_retirements(
        &self,
        model: &VerilatedModel,
        retired: &mut [usize; 3],
        ends: &mut [u64],
    ) -> Result<(), SimError> {
        let mut now = None;
        for unit in [Unit::Load, Unit::Exec, Unit::Store] {
            let u = unit as usize;
            let count = model.get(self.ports.retired[u])? as usize;
            let members = &self.unit_members[u];
            while retired[u] < count {
                let cycles = match now {
                    Some(c) => c,
                    None => *now.insert(model.get(self.ports.cycles)?),
                };
                if let Some(&i) = members.get(retired[u]) {
                    ends[i] = cycles;
                }
                retired[u] += 1;
            }
        }
        Ok(())
    }
}

impl Backend for Rtl {
    fn name(&self) -> &str {
        "rtl"
    }

    fn input_len(&self) -> usize {
        self.compiled.layout.image_len()
    }

    /// Images run in parallel on the rayon thread pool, one model each.
    fn infer(&self, images: &[u8]) -> Result<Inference, BackendError> {
        let runs = self
            .split_images(images)?
            .par_iter()
            .map(|image| self.run_image(image))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BackendError::Failed {
                backend: "rtl".into(),
                message: e.to_string(),
            })?;
        Ok(Inference {
            cycles: Some(runs.iter().map(|r| r.cycles).collect()),
            logits: runs.into_iter().map(|r| r.logits).collect(),
        })
    }
}

/// Layer `slot - 1`'s output (slot 0: the input region) as stored in `memory`, in its
/// logical `[C][H][W]` order (the order of `Reference::trace`).
pub fn read_tensor(compiled: &Compiled, slot: usize, memory: &[u8]) -> Vec<i32> {
    let rows = compiled.hw.rows;
    let Region { base, geometry: g } = compiled.layout.tensors[slot];
    let bytes = &memory[base..base + g.bytes(rows)];
    if g.elem_bytes() == 2 {
        return unpack_vector(bytes, &g, rows);
    }
    let mut out = Vec::with_capacity(g.channels * g.pixels());
    for c in 0..g.channels {
        for y in 0..g.height {
            for x in 0..g.width {
                let byte = bytes[g.offset(rows, c, y, x)];
                out.push(if g.dtype.signed { byte as i8 as i32 } else { byte as i32 });
            }
        }
    }
    out
}

/// The first difference between a run's memory and the reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub layer: String,
    /// The layer's position in the model.
    pub layer_index: usize,
    /// Index into the layer's output in `[C][H][W]` order.
    pub index: usize,
    /// `[c, y, x]` of that element.
    pub position: [usize; 3],
    pub expected: i32,
    pub actual: i32,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [c, y, x] = self.position;
        write!(
            f,
            "layer {} ('{}') output {} (channel {c}, y {y}, x {x}): expected {}, got {}",
            self.layer_index, self.layer, self.index, self.expected, self.actual
        )
    }
}

/// The first layer (in model order) whose output in `memory` differs from `trace`
/// (`Reference::trace` of the same image), and its first differing element.
pub fn first_mismatch(model: &Model, compiled: &Compiled, trace: &[Vec<i32>], memory: &[u8]) -> Option<Mismatch> {
    model.layers.iter().enumerate().find_map(|(i, layer)| {
        let actual = read_tensor(compiled, i + 1, memory);
        let expected = &trace[i + 1];
        let index = actual.iter().zip(expected).position(|(a, e)| a != e)?;
        let [_, h, w] = layer.output.shape;
        Some(Mismatch {
            layer: layer.name.clone(),
            layer_index: i,
            index,
            position: [index / (h * w), index / w % h, index % w],
            expected: expected[index],
            actual: actual[index],
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use compiler::functional::Machine;
    use compiler::synthetic::{self, Precision};
    use compiler::zoo::Arch;
    use compiler::Reference;

    /// The functional model's final memory holds every layer's output as the
    /// reference computes it: what `first_mismatch` relies on. A corrupted byte is
    /// found at the right layer and position.
    #[test]
    fn functional_memory_matches_every_layer_of_the_trace() {
        let cases = [
            (
                synthetic::random_model(Arch::SmallCnn, [1, 28, 28], 10, 0.25, Precision::W8A8, 3).unwrap(),
                [1, 28, 28],
                2,
            ),
            (
                synthetic::tiny_resnet([3, 9, 9], 5, Precision::W8A8, 4).unwrap(),
                [3, 9, 9],
                4,
            ),
        ];
        for (model, input, side) in cases {
            let arch = model.name.clone();
            let hw = compiler::hw::HwConfig::preset(side, side).unwrap();
            let compiled = compiler::lower::compile(&model, &hw).unwrap();
            let image: Vec<u8> = (0..input.iter().product::<usize>())
                .map(|i| (i * 37 % 256) as u8)
                .collect();
            let mut machine = Machine::new(&hw, compiled.memory_with_input(&image));
            machine.run(&compiled.program).unwrap();
            let trace = Reference::new(model.clone()).trace(&image);
            assert_eq!(
                first_mismatch(&model, &compiled, &trace, &machine.memory),
                None,
                "{arch}"
            );

            let layer = model.layers.len() / 2;
            let region = compiled.layout.tensors[layer + 1];
            let g = region.geometry;
            let [c, y, x] = [g.channels - 1, g.height - 1, 0];
            let mut corrupt = machine.memory.clone();
            corrupt[region.base + g.offset(hw.rows, c, y, x)] ^= 0x40;
            let m = first_mismatch(&model, &compiled, &trace, &corrupt).expect("found");
            // A flatten aliases its input: the first layer sharing the region is found.
            let first_alias = (0..model.layers.len())
                .find(|&i| compiled.layout.tensors[i + 1].base == region.base)
                .unwrap();
            assert_eq!(m.layer_index, first_alias, "{arch}: {m}");
            if first_alias == layer {
                assert_eq!(m.position, [c, y, x], "{arch}: {m}");
            }
            assert_ne!(m.actual, m.expected);
        }
    }
}
