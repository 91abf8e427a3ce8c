//! The cycle model: when each instruction starts and ends on the accelerator of
//! docs/isa.md ("Execution model" and "Timing"), cycle for cycle as the RTL controller
//! (`hdl::Controller`, docs/rtl.md) runs it: instructions are fetched through the
//! instruction port (`HwConfig::fetch_depth` requested but not yet dispatched), dispatched
//! in program order, one per cycle, into per-unit queues of `HwConfig::queue_depth`; each unit runs
//! its queue in order; an instruction starts when its unit is free and the completion
//! counts of the other units reach its waits (or, with `queue_depth` 0, one instruction
//! at a time). Verilator's cycle counts are checked against this model.

use serde::Serialize;

use crate::hw::HwConfig;
use crate::isa::{Instruction, Op, Unit};
use crate::lower::Compiled;

/// Cycles of `hdl::PostUnit` after its last output word is addressed: the accumulator
/// buffer's registered read, then the requantizer's product register before the write.
pub const POST_PIPELINE: u64 = 2;
/// Cycles of `hdl::PoolUnit` and `hdl::AddUnit` after their last buffer read is
/// addressed: the registered read, the accumulate (pool) or product (add) register,
/// then the requantizer's product register before the write.
pub const VECTOR_PIPELINE: u64 = 3;

/// Cycles a matmul of `slices` weight slices over `pixels` pixels keeps the array busy,
/// from the first weight entering to the last result leaving (docs/isa.md §5); the
/// RTL (`hdl::WsArray`) is tested to take exactly this.
pub fn matmul_cycles(rows: usize, cols: usize, slices: usize, pixels: usize) -> u64 {
    let (r, c, s, p) = (rows as u64, cols as u64, slices as u64, pixels as u64);
    2 * r + c + s.saturating_sub(1) * p.max(r) + p
}

/// Cycles between addressing a buffer and its data: FPGA block RAM registers its read.
pub const BUFFER_READ_LATENCY: u64 = 1;

/// Cycles a `matmul` instruction keeps the exec unit busy: the array's time plus the
/// first weight read (`hdl::MatmulEngine` is tested to take exactly this).
pub fn matmul_instruction_cycles(rows: usize, cols: usize, slices: usize, pixels: usize) -> u64 {
    matmul_cycles(rows, cols, slices, pixels) + BUFFER_READ_LATENCY
}

/// One `load` or `store` instruction's fields (docs/isa.md §4).
#[derive(Clone, Copy, Debug)]
pub struct Transfer {
    pub store: bool,
    /// Buffer word of row 0.
    pub addr: usize,
    /// External byte address of row 0.
    pub dram: usize,
    pub rows: usize,
    pub row_bytes: usize,
    pub dram_stride: usize,
    pub buf_stride: usize,
}

/// The input items of `x` in order: (bytes, the row's byte offset in the
/// beat if the item starts a row, last item of its row). Loads take beats,
/// stores buffer words.
fn items(x: &Transfer, bus_bytes: usize, word_bytes: usize) -> Vec<(usize, Option<usize>, bool)> {
    let mut items = vec![];
    for i in 0..x.rows {
        let offset = (x.dram + i * x.dram_stride) % bus_bytes;
        let mut left = x.row_bytes;
        while left > 0 {
            let first = left == x.row_bytes;
            let room = match (x.store, first) {
                (true, _) => word_bytes,
                (false, true) => bus_bytes - offset,
                (false, false) => bus_bytes,
            };
            let count = room.min(left);
            left -= count;
            items.push((count, first.then_some(offset), left == 0));
        }
    }
    items
}

