//! The controller: fetches the program through the instruction port, dispatches
//! each instruction in program order into the queue of its unit (load, exec,
//! store), starts each unit's queue head when the unit is free and its waits are
//! met, counts completions, and raises `done` after `end` (docs/isa.md §5,
//! docs/rtl.md). `compiler::cycles::schedule` is the same rules as a cycle model;
//! the co-simulation checks them against each other.
//!
//! # Cycle by cycle (cycle 0 = the host's `start` cycle)
//!
//! - Fetch: request `i` is decided in cycle `t_i` and valid from `t_i + 1`
//!   (registered), one per cycle, while fewer than `fetch_depth` requested
//!   instructions wait for dispatch (so the fetch buffer never overflows and
//!   `ins_resp_ready` is always high). Responses are pushed into the fetch buffer.
//! - Dispatch: the fetch buffer's head goes into its unit's queue when that queue is
//!   not full, one per cycle. Dispatching `end` stops fetching and clears the fetch
//!   buffer; responses still in flight are dropped as they arrive.
//! - Units: a queue's head *is* the unit's current instruction: it starts (one-cycle
//!   `*_start`) when the unit is not active and the completion counts reach its
//!   waits, and leaves the queue at the edge that ends its `*_done` cycle, which also
//!   counts it as completed. The head's fields are therefore stable from start to
//!   done, as the engines require. `end` completes in the cycle it starts.
//! - `done`: once `end` has completed, every queue is empty, no unit is active and
//!   no instruction response is in flight.
//! - An unknown opcode at the head of the fetch buffer sets `status` to 1 and stops
//!   dispatching: the program never finishes, and the host's timeout reports it.
//!
//! # Serial mode (queue depth 0)
//!
//! No unit queues: the fetch buffer's head is every unit's current instruction. It
//! starts in a cycle where it is at the head and no unit is active, and leaves the
//! buffer at the edge that ends its `done` cycle (`end`: its start cycle). Everything
//! before an instruction has then completed, so its waits hold by construction and
//! are not compared. This drops three queues of 344-bit registers and the nine wait
//! comparators for the smallest boards, at the price of no overlap between loads,
//! compute and stores (`compiler::cycles::schedule` models both modes).

use compiler::hw::MAX_QUEUE_DEPTH;
use compiler::isa::INSTRUCTION_BYTES;
use rust_hdl::prelude::*;

/// Bytes of an encoded instruction that any instruction uses: `matmul`'s 14-byte
/// header and 29 bytes of fields; the rest of the 64 bytes is zero padding.
pub const INSN_USED_BYTES: usize = 43;
/// One instruction as the controller keeps it: its first `INSN_USED_BYTES` bytes,
/// byte `k` in bits `8k..8k+8` (queues of full 64-byte instructions would cost a
/// third more registers for padding).
pub type Insn = Bits<{ INSN_USED_BYTES * 8 }>;
/// Width of the fetch counts (`pending`, `inflight`): both are at most `fetch_depth`.
const COUNT_BITS: usize = 7;
type Count = Bits<COUNT_BITS>;
type B32 = Bits<32>;

const _: () = assert!(INSN_USED_BYTES <= INSTRUCTION_BYTES && MAX_QUEUE_DEPTH < 1 << COUNT_BITS);

/// The used instruction bytes as one word. Custom Verilog because rust-hdl has no
/// concatenation (see `SignExtend`).
#[derive(LogicBlock)]
pub struct ConcatBytes {
    pub bytes: Vec<Signal<In, Bits<8>>>,
    pub word: Signal<Out, Insn>,
}

impl Default for ConcatBytes {
    fn default() -> Self {
        Self {
            bytes: (0..INSN_USED_BYTES).map(|_| Default::default()).collect(),
            word: Default::default(),
        }
    }
}

impl Logic for ConcatBytes {
    fn update(&mut self) {
        let mut word = Insn::default();
        for (k, b) in self.bytes.iter().enumerate() {
            word.set_bits::<8>(8 * k, b.val());
        }
        self.word.next = word;
    }

    fn connect(&mut self) {
        self.word.connect();
    }

