//! The whole accelerator for one `HwConfig`: the controller, the decoders, the
//! engines and the buffers, wired as docs/rtl.md describes (its "Top-level ports"
//! are this block's ports). [`accelerator_verilog`] emits it with top module `top`.
//!
//! # Sharing
//!
//! - Loads: one DMA engine for the three buffers, with words as wide as the
//!   widest (`rows`, `cols` or 8 bytes); the load queue's head selects the buffer
//!   (its word size, `Dma::cmd_word`, and which buffer's write port it drives).
//! - Exec: one engine per instruction kind; the exec queue's head selects which one
//!   starts and which one drives the shared buffer ports (activation read, output
//!   write, accumulator read).
//! - Stores: one DMA engine on the write channel and the output buffer's read port.
//! - Requantizers: one bank of `max(rows, cols)` lanes for post (its `cols` lanes),
//!   pool and add (their `rows` lanes). The exec queue runs one instruction at a time
//!   (the controller starts the next only after the running one's `done`, and the
//!   decoded head stays until then), so at most one of them uses the bank in any
//!   cycle; the head's kind selects whose operands reach it.
//! - Without the add unit (`HwConfig::add_unit = false`) the `add` instance stays in
//!   the Verilog (rust-hdl cannot subscript the lanes of an optional child), but a
//!   constant 0 keeps it from starting and from driving anything, so synthesis
//!   removes all of it; the compiler refuses models with an add layer.
//!
//! # Lint
//!
//! [`LINT_WAIVERS`] lists the Verilator warnings the accelerator's Verilog has under
//! `-Wall`, and why each is harmless. Outputs of shared engines that a role does not use (the load engine's buffer read
//! port and write flag, the store engine's buffer write port, the matmul array's edge
//! outputs, the engines' `busy`) go to signals named `unused_*`, which Verilator's UNUSED
//! lint skips by name.

use compiler::hw::{HwConfig, PARAM_ENTRY_BYTES};
use compiler::isa::INSTRUCTION_BYTES;
use rust_hdl::prelude::*;

use crate::add::AddUnit;
use crate::controller::Controller;
use crate::decode::{ExecDecode, LoadDecode, StoreDecode};
use crate::dma::Dma;
use crate::matmul::MatmulEngine;
use crate::memory::SdpRam;
use crate::pool::PoolUnit;
use crate::post::PostUnit;
use crate::requant::Requantizer;
use crate::ws_pe::{PSUM_BITS, WEIGHT_BITS};

type B32 = Bits<32>;
type B16 = Bits<16>;
type B8 = Bits<8>;

fn many<T: Default>(n: usize) -> Vec<T> {
    (0..n).map(|_| T::default()).collect()
}

/// The Verilator `-Wall` warnings of [`accelerator_verilog`], with the reason each
/// is waived (`verilator --lint-only -Wall -Wno-<rule>...`; `divqat rtl` prints the
/// command). The tests check that nothing else is reported.
pub const LINT_WAIVERS: &[(&str, &str)] = &[
    (
        "DECLFILENAME",
        "rust-hdl writes every module into one file, so file and module names cannot match",
    ),
    (
        "UNOPTFLAT",
        "rust-hdl emits one combinational always block per module and Verilator orders \
         whole blocks, so handshakes between blocks (the controller's start feeds an engine \
         whose done feeds the controller) look circular; no bit-level combinational loop \
         exists (yosys `check -assert` on the flattened design, tested)",
    ),
];

/// One accumulator bank (one column lane): an `SdpRam` with scalar ports, so that
/// the top level indexes banks with one subscript (rust-hdl evaluates only the
/// first subscript of a name).
#[derive(LogicBlock)]
pub struct AccBank {
    pub clock: Signal<In, Clock>,
    pub we: Signal<In, Bit>,
    pub waddr: Signal<In, B16>,
    pub wdata: Signal<In, Signed<PSUM_BITS>>,
    pub raddr: Signal<In, B16>,
    pub rdata: Signal<Out, Signed<PSUM_BITS>>,
    ram: SdpRam<Signed<PSUM_BITS>>,
}

impl AccBank {
    pub fn new(depth: usize) -> Self {
        Self {
            clock: Default::default(),
            we: Default::default(),
            waddr: Default::default(),
            wdata: Default::default(),
            raddr: Default::default(),
            rdata: Default::default(),
            ram: SdpRam::new(1, depth),
        }
    }
}