/// Cycles the DMA engine (`hdl::Dma`) occupies its unit for `x` (the `start` cycle through the
/// last busy cycle), with a memory that takes a request every cycle and
/// returns a read `mem_latency` cycles after its request (the tests' model):
/// the engine's control replayed on byte counts only. The tests check it
/// against the engine for every instruction they run.
///
/// In closed form: row `i` has `beats_i = ceil((dram_i % bus_bytes +
/// row_bytes) / bus_bytes)` beats (one more than `ceil(row_bytes /
/// bus_bytes)` when the unaligned row straddles one more beat boundary) and
/// `words = ceil(row_bytes / word_bytes)` buffer words; the buffer port moves
/// one word a cycle and the bus one beat. A load takes `mem_latency + 2 +
/// sum_i (max(beats_i, words) + b_i)`, a store `3 + sum_i (max(beats_i,
/// words) + b_i)`, `b_i` in {0, 1}: 1 when the row's last input item leaves
/// more than one output item to emit (the queue holds one row, so the next
/// row waits a cycle). Writes are posted: a store never waits for the
/// memory latency. Nothing to move (`rows * row_bytes == 0`): 2 cycles.
pub fn transfer_cycles(x: &Transfer, bus_bytes: usize, word_bytes: usize, mem_latency: usize) -> usize {
    if x.rows * x.row_bytes == 0 {
        return 2;
    }
    let items = items(x, bus_bytes, word_bytes);
    let out = if x.store { bus_bytes } else { word_bytes };
    let (mut cnt, mut tail, mut next) = (0, false, 0);
    for t in 1.. {
        let emit = cnt >= out || (tail && cnt > 0);
        let flush = emit && tail && cnt <= out;
        if next == items.len() && (cnt == 0 || flush) {
            return t + 1;
        }
        let base = if flush {
            0
        } else if emit {
            cnt - out
        } else {
            cnt
        };
        // Loads: beat j is requested in cycle 1 + j; stores: words from cycle 2.
        let arrived = if x.store { t >= 2 } else { t >= 1 + mem_latency + next };
        cnt = base;
        tail &= !flush;
        if next < items.len() && base < out && (!tail || flush) && arrived {
            let (count, first, last) = items[next];
            let pad = if x.store { first.unwrap_or(0) } else { 0 };
            (cnt, tail, next) = (base + pad + count, last, next + 1);
        }
    }
    unreachable!()
}

/// Bus beats (external-memory requests) of a `load` or `store`, 0 for other
/// instructions: row `i` takes `ceil((dram_i % bus_bytes + row_bytes) /
/// bus_bytes)` beats (see [`transfer_cycles`]); what a memory behind the
/// accelerator's read or write channel serves.
pub fn transfer_beats(op: &Op, bus_bytes: usize) -> u64 {
    let (dram, rows, row_bytes, dram_stride) = match *op {
        Op::Load {
            dram,
            rows,
            row_bytes,
            dram_stride,
            ..
        }
        | Op::Store {
            dram,
            rows,
            row_bytes,
            dram_stride,
            ..
        } => (dram as usize, rows as usize, row_bytes as usize, dram_stride as usize),
        _ => return 0,
    };
    if row_bytes == 0 {
        return 0;
    }
    (0..rows)
        .map(|i| ((dram + i * dram_stride) % bus_bytes + row_bytes).div_ceil(bus_bytes) as u64)
        .sum()
}