    fn hdl(&self) -> Verilog {
        let parts: Vec<String> = (0..INSN_USED_BYTES).rev().map(|k| format!("bytes${k}")).collect();
        Verilog::Custom(format!("always @(*) word = {{{}}};", parts.join(", ")))
    }
}

/// A first-in first-out queue of instructions: a ring buffer of `depth` (a power of
/// two) entries with read and write pointers, so that only a push writes an entry
/// (a shift register would copy every entry every cycle, which dominated the
/// simulation time). `head` is the entry at the read pointer (stale when empty);
/// `empty` and `full` are its only occupancy outputs (the controller never needs the
/// count, and pointers with one wrap bit give both without a counter). `push` when
/// full (without `pop`) and `pop` when empty are not allowed; `clear` empties it and
/// wins over `push` and `pop`. Depth 1 is a single register and a valid bit (no
/// pointers, no read multiplexer). Depth 0 is no queue at all (the serial
/// controller's unit queues): always empty and full, nothing may be pushed. Custom Verilog: rust-hdl cannot index a memory by
/// a signal; the Rust model below is the same ring buffer.
#[derive(LogicBlock)]
pub struct InsnQueue {
    pub clock: Signal<In, Clock>,
    pub push: Signal<In, Bit>,
    pub push_data: Signal<In, Insn>,
    pub pop: Signal<In, Bit>,
    pub clear: Signal<In, Bit>,
    pub head: Signal<Out, Insn>,
    pub empty: Signal<Out, Bit>,
    pub full: Signal<Out, Bit>,
    _entries: Vec<Insn>,
    _read: usize,
    _write: usize,
    _count: usize,
}

impl InsnQueue {
    pub fn new(depth: usize) -> Self {
        assert!(
            depth == 0 || (depth.is_power_of_two() && depth <= MAX_QUEUE_DEPTH),
            "queue depth: 0 or a power of two, 1..={MAX_QUEUE_DEPTH}"
        );
        Self {
            clock: Default::default(),
            push: Default::default(),
            push_data: Default::default(),
            pop: Default::default(),
            clear: Default::default(),
            head: Default::default(),
            empty: Default::default(),
            full: Default::default(),
            _entries: vec![Insn::default(); depth],
            _read: 0,
            _write: 0,
            _count: 0,
        }
    }

    fn depth(&self) -> usize {
        self._entries.len()
    }

    fn clock_edge(&mut self) {
        let depth = self.depth();
        if depth == 0 {
            assert!(!self.push.val(), "push into a queue of depth 0");
            return;
        }
        if self.clear.val() {
            (self._read, self._write, self._count) = (0, 0, 0);
            return;
        }
        let (push, pop) = (self.push.val(), self.pop.val());
        if push {
            self._entries[self._write] = self.push_data.val();
            self._write = (self._write + 1) % depth;
        }
        if pop {
            self._read = (self._read + 1) % depth;
        }
        self._count = self._count + push as usize - pop as usize;
    }

    /// Depth 0: nothing; the inputs go to a wire Verilator's lint skips by name.
    fn absent_verilog(&self) -> String {
        "wire unused_inputs = ^{clock, push, push_data, pop, clear};
always @(*) begin head = 0; empty = 1; full = 1; end"
            .to_string()
    }

    /// Depth 1: the entry and whether it holds an instruction.
    fn register_verilog(&self) -> String {
        format!(
            "reg [{w}:0] entry;
reg valid;
initial valid = 0;
always @(posedge clock) begin
  if (push && !clear) entry <= push_data;
  valid <= !clear && (push || (valid && !pop));
end
always @(*) begin head = entry; empty = !valid; full = valid; end",
            w = Insn::BITS - 1,
        )
    }