impl Logic for AccBank {
    #[hdl_gen]
    fn update(&mut self) {
        self.ram.clock.next = self.clock.val();
        self.ram.write_enable.next = self.we.val();
        self.ram.write_address.next = self.waddr.val();
        self.ram.write_data[0].next = self.wdata.val();
        self.ram.write_lanes[0].next = true;
        self.ram.read_address.next = self.raddr.val();
        self.rdata.next = self.ram.read_data[0].val();
    }
}

/// The accelerator; see the module documentation and docs/rtl.md.
#[derive(LogicBlock)]
pub struct Accelerator {
    pub clock: Signal<In, Clock>,
    // Host.
    pub start: Signal<In, Bit>,
    pub busy: Signal<Out, Bit>,
    pub done: Signal<Out, Bit>,
    pub cycles: Signal<Out, B32>,
    pub status: Signal<Out, B8>,
    pub retired_load: Signal<Out, B32>,
    pub retired_exec: Signal<Out, B32>,
    pub retired_store: Signal<Out, B32>,
    // Instruction port.
    pub ins_req_valid: Signal<Out, Bit>,
    pub ins_req_ready: Signal<In, Bit>,
    pub ins_req_index: Signal<Out, B32>,
    pub ins_resp_valid: Signal<In, Bit>,
    pub ins_resp_ready: Signal<Out, Bit>,
    pub ins_resp_data: Vec<Signal<In, B8>>,
    // Data memory: read channel.
    pub rd_req_valid: Signal<Out, Bit>,
    pub rd_req_ready: Signal<In, Bit>,
    pub rd_req_addr: Signal<Out, B32>,
    pub rd_resp_valid: Signal<In, Bit>,
    pub rd_resp_ready: Signal<Out, Bit>,
    pub rd_resp_data: Vec<Signal<In, B8>>,
    // Data memory: write channel.
    pub wr_req_valid: Signal<Out, Bit>,
    pub wr_req_ready: Signal<In, Bit>,
    pub wr_req_addr: Signal<Out, B32>,
    pub wr_req_data: Vec<Signal<Out, B8>>,
    pub wr_req_strobe: Vec<Signal<Out, Bit>>,
    ctrl: Controller,
    load_dec: LoadDecode,
    store_dec: StoreDecode,
    exec_dec: ExecDecode,
    load_dma: Dma,
    store_dma: Dma,
    matmul: MatmulEngine,
    post: PostUnit,
    pool: PoolUnit,
    add: AddUnit,
    /// The requantizer bank shared by post, pool and add.
    rq: Vec<Requantizer>,
    /// The bank's operand selection, registered: the exec instruction's decode one
    /// cycle late (settled from an instruction's cycle 1 on, cycle 0 being `start`).
    /// Post, pool and add use the bank in their cycle 2 at the earliest, so the late
    /// select is always right, and the instruction register's decode stays off the
    /// requantizer's path (the longest on the iCE40).
    rq_for_pool: DFF<Bit>,
    rq_for_add: DFF<Bit>,
    /// Whether the add unit is there (`HwConfig::add_unit`).
    c_has_add: Constant<Bit>,
    act_buf: SdpRam<B8>,
    wgt_buf: SdpRam<B8>,
    param_buf: SdpRam<B8>,
    out_buf: SdpRam<B8>,
    acc_banks: Vec<AccBank>,
    // Load selection (the load queue head's `buffer` field).
    to_act: Signal<Local, Bit>,
    to_wgt: Signal<Local, Bit>,
    to_param: Signal<Local, Bit>,
    c_act: Constant<B8>,
    c_wgt: Constant<B8>,
    c_param: Constant<B8>,
    /// Word bytes of the activation, weight and parameter buffers.
    c_act_word: Constant<B32>,
    c_wgt_word: Constant<B32>,
    c_param_word: Constant<B32>,
    c_zero8: Constant<B8>,
    // Outputs nobody reads (see the module documentation).
    unused_busy: Vec<Signal<Local, Bit>>,
    unused_write_flag: Vec<Signal<Local, Bit>>,
    unused_load_raddr: Signal<Local, B16>,
    unused_load_req_data: Vec<Signal<Local, B8>>,
    unused_load_req_strobe: Vec<Signal<Local, Bit>>,
    unused_store_we: Signal<Local, Bit>,
    unused_store_waddr: Signal<Local, B16>,
    unused_store_wdata: Vec<Signal<Local, B8>>,
    unused_store_wlanes: Vec<Signal<Local, Bit>>,
    unused_array_act: Vec<Signal<Local, Signed<9>>>,
    unused_array_swap: Vec<Signal<Local, Bit>>,
    unused_array_wdata: Vec<Signal<Local, Signed<WEIGHT_BITS>>>,
    unused_array_wload: Vec<Signal<Local, Bit>>,
    _hw: HwConfig,
}