/// Cycles one instruction keeps its unit busy.
pub fn cost(hw: &HwConfig, op: &Op) -> u64 {
    let transfer = |store: bool, word: usize, dram: u32, rows: u16, row_bytes: u32, dram_stride: u32| {
        let t = Transfer {
            store,
            addr: 0,
            dram: dram as usize,
            rows: rows as usize,
            row_bytes: row_bytes as usize,
            dram_stride: dram_stride as usize,
            buf_stride: 0,
        };
        transfer_cycles(&t, hw.bus_bytes, word, hw.mem_latency) as u64
    };
    match *op {
        Op::Load {
            buffer: b,
            dram,
            rows,
            row_bytes,
            dram_stride,
            ..
        } => {
            let word = match b {
                crate::isa::buffer::ACT => hw.rows,
                crate::isa::buffer::WGT => hw.cols,
                _ => crate::hw::PARAM_ENTRY_BYTES,
            };
            transfer(false, word, dram, rows, row_bytes, dram_stride)
        }
        Op::Store {
            dram,
            rows,
            row_bytes,
            dram_stride,
            ..
        } => transfer(true, hw.rows, dram, rows, row_bytes, dram_stride),
        // Measured on hdl::WsArray: the first slice's weights shift in (r cycles); each
        // slice but the last streams its pixels while the next slice's weights shift
        // into the shadow registers, so it costs max(pixels, r); the last slice streams
        // its pixels, and its last result leaves column c after r + c more cycles.
        Op::Matmul { slices, pixels, .. } => {
            matmul_instruction_cycles(hw.rows, hw.cols, slices as usize, pixels as usize)
        }
        // hdl::PostUnit: the `channels` parameter entries are read one per cycle (one
        // port); then one cycle per output word written: pixel p's `channels*e` bytes
        // (e = 2 when bits > 8) start `b = (p*out_stride + lane*e) % rows` bytes into a
        // word, so they touch ceil((b + channels*e) / rows) words; then POST_PIPELINE.
        Op::Post {
            pixels,
            channels,
            out_stride,
            lane,
            bits,
            ..
        } => {
            let (rows, e) = (hw.rows as u64, if bits > 8 { 2 } else { 1 });
            let bytes = channels as u64 * e;
            let words: u64 = (0..pixels as u64)
                .map(|p| ((p * out_stride as u64 + lane as u64 * e) % rows + bytes).div_ceil(rows))
                .sum();
            channels as u64 + words + POST_PIPELINE
        }
        // hdl::PoolUnit: one activation word read per cycle, every window of every
        // output word (pixel, group) in turn; then VECTOR_PIPELINE.
        Op::Pool {
            out_h,
            out_w,
            groups,
            kernel_h,
            kernel_w,
            ..
        } => out_h as u64 * out_w as u64 * groups as u64 * kernel_h as u64 * kernel_w as u64 + VECTOR_PIPELINE,
        // hdl::AddUnit: the two input words of each output word are read in two cycles
        // (one read port); then VECTOR_PIPELINE.
        Op::Add { words, .. } => 2 * words as u64 + VECTOR_PIPELINE,
        Op::End {} => 1,
    }
}

/// Start and end cycle of every instruction.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub start: Vec<u64>,
    pub end: Vec<u64>,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("deadlock: instruction {index} ({mnemonic}) waits for {waits} {unit} completions, but only {available} {unit} instructions precede it")]
pub struct Deadlock {
    pub index: usize,
    pub mnemonic: &'static str,
    pub unit: &'static str,
    pub waits: u32,
    pub available: u32,
}

fn unit_index(u: Unit) -> usize {
    u as usize
}