    /// Depth 2 and more: `depth` entries, and pointers with a wrap bit above the
    /// index bits (equal pointers: empty; equal but for the wrap bit: full).
    fn ring_verilog(&self) -> String {
        let depth = self.depth();
        let index = depth.trailing_zeros() as usize;
        format!(
            "reg [{w}:0] entries [0:{d}];
reg [{p}:0] read_at;
reg [{p}:0] write_at;
initial begin read_at = 0; write_at = 0; end
always @(posedge clock) begin
  if (clear) begin
    read_at <= 0; write_at <= 0;
  end else begin
    if (push) begin entries[write_at[{i}:0]] <= push_data; write_at <= write_at + 1'b1; end
    if (pop) read_at <= read_at + 1'b1;
  end
end
always @(*) begin
  head = entries[read_at[{i}:0]];
  empty = read_at == write_at;
  full = read_at == {{~write_at[{p}], write_at[{i}:0]}};
end",
            w = Insn::BITS - 1,
            d = depth - 1,
            p = index,
            i = index - 1,
        )
    }
}

impl Logic for InsnQueue {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            self.clock_edge();
        }
        self.head.next = self._entries.get(self._read).copied().unwrap_or_default();
        self.empty.next = self._count == 0;
        self.full.next = self._count == self.depth();
    }

    fn connect(&mut self) {
        self.head.connect();
        self.empty.connect();
        self.full.connect();
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom(match self.depth() {
            0 => self.absent_verilog(),
            1 => self.register_verilog(),
            _ => self.ring_verilog(),
        })
    }
}

/// The controller; see the module documentation.
#[derive(LogicBlock)]
pub struct Controller {
    pub clock: Signal<In, Clock>,
    // Host.
    pub start: Signal<In, Bit>,
    pub busy: Signal<Out, Bit>,
    pub done: Signal<Out, Bit>,
    pub cycles: Signal<Out, B32>,
    pub status: Signal<Out, Bits<8>>,
    pub retired_load: Signal<Out, B32>,
    pub retired_exec: Signal<Out, B32>,
    pub retired_store: Signal<Out, B32>,
    // Instruction port.
    pub ins_req_valid: Signal<Out, Bit>,
    pub ins_req_ready: Signal<In, Bit>,
    pub ins_req_index: Signal<Out, B32>,
    pub ins_resp_valid: Signal<In, Bit>,
    pub ins_resp_ready: Signal<Out, Bit>,
    pub ins_resp_data: Vec<Signal<In, Bits<8>>>,
    // Units: the current instruction (the queue head), whether there is one, its
    // start pulse and the unit's done.
    pub load_insn: Signal<Out, Insn>,
    pub load_start: Signal<Out, Bit>,
    pub load_done: Signal<In, Bit>,
    pub exec_insn: Signal<Out, Insn>,
    pub exec_start: Signal<Out, Bit>,
    pub exec_done: Signal<In, Bit>,
    pub store_insn: Signal<Out, Insn>,
    pub store_start: Signal<Out, Bit>,
    pub store_done: Signal<In, Bit>,
    concat: ConcatBytes,
    /// The padding bytes of the instruction port (always zero).
    unused_padding: Vec<Signal<Local, Bits<8>>>,
    /// The fetch buffer's `full`: `pending` already keeps requests within its depth.
    unused_fetch_full: Signal<Local, Bit>,
    fetch_q: InsnQueue,
    load_q: InsnQueue,
    exec_q: InsnQueue,
    store_q: InsnQueue,
    running: DFF<Bit>,
    stop: DFF<Bit>,
    finished: DFF<Bit>,
    status_r: DFF<Bits<8>>,
    cycles_r: DFF<B32>,
    req_valid: DFF<Bit>,
    req_index: DFF<B32>,
    pending: DFF<Count>,
    inflight: DFF<Count>,
    load_active: DFF<Bit>,
    exec_active: DFF<Bit>,
    store_active: DFF<Bit>,
    load_count: DFF<B32>,
    exec_count: DFF<B32>,
    store_count: DFF<B32>,
    // Combinational.
    opcode: Signal<Local, Bits<8>>,
    to_load: Signal<Local, Bit>,
    to_exec: Signal<Local, Bit>,
    to_store: Signal<Local, Bit>,
    dispatch: Signal<Local, Bit>,
    issue: Signal<Local, Bit>,
    accepted: Signal<Local, Bit>,
    load_go: Signal<Local, Bit>,
    exec_go: Signal<Local, Bit>,
    store_go: Signal<Local, Bit>,
    exec_is_end: Signal<Local, Bit>,
    exec_retire: Signal<Local, Bit>,
    /// Serial mode: the fetch buffer's head may start (it is there and no unit is active).
    serial_ready: Signal<Local, Bit>,
    finish: Signal<Local, Bit>,
    c_zero_count: Constant<Count>,
    c_one_count: Constant<Count>,
    c_fetch: Constant<Count>,
    c_zero8: Constant<Bits<8>>,
    c_zero32: Constant<B32>,
    c_one32: Constant<B32>,
    c_op_load: Constant<Bits<8>>,
    c_op_store: Constant<Bits<8>>,
    c_op_first_exec: Constant<Bits<8>>,
    c_op_end: Constant<Bits<8>>,
    c_status_opcode: Constant<Bits<8>>,
    /// `queue_depth` 0: no unit queues, one instruction at a time.
    c_serial: Constant<Bit>,
}