impl Accelerator {
    /// The accelerator for `hw` (which must be valid: `HwConfig::validate`).
    pub fn new(hw: &HwConfig) -> Self {
        let (rows, cols, bus) = (hw.rows, hw.cols, hw.bus_bytes);
        let k8 = |v: u64| Constant::new(v.into());
        Self {
            clock: Default::default(),
            start: Default::default(),
            busy: Default::default(),
            done: Default::default(),
            cycles: Default::default(),
            status: Default::default(),
            retired_load: Default::default(),
            retired_exec: Default::default(),
            retired_store: Default::default(),
            ins_req_valid: Default::default(),
            ins_req_ready: Default::default(),
            ins_req_index: Default::default(),
            ins_resp_valid: Default::default(),
            ins_resp_ready: Default::default(),
            ins_resp_data: many(INSTRUCTION_BYTES),
            rd_req_valid: Default::default(),
            rd_req_ready: Default::default(),
            rd_req_addr: Default::default(),
            rd_resp_valid: Default::default(),
            rd_resp_ready: Default::default(),
            rd_resp_data: many(bus),
            wr_req_valid: Default::default(),
            wr_req_ready: Default::default(),
            wr_req_addr: Default::default(),
            wr_req_data: many(bus),
            wr_req_strobe: many(bus),
            ctrl: Controller::new(hw.queue_depth, hw.fetch_depth),
            load_dec: Default::default(),
            store_dec: Default::default(),
            exec_dec: Default::default(),
            load_dma: Dma::new(bus, rows.max(cols).max(PARAM_ENTRY_BYTES)),
            store_dma: Dma::new(bus, rows),
            matmul: MatmulEngine::new(rows, cols),
            post: PostUnit::sharing(rows, cols),
            pool: PoolUnit::sharing(rows),
            add: AddUnit::sharing(rows),
            rq: many(rows.max(cols)),
            rq_for_pool: Default::default(),
            rq_for_add: Default::default(),
            c_has_add: Constant::new(hw.add_unit),
            act_buf: SdpRam::new(rows, hw.act_buffer_words),
            wgt_buf: SdpRam::new(cols, hw.weight_buffer_words),
            param_buf: SdpRam::new(PARAM_ENTRY_BYTES, hw.param_buffer_entries),
            out_buf: SdpRam::new(rows, hw.out_buffer_words),
            acc_banks: (0..cols).map(|_| AccBank::new(hw.acc_buffer_words)).collect(),
            to_act: Default::default(),
            to_wgt: Default::default(),
            to_param: Default::default(),
            c_act: k8(compiler::isa::buffer::ACT as u64),
            c_wgt: k8(compiler::isa::buffer::WGT as u64),
            c_param: k8(compiler::isa::buffer::PARAM as u64),
            c_act_word: Constant::new((rows as u64).into()),
            c_wgt_word: Constant::new((cols as u64).into()),
            c_param_word: Constant::new((PARAM_ENTRY_BYTES as u64).into()),
            c_zero8: k8(0),
            unused_busy: many(6),
            unused_write_flag: many(3),
            unused_load_raddr: Default::default(),
            unused_load_req_data: many(bus),
            unused_load_req_strobe: many(bus),
            unused_store_we: Default::default(),
            unused_store_waddr: Default::default(),
            unused_store_wdata: many(rows),
            unused_store_wlanes: many(rows),
            unused_array_act: many(rows),
            unused_array_swap: many(rows),
            unused_array_wdata: many(cols),
            unused_array_wload: many(cols),
            _hw: hw.clone(),
        }
    }

    pub fn hw(&self) -> &HwConfig {
        &self._hw
    }
}