/// Schedule `program` on `hw`. Cycle 0 is the host's `start` cycle; `total` is the
/// cycle in which the accelerator raises `done` (its `cycles` counter then reads
/// `total`). The rules are the RTL controller's (`hdl::Controller`):
///
/// - fetch: request `i` is issued in cycle `t_i` (valid from `t_i + 1`), one per
///   cycle, and only while fewer than `fetch_depth` requested instructions wait for
///   dispatch; its response arrives `mem_latency` cycles after the request was taken
///   and is at the head of the fetch buffer one cycle later;
/// - dispatch: one instruction per cycle in program order, once it is at the head and
///   its unit's queue (`queue_depth` entries, the running instruction included) has a
///   free slot (a slot frees in the cycle after its instruction completes); it can
///   start from the next cycle;
/// - start: when the unit's previous instruction has completed and the other units'
///   completion counts reach the waits; an instruction `cost`s cycles from its start
///   cycle through its `done` cycle, and completes (counts) from the cycle after;
/// - `done`: in the cycle after `end` when every unit is idle and every fetched
///   response has arrived (requests issued before `end` was dispatched keep coming).
///
/// With `queue_depth` 0 (serial: no unit queues) the fetch buffer's head is the one
/// running instruction instead: it starts in the cycle it is at the head and every unit
/// is idle (so its waits are met by construction and not read), and leaves the buffer
/// at its `done`; see [`schedule_serial`].
pub fn schedule(hw: &HwConfig, program: &[Instruction]) -> Result<Schedule, Deadlock> {
    if hw.is_serial() {
        return Ok(schedule_serial(hw, program));
    }
    let n = program.len();
    let latency = hw.mem_latency as u64;
    let (mut start, mut end) = (vec![0u64; n], vec![0u64; n]);
    let mut dispatch = vec![0u64; n];
    let mut issue = vec![0u64; n];
    // End times of each unit's instructions in order, and program indices per unit.
    let mut unit_ends: [Vec<u64>; 3] = Default::default();
    let mut unit_members: [Vec<usize>; 3] = Default::default();
    for (i, ins) in program.iter().enumerate() {
        issue[i] = issue_cycle(&issue, &dispatch, i, hw.fetch_depth);
        let u = unit_index(ins.op.unit());
        let arrived = issue[i] + latency + 2;
        let mut d = arrived.max(if i > 0 { dispatch[i - 1] + 1 } else { 0 });
        if unit_members[u].len() >= hw.queue_depth {
            let blocker = unit_members[u][unit_members[u].len() - hw.queue_depth];
            d = d.max(end[blocker]);
        }
        dispatch[i] = d;
        let mut ready = (d + 1).max(unit_ends[u].last().copied().unwrap_or(0));
        for other in Unit::ALL {
            let need = ins.waits.get(other) as usize;
            if need == 0 {
                continue;
            }
            let done = &unit_ends[unit_index(other)];
            if need > done.len() {
                return Err(Deadlock {
                    index: i,
                    mnemonic: ins.op.mnemonic(),
                    unit: other.name(),
                    waits: need as u32,
                    available: done.len() as u32,
                });
            }
            ready = ready.max(done[need - 1]);
        }
        start[i] = ready;
        end[i] = ready + cost(hw, &ins.op);
        unit_ends[u].push(end[i]);
        unit_members[u].push(i);
    }
    let total = done_cycle(hw, &end, issue, &dispatch);
    Ok(Schedule { start, end, total })
}

/// [`schedule`] of the serial controller (`queue_depth` 0): instruction `i` starts once
/// its response is at the head of the fetch buffer and instruction `i - 1` has
/// completed; it leaves the buffer (its "dispatch", which frees a fetch slot) in its
/// last cycle, where its unit raises `done` (`end`, which costs one cycle, clears the
/// buffer in its start cycle).
fn schedule_serial(hw: &HwConfig, program: &[Instruction]) -> Schedule {
    let n = program.len();
    let latency = hw.mem_latency as u64;
    let (mut start, mut end) = (vec![0u64; n], vec![0u64; n]);
    let mut dispatch = vec![0u64; n];
    let mut issue = vec![0u64; n];
    for (i, ins) in program.iter().enumerate() {
        issue[i] = issue_cycle(&issue, &dispatch, i, hw.fetch_depth);
        let arrived = issue[i] + latency + 2;
        start[i] = arrived.max(if i > 0 { end[i - 1] } else { 0 });
        end[i] = start[i] + cost(hw, &ins.op);
        dispatch[i] = end[i] - 1;
    }
    let total = done_cycle(hw, &end, issue, &dispatch);
    Schedule { start, end, total }
}

/// The cycle of `done`: after the last instruction has ended and the requests issued
/// past the program before `end` was dispatched (the fetcher stops issuing from the
/// cycle after) have returned.
fn done_cycle(hw: &HwConfig, end: &[u64], mut issue: Vec<u64>, dispatch: &[u64]) -> u64 {
    let n = end.len();
    let mut total = end.iter().copied().max().unwrap_or(0);
    if let Some(&last_dispatch) = dispatch.last() {
        for i in n..n + hw.fetch_depth {
            issue.push(issue_cycle(&issue, dispatch, i, hw.fetch_depth));
            if issue[i] > last_dispatch {
                break;
            }
            total = total.max(issue[i] + hw.mem_latency as u64 + 2);
        }
    }
    total
}