impl Controller {
    /// A controller with unit queues of `queue_depth` and a fetch buffer of
    /// `fetch_depth` instructions (`HwConfig::queue_depth`, `fetch_depth`); queue depth 0
    /// is the serial controller (module documentation).
    pub fn new(queue_depth: usize, fetch_depth: usize) -> Self {
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
            ins_resp_data: (0..INSTRUCTION_BYTES).map(|_| Default::default()).collect(),
            load_insn: Default::default(),
            load_start: Default::default(),
            load_done: Default::default(),
            exec_insn: Default::default(),
            exec_start: Default::default(),
            exec_done: Default::default(),
            store_insn: Default::default(),
            store_start: Default::default(),
            store_done: Default::default(),
            concat: Default::default(),
            unused_padding: (INSN_USED_BYTES..INSTRUCTION_BYTES)
                .map(|_| Default::default())
                .collect(),
            unused_fetch_full: Default::default(),
            fetch_q: InsnQueue::new(fetch_depth),
            load_q: InsnQueue::new(queue_depth),
            exec_q: InsnQueue::new(queue_depth),
            store_q: InsnQueue::new(queue_depth),
            running: Default::default(),
            stop: Default::default(),
            finished: Default::default(),
            status_r: Default::default(),
            cycles_r: Default::default(),
            req_valid: Default::default(),
            req_index: Default::default(),
            pending: Default::default(),
            inflight: Default::default(),
            load_active: Default::default(),
            exec_active: Default::default(),
            store_active: Default::default(),
            load_count: Default::default(),
            exec_count: Default::default(),
            store_count: Default::default(),
            opcode: Default::default(),
            to_load: Default::default(),
            to_exec: Default::default(),
            to_store: Default::default(),
            dispatch: Default::default(),
            issue: Default::default(),
            accepted: Default::default(),
            load_go: Default::default(),
            exec_go: Default::default(),
            store_go: Default::default(),
            exec_is_end: Default::default(),
            exec_retire: Default::default(),
            serial_ready: Default::default(),
            finish: Default::default(),
            c_zero_count: Constant::new(0u64.into()),
            c_one_count: Constant::new(1u64.into()),
            c_fetch: Constant::new((fetch_depth as u64).into()),
            c_zero8: k8(0),
            c_zero32: Constant::new(0u64.into()),
            c_one32: Constant::new(1u64.into()),
            c_op_load: k8(1),
            c_op_store: k8(2),
            c_op_first_exec: k8(3),
            c_op_end: k8(7),
            c_status_opcode: k8(1),
            c_serial: Constant::new(queue_depth == 0),
        }
    }
}