impl Logic for Accelerator {
    // One long function: `#[hdl_gen]` cannot translate calls to helpers.
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, rq_for_pool, rq_for_add);
        // Clocks.
        self.ctrl.clock.next = self.clock.val();
        self.load_dma.clock.next = self.clock.val();
        self.store_dma.clock.next = self.clock.val();
        self.matmul.clock.next = self.clock.val();
        self.post.clock.next = self.clock.val();
        self.pool.clock.next = self.clock.val();
        self.add.clock.next = self.clock.val();
        self.act_buf.clock.next = self.clock.val();
        self.wgt_buf.clock.next = self.clock.val();
        self.param_buf.clock.next = self.clock.val();
        self.out_buf.clock.next = self.clock.val();
        for c in 0..self.acc_banks.len() {
            self.acc_banks[c].clock.next = self.clock.val();
        }

        // Host and instruction port: the controller's.
        self.ctrl.start.next = self.start.val();
        self.busy.next = self.ctrl.busy.val();
        self.done.next = self.ctrl.done.val();
        self.cycles.next = self.ctrl.cycles.val();
        self.status.next = self.ctrl.status.val();
        self.retired_load.next = self.ctrl.retired_load.val();
        self.retired_exec.next = self.ctrl.retired_exec.val();
        self.retired_store.next = self.ctrl.retired_store.val();
        self.ins_req_valid.next = self.ctrl.ins_req_valid.val();
        self.ctrl.ins_req_ready.next = self.ins_req_ready.val();
        self.ins_req_index.next = self.ctrl.ins_req_index.val();
        self.ctrl.ins_resp_valid.next = self.ins_resp_valid.val();
        self.ins_resp_ready.next = self.ctrl.ins_resp_ready.val();
        for k in 0..self.ins_resp_data.len() {
            self.ctrl.ins_resp_data[k].next = self.ins_resp_data[k].val();
        }
        self.load_dec.insn.next = self.ctrl.load_insn.val();
        self.store_dec.insn.next = self.ctrl.store_insn.val();
        self.exec_dec.insn.next = self.ctrl.exec_insn.val();

        // Load unit: one engine; the head's `buffer` picks the word size and the
        // buffer written.
        self.to_act.next = self.load_dec.buffer.val() == self.c_act.val();
        self.to_wgt.next = self.load_dec.buffer.val() == self.c_wgt.val();
        self.to_param.next = self.load_dec.buffer.val() == self.c_param.val();
        self.load_dma.start.next =
            self.ctrl.load_start.val() & (self.to_act.val() | self.to_wgt.val() | self.to_param.val());
        self.ctrl.load_done.next = self.load_dma.done.val();
        self.load_dma.is_store.next = false;
        self.load_dma.cmd_word.next = self.c_param_word.val();
        if self.to_act.val() {
            self.load_dma.cmd_word.next = self.c_act_word.val();
        }
        if self.to_wgt.val() {
            self.load_dma.cmd_word.next = self.c_wgt_word.val();
        }
        self.load_dma.cmd_addr.next = self.load_dec.addr.val();
        self.load_dma.cmd_dram.next = self.load_dec.dram.val();
        self.load_dma.cmd_rows.next = self.load_dec.rows.val();
        self.load_dma.cmd_row_bytes.next = self.load_dec.row_bytes.val();
        self.load_dma.cmd_dram_stride.next = self.load_dec.dram_stride.val();
        self.load_dma.cmd_buf_stride.next = self.load_dec.buf_stride.val();
        self.rd_req_valid.next = self.load_dma.mem_req_valid.val();
        self.load_dma.mem_req_ready.next = self.rd_req_ready.val();
        self.rd_req_addr.next = self.load_dma.mem_req_addr.val();
        self.load_dma.mem_resp_valid.next = self.rd_resp_valid.val();
        self.rd_resp_ready.next = self.load_dma.mem_resp_ready.val();
        for k in 0..self.rd_resp_data.len() {
            self.load_dma.mem_resp_data[k].next = self.rd_resp_data[k].val();
        }
        for k in 0..self.load_dma.buf_rdata.len() {
            self.load_dma.buf_rdata[k].next = self.c_zero8.val();
        }
        // Its buffer write port, to the selected buffer's lanes.
        self.act_buf.write_enable.next = self.load_dma.buf_we.val() & self.to_act.val();
        self.act_buf.write_address.next = self.load_dma.buf_waddr.val();
        for k in 0..self.act_buf.write_data.len() {
            self.act_buf.write_data[k].next = self.load_dma.buf_wdata[k].val();
            self.act_buf.write_lanes[k].next = self.load_dma.buf_wlanes[k].val();
        }
        self.wgt_buf.write_enable.next = self.load_dma.buf_we.val() & self.to_wgt.val();
        self.wgt_buf.write_address.next = self.load_dma.buf_waddr.val();
        for k in 0..self.wgt_buf.write_data.len() {
            self.wgt_buf.write_data[k].next = self.load_dma.buf_wdata[k].val();
            self.wgt_buf.write_lanes[k].next = self.load_dma.buf_wlanes[k].val();
        }
        self.param_buf.write_enable.next = self.load_dma.buf_we.val() & self.to_param.val();
        self.param_buf.write_address.next = self.load_dma.buf_waddr.val();
        for k in 0..self.param_buf.write_data.len() {
            self.param_buf.write_data[k].next = self.load_dma.buf_wdata[k].val();
            self.param_buf.write_lanes[k].next = self.load_dma.buf_wlanes[k].val();
        }

        // Store unit: the write channel and the output buffer's read port.
        self.store_dma.start.next = self.ctrl.store_start.val();
        self.ctrl.store_done.next = self.store_dma.done.val();
        self.store_dma.is_store.next = true;
        self.store_dma.cmd_addr.next = self.store_dec.addr.val();
        self.store_dma.cmd_dram.next = self.store_dec.dram.val();
        self.store_dma.cmd_rows.next = self.store_dec.rows.val();
        self.store_dma.cmd_row_bytes.next = self.store_dec.row_bytes.val();
        self.store_dma.cmd_dram_stride.next = self.store_dec.dram_stride.val();
        self.store_dma.cmd_buf_stride.next = self.store_dec.buf_stride.val();
        self.store_dma.cmd_word.next = self.c_act_word.val();
        self.wr_req_valid.next = self.store_dma.mem_req_valid.val();
        self.store_dma.mem_req_ready.next = self.wr_req_ready.val();
        self.wr_req_addr.next = self.store_dma.mem_req_addr.val();
        for k in 0..self.wr_req_data.len() {
            self.wr_req_data[k].next = self.store_dma.mem_req_data[k].val();
            self.wr_req_strobe[k].next = self.store_dma.mem_req_strobe[k].val();
            self.store_dma.mem_resp_data[k].next = self.c_zero8.val();
        }
        self.store_dma.mem_resp_valid.next = false;
        self.out_buf.read_address.next = self.store_dma.buf_raddr.val();
        for k in 0..self.out_buf.read_data.len() {
            self.store_dma.buf_rdata[k].next = self.out_buf.read_data[k].val();
        }

        // Exec unit: the engine the head selects starts; the others idle.
        self.matmul.start.next = self.ctrl.exec_start.val() & self.exec_dec.is_matmul.val();
        self.post.start.next = self.ctrl.exec_start.val() & self.exec_dec.is_post.val();
        self.pool.start.next = self.ctrl.exec_start.val() & self.exec_dec.is_pool.val();
        self.add.start.next = self.ctrl.exec_start.val() & self.exec_dec.is_add.val() & self.c_has_add.val();
        self.ctrl.exec_done.next = self.matmul.done.val()
            | self.post.done.val()
            | self.pool.done.val()
            | (self.add.done.val() & self.c_has_add.val());

        self.matmul.act.next = self.exec_dec.mm_act.val();
        self.matmul.tile_words.next = self.exec_dec.mm_tile_words.val();
        self.matmul.pitch.next = self.exec_dec.mm_pitch.val();
        self.matmul.y0.next = self.exec_dec.mm_y0.val();
        self.matmul.x0.next = self.exec_dec.mm_x0.val();
        self.matmul.x_first.next = self.exec_dec.mm_x_first.val();
        self.matmul.x_last.next = self.exec_dec.mm_x_last.val();
        self.matmul.ox_step.next = self.exec_dec.mm_ox_step.val();
        self.matmul.oy_step.next = self.exec_dec.mm_oy_step.val();
        self.matmul.out_w.next = self.exec_dec.mm_out_w.val();
        self.matmul.pixels.next = self.exec_dec.mm_pixels.val();
        self.matmul.wgt.next = self.exec_dec.mm_wgt.val();
        self.matmul.slices.next = self.exec_dec.mm_slices.val();
        self.matmul.acc.next = self.exec_dec.mm_acc.val();
        self.matmul.accumulate.next = self.exec_dec.mm_accumulate.val();
        self.matmul.act_signed.next = self.exec_dec.mm_act_signed.val();

        self.post.acc.next = self.exec_dec.post_acc.val();
        self.post.pixels.next = self.exec_dec.post_pixels.val();
        self.post.param.next = self.exec_dec.post_param.val();
        self.post.channels.next = self.exec_dec.post_channels.val();
        self.post.out.next = self.exec_dec.post_out.val();
        self.post.out_stride.next = self.exec_dec.post_out_stride.val();
        self.post.lane.next = self.exec_dec.post_lane.val();
        self.post.bits.next = self.exec_dec.post_bits.val();
        self.post.is_signed.next = self.exec_dec.post_signed.val();

        self.pool.act.next = self.exec_dec.pool_act.val();
        self.pool.tile_w.next = self.exec_dec.pool_tile_w.val();
        self.pool.groups.next = self.exec_dec.pool_groups.val();
        self.pool.kernel_h.next = self.exec_dec.pool_kernel_h.val();
        self.pool.kernel_w.next = self.exec_dec.pool_kernel_w.val();
        self.pool.stride.next = self.exec_dec.pool_stride.val();
        self.pool.out_h.next = self.exec_dec.pool_out_h.val();
        self.pool.out_w.next = self.exec_dec.pool_out_w.val();
        self.pool.out.next = self.exec_dec.pool_out.val();
        self.pool.mode.next = self.exec_dec.pool_mode.val();
        self.pool.multiplier.next = self.exec_dec.pool_multiplier.val();
        self.pool.shift.next = self.exec_dec.pool_shift.val();
        self.pool.in_signed.next = self.exec_dec.pool_in_signed.val();
        self.pool.bits.next = self.exec_dec.pool_bits.val();
        self.pool.is_signed.next = self.exec_dec.pool_signed.val();

        self.add.a.next = self.exec_dec.add_a.val();
        self.add.b.next = self.exec_dec.add_b.val();
        self.add.out.next = self.exec_dec.add_out.val();
        self.add.words.next = self.exec_dec.add_words.val();
        self.add.a_signed.next = self.exec_dec.add_a_signed.val();
        self.add.b_signed.next = self.exec_dec.add_b_signed.val();
        self.add.multiplier_a.next = self.exec_dec.add_multiplier_a.val();
        self.add.multiplier_b.next = self.exec_dec.add_multiplier_b.val();
        self.add.shift.next = self.exec_dec.add_shift.val();
        self.add.bits.next = self.exec_dec.add_bits.val();
        self.add.is_signed.next = self.exec_dec.add_signed.val();

        // Activation buffer read port: matmul unless a pool or an add runs.
        self.act_buf.read_address.next = self.matmul.act_addr.val();
        if self.exec_dec.is_pool.val() {
            self.act_buf.read_address.next = self.pool.act_raddr.val();
        }
        if self.exec_dec.is_add.val() & self.c_has_add.val() {
            self.act_buf.read_address.next = self.add.act_raddr.val();
        }
        for k in 0..self.act_buf.read_data.len() {
            self.matmul.act_rdata[k].next = self.act_buf.read_data[k].val();
            self.pool.act_rdata[k].next = self.act_buf.read_data[k].val();
            self.add.act_rdata[k].next = self.act_buf.read_data[k].val();
        }
        // Weight buffer: matmul only (weights are two's complement bytes).
        self.wgt_buf.read_address.next = self.matmul.wgt_addr.val();
        for c in 0..self.wgt_buf.read_data.len() {
            self.matmul.wgt_rdata[c].next = signed_cast(self.wgt_buf.read_data[c].val());
        }
        // Parameter buffer: post only.
        self.param_buf.read_address.next = self.post.param_raddr.val();
        for k in 0..self.param_buf.read_data.len() {
            self.post.param_rdata[k].next = self.param_buf.read_data[k].val();
        }
        // Accumulator banks: matmul writes; matmul or post reads.
        for c in 0..self.acc_banks.len() {
            self.acc_banks[c].we.next = self.matmul.acc_we[c].val();
            self.acc_banks[c].waddr.next = self.matmul.acc_waddr[c].val();
            self.acc_banks[c].wdata.next = self.matmul.acc_wdata[c].val();
            self.acc_banks[c].raddr.next = self.matmul.acc_raddr[c].val();
        }
        for c in 0..self.acc_banks.len() {
            if self.exec_dec.is_post.val() {
                self.acc_banks[c].raddr.next = self.post.acc_raddr[c].val();
            }
        }
        for c in 0..self.acc_banks.len() {
            self.matmul.acc_rdata[c].next = self.acc_banks[c].rdata.val();
            self.post.acc_rdata[c].next = self.acc_banks[c].rdata.val();
        }
        // Output buffer write port: whichever of post, pool and add runs.
        self.out_buf.write_enable.next = self.post.out_we.val();
        self.out_buf.write_address.next = self.post.out_waddr.val();
        for k in 0..self.out_buf.write_data.len() {
            self.out_buf.write_data[k].next = self.post.out_wdata[k].val();
            self.out_buf.write_lanes[k].next = self.post.out_wlanes[k].val();
        }
        if self.exec_dec.is_pool.val() {
            self.out_buf.write_enable.next = self.pool.out_we.val();
            self.out_buf.write_address.next = self.pool.out_waddr.val();
        }
        if self.exec_dec.is_add.val() & self.c_has_add.val() {
            self.out_buf.write_enable.next = self.add.out_we.val();
            self.out_buf.write_address.next = self.add.out_waddr.val();
        }
        for k in 0..self.out_buf.write_data.len() {
            if self.exec_dec.is_pool.val() {
                self.out_buf.write_data[k].next = self.pool.out_wdata[k].val();
                self.out_buf.write_lanes[k].next = self.pool.out_wlanes[k].val();
            }
            if self.exec_dec.is_add.val() & self.c_has_add.val() {
                self.out_buf.write_data[k].next = self.add.out_wdata[k].val();
                self.out_buf.write_lanes[k].next = self.add.out_wlanes[k].val();
            }
        }

        // Requantizer bank: post's lanes unless a pool or an add runs; the lanes past
        // post's (rows > cols) only pool and add use.
        for k in 0..self.rq.len() {
            self.rq[k].clock.next = self.clock.val();
        }
        for c in 0..self.post.rq_acc.len() {
            self.rq[c].acc.next = self.post.rq_acc[c].val();
            self.rq[c].bias.next = self.post.rq_bias[c].val();
            self.rq[c].multiplier.next = self.post.rq_multiplier[c].val();
            self.rq[c].shift.next = self.post.rq_shift[c].val();
            self.rq[c].bits.next = self.post.rq_bits.val();
            self.rq[c].is_signed.next = self.post.rq_signed.val();
        }
        for k in self.post.rq_acc.len()..self.rq.len() {
            self.rq[k].acc.next = self.pool.rq_acc[k].val();
            self.rq[k].bias.next = self.pool.rq_bias[k].val();
            self.rq[k].multiplier.next = self.pool.rq_multiplier[k].val();
            self.rq[k].shift.next = self.pool.rq_shift[k].val();
            self.rq[k].bits.next = self.pool.rq_bits.val();
            self.rq[k].is_signed.next = self.pool.rq_signed.val();
        }
        self.rq_for_pool.d.next = self.exec_dec.is_pool.val();
        self.rq_for_add.d.next = self.exec_dec.is_add.val() & self.c_has_add.val();
        for k in 0..self.pool.rq_acc.len() {
            if self.rq_for_pool.q.val() {
                self.rq[k].acc.next = self.pool.rq_acc[k].val();
                self.rq[k].bias.next = self.pool.rq_bias[k].val();
                self.rq[k].multiplier.next = self.pool.rq_multiplier[k].val();
                self.rq[k].shift.next = self.pool.rq_shift[k].val();
                self.rq[k].bits.next = self.pool.rq_bits.val();
                self.rq[k].is_signed.next = self.pool.rq_signed.val();
            }
            if self.rq_for_add.q.val() {
                self.rq[k].acc.next = self.add.rq_acc[k].val();
                self.rq[k].bias.next = self.add.rq_bias[k].val();
                self.rq[k].multiplier.next = self.add.rq_multiplier[k].val();
                self.rq[k].shift.next = self.add.rq_shift[k].val();
                self.rq[k].bits.next = self.add.rq_bits.val();
                self.rq[k].is_signed.next = self.add.rq_signed.val();
            }
        }
        for c in 0..self.post.rq_y.len() {
            self.post.rq_y[c].next = self.rq[c].y.val();
        }
        for k in 0..self.pool.rq_y.len() {
            self.pool.rq_y[k].next = self.rq[k].y.val();
            self.add.rq_y[k].next = self.rq[k].y.val();
        }

        // Outputs nobody reads.
        self.unused_busy[0].next = self.load_dma.busy.val();
        self.unused_busy[1].next = self.store_dma.busy.val();
        self.unused_busy[2].next = self.matmul.busy.val();
        self.unused_busy[3].next = self.post.busy.val();
        self.unused_busy[4].next = self.pool.busy.val();
        self.unused_busy[5].next = self.add.busy.val();
        self.unused_write_flag[0].next = self.load_dma.mem_req_write.val();
        self.unused_write_flag[1].next = self.store_dma.mem_req_write.val();
        self.unused_write_flag[2].next = self.store_dma.mem_resp_ready.val();
        self.unused_load_raddr.next = self.load_dma.buf_raddr.val();
        for k in 0..self.unused_load_req_data.len() {
            self.unused_load_req_data[k].next = self.load_dma.mem_req_data[k].val();
            self.unused_load_req_strobe[k].next = self.load_dma.mem_req_strobe[k].val();
        }
        self.unused_store_we.next = self.store_dma.buf_we.val();
        self.unused_store_waddr.next = self.store_dma.buf_waddr.val();
        for k in 0..self.unused_store_wdata.len() {
            self.unused_store_wdata[k].next = self.store_dma.buf_wdata[k].val();
            self.unused_store_wlanes[k].next = self.store_dma.buf_wlanes[k].val();
        }
        for r in 0..self.unused_array_act.len() {
            self.unused_array_act[r].next = self.matmul.array_act_out[r].val();
            self.unused_array_swap[r].next = self.matmul.array_swap_out[r].val();
        }
        for c in 0..self.unused_array_wdata.len() {
            self.unused_array_wdata[c].next = self.matmul.array_wdata_out[c].val();
            self.unused_array_wload[c].next = self.matmul.array_wload_out[c].val();
        }
    }
}