/// The cycle in which the fetcher issues request `i`: one request per cycle, and at most
/// `fetch_depth` requested instructions not yet dispatched (dispatches of instructions
/// past the program never happen, so those requests only wait for earlier ones).
fn issue_cycle(issue: &[u64], dispatch: &[u64], i: usize, fetch_depth: usize) -> u64 {
    let mut t = if i > 0 { issue[i - 1] + 1 } else { 0 };
    if i >= fetch_depth {
        t = t.max(dispatch[i - fetch_depth] + 1);
    }
    t
}

/// Per-layer figures of the cycle model.
#[derive(Clone, Debug, Serialize)]
pub struct LayerCycles {
    pub name: String,
    pub kind: &'static str,
    pub macs: u64,
    /// Cycles from the end of the previous layer's last instruction to the end of this one's.
    pub cycles: u64,
    /// Cycles the exec unit spends in this layer's matmuls.
    pub matmul_cycles: u64,
    pub utilization: f64,
    pub dram_bytes: u64,
}

/// The cycle model of a compiled model.
#[derive(Clone, Debug, Serialize)]
pub struct CycleReport {
    pub layers: Vec<LayerCycles>,
    pub total_cycles: u64,
    pub macs: u64,
    pub utilization: f64,
    pub dram_bytes: u64,
}

fn dram_bytes(op: &Op) -> u64 {
    match *op {
        Op::Load { rows, row_bytes, .. } | Op::Store { rows, row_bytes, .. } => rows as u64 * row_bytes as u64,
        _ => 0,
    }
}

/// Per-layer cycles from per-instruction end cycles (the cycle model's `Schedule::end`,
/// or what the RTL measured): a layer ends when the last of its instructions ends
/// (never before the previous layer), and its cycles run from the previous layer's end.
pub fn layer_cycles(compiled: &Compiled, instruction_end: &[u64]) -> Vec<u64> {
    let mut previous_end = 0u64;
    compiled
        .layer_instructions
        .iter()
        .map(|range| {
            let end = range
                .clone()
                .map(|i| instruction_end[i])
                .max()
                .unwrap_or(previous_end)
                .max(previous_end);
            let cycles = end - previous_end;
            previous_end = end;
            cycles
        })
        .collect()
}

pub fn report(model: &crate::ir::Model, compiled: &Compiled) -> Result<CycleReport, Deadlock> {
    let hw = &compiled.hw;
    let s = schedule(hw, &compiled.program)?;
    let peak = hw.peak_macs_per_cycle() as f64;
    let per_layer = layer_cycles(compiled, &s.end);
    let mut layers = Vec::new();
    for ((layer, range), &cycles) in model.layers.iter().zip(&compiled.layer_instructions).zip(&per_layer) {
        let ops = &compiled.program[range.clone()];
        let macs = layer.macs();
        layers.push(LayerCycles {
            name: layer.name.clone(),
            kind: layer.op.kind(),
            macs,
            cycles,
            matmul_cycles: ops
                .iter()
                .filter(|i| matches!(i.op, Op::Matmul { .. }))
                .map(|i| cost(hw, &i.op))
                .sum(),
            utilization: if cycles == 0 {
                0.0
            } else {
                macs as f64 / (peak * cycles as f64)
            },
            dram_bytes: ops.iter().map(|i| dram_bytes(&i.op)).sum(),
        });
    }
    let macs = model.macs();
    Ok(CycleReport {
        total_cycles: s.total,
        macs,
        utilization: macs as f64 / (peak * s.total.max(1) as f64),
        dram_bytes: compiled.program.iter().map(|i| dram_bytes(&i.op)).sum(),
        layers,
    })
}