impl Logic for Controller {
    // One long function: `#[hdl_gen]` cannot translate calls to helpers.
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            running,
            stop,
            finished,
            status_r,
            cycles_r,
            req_valid,
            req_index,
            pending,
            inflight,
            load_active,
            exec_active,
            store_active,
            load_count,
            exec_count,
            store_count
        );
        self.fetch_q.clock.next = self.clock.val();
        self.load_q.clock.next = self.clock.val();
        self.exec_q.clock.next = self.clock.val();
        self.store_q.clock.next = self.clock.val();
        for k in 0..self.concat.bytes.len() {
            self.concat.bytes[k].next = self.ins_resp_data[k].val();
        }
        for k in 0..self.unused_padding.len() {
            self.unused_padding[k].next = self.ins_resp_data[k + 43].val();
        }

        // Host-visible state.
        self.busy.next = self.running.q.val();
        self.cycles.next = self.cycles_r.q.val();
        self.status.next = self.status_r.q.val();
        self.retired_load.next = self.load_count.q.val();
        self.retired_exec.next = self.exec_count.q.val();
        self.retired_store.next = self.store_count.q.val();
        if self.c_serial.val() {
            self.load_insn.next = self.fetch_q.head.val();
            self.exec_insn.next = self.fetch_q.head.val();
            self.store_insn.next = self.fetch_q.head.val();
        } else {
            self.load_insn.next = self.load_q.head.val();
            self.exec_insn.next = self.exec_q.head.val();
            self.store_insn.next = self.store_q.head.val();
        }

        // Fetch: issue a request when the previous one is taken (or none is valid)
        // and fewer than fetch_depth requested instructions await dispatch.
        self.ins_req_valid.next = self.req_valid.q.val();
        self.ins_req_index.next = self.req_index.q.val();
        self.ins_resp_ready.next = true;
        self.accepted.next = self.req_valid.q.val() & self.ins_req_ready.val();
        self.issue.next = self.running.q.val()
            & !self.stop.q.val()
            & (self.pending.q.val() < self.c_fetch.val())
            & (!self.req_valid.q.val() | self.ins_req_ready.val());
        self.fetch_q.push.next = self.ins_resp_valid.val() & !self.stop.q.val();
        self.fetch_q.push_data.next = self.concat.word.val();
        self.unused_fetch_full.next = self.fetch_q.full.val();

        // The fetch buffer's head: which unit it goes to.
        self.opcode.next = self.fetch_q.head.val().get_bits::<8>(0);
        self.to_load.next = self.opcode.val() == self.c_op_load.val();
        self.to_store.next = self.opcode.val() == self.c_op_store.val();
        self.to_exec.next =
            (self.opcode.val() >= self.c_op_first_exec.val()) & (self.opcode.val() <= self.c_op_end.val());
        self.load_q.clear.next = false;
        self.exec_q.clear.next = false;
        self.store_q.clear.next = false;

        // Start each unit's head when the unit is free and its waits are met
        // (wait counts: bytes 2..6 load, 6..10 exec, 10..14 store); serial: start the
        // fetch buffer's head when no unit is active (everything before it has completed).
        self.serial_ready.next = self.running.q.val()
            & !self.fetch_q.empty.val()
            & !self.load_active.q.val()
            & !self.exec_active.q.val()
            & !self.store_active.q.val();
        self.load_go.next = self.running.q.val()
            & !self.load_q.empty.val()
            & !self.load_active.q.val()
            & (self.load_count.q.val() >= self.load_q.head.val().get_bits::<32>(16))
            & (self.exec_count.q.val() >= self.load_q.head.val().get_bits::<32>(48))
            & (self.store_count.q.val() >= self.load_q.head.val().get_bits::<32>(80));
        self.exec_go.next = self.running.q.val()
            & !self.exec_q.empty.val()
            & !self.exec_active.q.val()
            & (self.load_count.q.val() >= self.exec_q.head.val().get_bits::<32>(16))
            & (self.exec_count.q.val() >= self.exec_q.head.val().get_bits::<32>(48))
            & (self.store_count.q.val() >= self.exec_q.head.val().get_bits::<32>(80));
        self.store_go.next = self.running.q.val()
            & !self.store_q.empty.val()
            & !self.store_active.q.val()
            & (self.load_count.q.val() >= self.store_q.head.val().get_bits::<32>(16))
            & (self.exec_count.q.val() >= self.store_q.head.val().get_bits::<32>(48))
            & (self.store_count.q.val() >= self.store_q.head.val().get_bits::<32>(80));
        if self.c_serial.val() {
            self.load_go.next = self.serial_ready.val() & self.to_load.val();
            self.exec_go.next = self.serial_ready.val() & self.to_exec.val();
            self.store_go.next = self.serial_ready.val() & self.to_store.val();
        }
        self.exec_is_end.next = self.exec_insn.val().get_bits::<8>(0) == self.c_op_end.val();
        self.load_start.next = self.load_go.val();
        self.exec_start.next = self.exec_go.val() & !self.exec_is_end.val();
        self.store_start.next = self.store_go.val();
        // `end` completes in the cycle it starts; other instructions at their done.
        self.exec_retire.next = (self.exec_go.val() & self.exec_is_end.val()) | self.exec_done.val();
        self.load_q.pop.next = self.load_done.val();
        self.exec_q.pop.next = self.exec_retire.val();
        self.store_q.pop.next = self.store_done.val();

        // Dispatch the fetch buffer's head into its unit's queue (after the retire
        // signals: the serial controller dispatches at completion).
        if self.c_serial.val() {
            // Serial: the head leaves the fetch buffer when it completes.
            self.dispatch.next = self.load_done.val() | self.exec_retire.val() | self.store_done.val();
        } else {
            self.dispatch.next = self.running.q.val()
                & !self.stop.q.val()
                & !self.fetch_q.empty.val()
                & ((self.to_load.val() & !self.load_q.full.val())
                    | (self.to_exec.val() & !self.exec_q.full.val())
                    | (self.to_store.val() & !self.store_q.full.val()));
        }
        self.fetch_q.pop.next = self.dispatch.val();
        self.fetch_q.clear.next = self.dispatch.val() & self.to_exec.val() & (self.opcode.val() == self.c_op_end.val());
        self.load_q.push.next = self.dispatch.val() & self.to_load.val() & !self.c_serial.val();
        self.exec_q.push.next = self.dispatch.val() & self.to_exec.val() & !self.c_serial.val();
        self.store_q.push.next = self.dispatch.val() & self.to_store.val() & !self.c_serial.val();
        self.load_q.push_data.next = self.fetch_q.head.val();
        self.exec_q.push_data.next = self.fetch_q.head.val();
        self.store_q.push_data.next = self.fetch_q.head.val();

        self.finish.next = self.running.q.val()
            & self.finished.q.val()
            & self.load_q.empty.val()
            & self.exec_q.empty.val()
            & self.store_q.empty.val()
            & self.fetch_q.empty.val()
            & !self.load_active.q.val()
            & !self.exec_active.q.val()
            & !self.store_active.q.val()
            & !self.req_valid.q.val()
            & (self.inflight.q.val() == self.c_zero_count.val());
        self.done.next = self.finish.val();

        // Registers.
        if self.load_go.val() {
            self.load_active.d.next = true;
        }
        if self.load_done.val() {
            self.load_active.d.next = false;
            self.load_count.d.next = self.load_count.q.val() + self.c_one32.val();
        }
        if self.exec_start.val() {
            self.exec_active.d.next = true;
        }
        if self.exec_done.val() {
            self.exec_active.d.next = false;
        }
        if self.exec_retire.val() {
            self.exec_count.d.next = self.exec_count.q.val() + self.c_one32.val();
        }
        if self.exec_go.val() & self.exec_is_end.val() {
            self.finished.d.next = true;
        }
        if self.store_go.val() {
            self.store_active.d.next = true;
        }
        if self.store_done.val() {
            self.store_active.d.next = false;
            self.store_count.d.next = self.store_count.q.val() + self.c_one32.val();
        }
        if !self.req_valid.q.val() | self.ins_req_ready.val() {
            self.req_valid.d.next = self.issue.val();
            // Requests go in program order: each one after the last (`start` requests
            // instruction 0), so the index needs no second "next" register.
            if self.issue.val() {
                self.req_index.d.next = self.req_index.q.val() + self.c_one32.val();
            }
        }
        if self.issue.val() & !self.dispatch.val() {
            self.pending.d.next = self.pending.q.val() + self.c_one_count.val();
        }
        if self.dispatch.val() & !self.issue.val() {
            self.pending.d.next = self.pending.q.val() - self.c_one_count.val();
        }
        if self.accepted.val() & !self.ins_resp_valid.val() {
            self.inflight.d.next = self.inflight.q.val() + self.c_one_count.val();
        }
        if self.ins_resp_valid.val() & !self.accepted.val() {
            self.inflight.d.next = self.inflight.q.val() - self.c_one_count.val();
        }
        if self.fetch_q.clear.val() {
            self.stop.d.next = true;
        }
        if self.running.q.val()
            & !self.stop.q.val()
            & !self.fetch_q.empty.val()
            & !self.to_load.val()
            & !self.to_exec.val()
            & !self.to_store.val()
        {
            self.status_r.d.next = self.c_status_opcode.val();
            self.stop.d.next = true;
        }
        if self.running.q.val() & !self.finish.val() {
            self.cycles_r.d.next = self.cycles_r.q.val() + self.c_one32.val();
        }
        if self.finish.val() {
            self.running.d.next = false;
        }
        // Start: everything from scratch, and request instruction 0 right away.
        if self.start.val() & !self.running.q.val() {
            self.running.d.next = true;
            self.stop.d.next = false;
            self.finished.d.next = false;
            self.status_r.d.next = self.c_zero8.val();
            self.cycles_r.d.next = self.c_one32.val();
            self.req_valid.d.next = true;
            self.req_index.d.next = self.c_zero32.val();
            self.pending.d.next = self.c_one_count.val();
            self.load_count.d.next = self.c_zero32.val();
            self.exec_count.d.next = self.c_zero32.val();
            self.store_count.d.next = self.c_zero32.val();
        }
    }
}