/// The accelerator's Verilog for `hw` (top module `top`).
pub fn accelerator_verilog(hw: &HwConfig) -> String {
    crate::verilog::top_verilog(Accelerator::new(hw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waived() -> Vec<&'static str> {
        LINT_WAIVERS.iter().map(|(rule, _)| *rule).collect()
    }

    #[test]
    fn accelerator_verilog_lints_clean_but_the_waivers() {
        for (rows, cols, add_unit, queue_depth, fetch_depth) in [
            (2, 2, true, 8, 8),
            (3, 2, true, 8, 8),
            (2, 3, false, 8, 8),
            (8, 8, true, 8, 8),
            (1, 1, false, 1, 1),
            (1, 1, false, 0, 1),
        ] {
            let hw = HwConfig {
                add_unit,
                queue_depth,
                fetch_depth,
                ..HwConfig::preset(rows, cols).unwrap()
            };
            crate::testing::assert_lints_clean_waiving(&accelerator_verilog(&hw), &waived());
        }
    }

    /// The UNOPTFLAT waiver's claim: yosys, which analyses the flattened netlist bit
    /// by bit, finds no combinational loop.
    #[test]
    fn accelerator_has_no_combinational_loop() {
        let hw = HwConfig {
            act_buffer_words: 64,
            weight_buffer_words: 64,
            acc_buffer_words: 64,
            out_buffer_words: 64,
            param_buffer_entries: 16,
            ..HwConfig::preset(2, 3).unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("top.v"), accelerator_verilog(&hw)).unwrap();
        let out = match std::process::Command::new("yosys")
            .args([
                "-q",
                "-p",
                "hierarchy -top top; proc; flatten; opt_clean; check -assert",
                "top.v",
            ])
            .current_dir(dir.path())
            .output()
        {
            Ok(out) => out,
            Err(_) => {
                println!("SKIPPED: yosys not found; run scripts/setup.sh");
                return;
            }
        };
        let log = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && !log.contains("logic loop"),
            "yosys check:\n{log}"
        );
    }
}