/// The Verilog of the controller alone (top module `top`).
pub fn controller_verilog(queue_depth: usize, fetch_depth: usize) -> String {
    crate::verilog::top_verilog(Controller::new(queue_depth, fetch_depth))
}

#[cfg(test)]
mod tests {
    use super::*;
    use compiler::cycles::{cost, schedule};
    use compiler::hw::HwConfig;
    use compiler::isa::{encode, Instruction, Op, Unit, Waits};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::collections::VecDeque;

    /// A random program over small transfers and exec instructions, with random
    /// waits that can be met (at most the instructions of that unit before it),
    /// ending with `end`.
    fn random_program(rng: &mut ChaCha8Rng, n: usize) -> Vec<Instruction> {
        let mut counts = [0u32; 3];
        let mut program = vec![];
        for _ in 0..n {
            let op = match rng.gen_range(0..4) {
                0 => Op::Load {
                    buffer: rng.gen_range(0..3),
                    addr: 0,
                    dram: rng.gen_range(0..64),
                    rows: rng.gen_range(1..3),
                    row_bytes: rng.gen_range(1..20),
                    dram_stride: 32,
                    buf_stride: 4,
                },
                1 => Op::Store {
                    addr: 0,
                    dram: rng.gen_range(0..64),
                    rows: 1,
                    row_bytes: rng.gen_range(1..20),
                    dram_stride: 0,
                    buf_stride: 0,
                },
                2 => Op::Add {
                    a: 0,
                    b: 0,
                    out: 0,
                    words: rng.gen_range(0..6),
                    a_signed: 0,
                    b_signed: 0,
                    multiplier_a: 1,
                    multiplier_b: 1,
                    shift: 0,
                    bits: 8,
                    signed: 1,
                },
                _ => Op::Post {
                    acc: 0,
                    pixels: rng.gen_range(1..8),
                    param: 0,
                    channels: 2,
                    out: 0,
                    out_stride: 2,
                    lane: 0,
                    bits: 8,
                    signed: 1,
                },
            };
            let mut waits = Waits::default();
            for unit in Unit::ALL {
                if rng.gen_bool(0.4) {
                    waits.raise(unit, rng.gen_range(0..=counts[unit as usize]));
                }
            }
            counts[op.unit() as usize] += 1;
            program.push(Instruction { op, waits });
        }
        program.push(Instruction {
            op: Op::End {},
            waits: Waits::default(),
        });
        program
    }

    /// Per unit: the program indices of its instructions in order.
    fn members(program: &[Instruction]) -> [Vec<usize>; 3] {
        let mut m: [Vec<usize>; 3] = Default::default();
        for (i, ins) in program.iter().enumerate() {
            m[ins.op.unit() as usize].push(i);
        }
        m
    }

    /// Runs `program` on the controller with units that take exactly the cycle
    /// model's cost and an instruction memory of `latency`; returns each
    /// instruction's start cycle and the `done` cycle (cycle 0 = `start`).
    fn run(hw: &HwConfig, program: &[Instruction]) -> (Vec<u64>, u64, u64) {
        let bytes = encode(program);
        let mut c = Controller::new(hw.queue_depth, hw.fetch_depth);
        c.connect_all();
        let units = members(program);
        let mut next = [0usize; 3];
        let mut busy_until: [Option<u64>; 3] = [None; 3];
        let mut starts = vec![u64::MAX; program.len()];
        let mut responses: VecDeque<(u64, usize)> = VecDeque::new();
        for t in 0..20_000u64 {
            c.start.next = t == 0;
            c.ins_req_ready.next = true;
            let head = responses.front().filter(|(at, _)| *at <= t).map(|&(_, i)| i);
            c.ins_resp_valid.next = head.is_some();
            for k in 0..INSTRUCTION_BYTES {
                let b = head
                    .and_then(|i| bytes.get(i * INSTRUCTION_BYTES + k))
                    .copied()
                    .unwrap_or(0);
                c.ins_resp_data[k].next = (b as u64).into();
            }
            for (u, done) in [&mut c.load_done, &mut c.exec_done, &mut c.store_done]
                .into_iter()
                .enumerate()
            {
                done.next = busy_until[u] == Some(t);
            }
            c.clock.next = Clock { clk: false };
            assert!(simulate(&mut c, 100), "controller did not settle");
            if c.done.val() {
                return (starts, t, c.cycles.val().index() as u64);
            }
            if head.is_some() {
                responses.pop_front();
            }
            if c.ins_req_valid.val() {
                responses.push_back((t + hw.mem_latency as u64, c.ins_req_index.val().index()));
            }
            for (u, start) in [c.load_start.val(), c.exec_start.val(), c.store_start.val()]
                .into_iter()
                .enumerate()
            {
                if busy_until[u] == Some(t) {
                    busy_until[u] = None;
                    next[u] += 1;
                }
                if start {
                    assert!(busy_until[u].is_none(), "unit {u} started while busy");
                    let i = units[u][next[u]];
                    starts[i] = t;
                    busy_until[u] = Some(t + cost(hw, &program[i].op) - 1);
                }
            }
            c.clock.next = Clock { clk: true };
            assert!(simulate(&mut c, 100), "controller did not settle after the edge");
        }
        panic!("the program did not finish");
    }

    #[test]
    fn runs_programs_exactly_as_the_cycle_model_schedules_them() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for (trial, (latency, queue_depth, fetch_depth)) in [
            (1usize, 8, 8),
            (3, 2, 4),
            (12, 8, 8),
            (5, 4, 2),
            (3, 1, 1),
            (6, 1, 4),
            (2, 4, 1),
            (3, 0, 1),
            (1, 0, 2),
            (7, 0, 4),
        ]
        .into_iter()
        .enumerate()
        {
            let hw = HwConfig {
                mem_latency: latency,
                queue_depth,
                fetch_depth,
                ..HwConfig::preset(2, 2).unwrap()
            };
            for n in [0, 1, 5, 30] {
                let program = random_program(&mut rng, n);
                let model = schedule(&hw, &program).expect("schedulable");
                let (starts, done, cycles) = run(&hw, &program);
                let end = program.len() - 1;
                assert_eq!(
                    starts[..end],
                    model.start[..end],
                    "trial {trial}, {n} instructions: start cycles"
                );
                assert_eq!((done, cycles), (model.total, model.total), "done cycle and counter");
            }
        }
    }

    #[test]
    fn controller_verilog_lints_clean() {
        for (queue_depth, fetch_depth) in [(0, 1), (0, 2), (1, 1), (1, 2), (2, 1), (8, 8)] {
            crate::testing::assert_lints_clean(&controller_verilog(queue_depth, fetch_depth));
        }
    }
}
