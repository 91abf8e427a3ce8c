//! The load/store engine ([`Dma`]): executes one `load` or `store` instruction
//! (docs/isa.md §4; `compiler::functional`'s `load` / `store` are the
//! definition): `rows` rows of `row_bytes` bytes, row `i` at external byte
//! address `dram + i*dram_stride` and at buffer word `addr + i*buf_stride`
//! (`W` bytes a word; each row starts at lane 0 of its first word and its
//! bytes fill consecutive words, the last one possibly partly).
//!
//! # The accelerator's external-memory interface
//!
//! One request and one response channel, each a valid/ready handshake (a
//! transfer happens at a rising edge where both are high; `valid` and the
//! payload hold until then; `ready` never depends on `valid`):
//!
//! - request (`mem_req_*`, accelerator to memory): `addr` (32-bit byte
//!   address, always a multiple of `bus_bytes`), `write`, `data[k]` and
//!   `strobe[k]` (byte `k` of the beat is byte `addr + k` of memory; for a
//!   write, only bytes with `strobe[k]` high are written). Writes are posted:
//!   they have no response.
//! - response (`mem_resp_*`, memory to accelerator): `data[k]`, one beat per
//!   read request, in request order. The engine issues reads without waiting
//!   for responses, so the memory must queue responses it cannot yet return
//!   (at most one instruction's reads: `rows * (ceil(row_bytes / bus_bytes) + 1)`).
//! - the memory handles requests in order (a read after a write sees it).
//! - the engine's `mem_req_valid` and payload come from registers;
//!   `mem_resp_ready` depends combinationally on `mem_req_ready`, so the
//!   memory's `mem_req_ready` must not depend on `mem_resp_ready`.
//!
//! Unaligned addresses: a row at `dram` is covered by the aligned beats from
//! `dram & !(bus_bytes-1)` up to its last byte; reads fetch whole beats and
//! drop the bytes outside the row, writes clear their strobes.
//!
//! # Command and buffer ports
//!
//! `start` (ignored while `busy`) begins an instruction; `busy` is high from
//! the next cycle until it has finished; `done` is high in its last busy
//! cycle. The fields (`is_store` and `cmd_*`) must hold from `start` through
//! `done`, as the controller's queue head does: the engine reads them where
//! it needs them instead of copying them into registers, so that an
//! accelerator's load engine (`is_store` low) and store engine (`is_store`
//! high) each keep only their own half of the logic. A load writes through
//! `buf_we`/`buf_waddr`/`buf_wdata`/`buf_wlanes` (byte enables), a store
//! reads through `buf_raddr` / `buf_rdata`: the write and the registered read
//! port of an [`SdpRam`](crate::SdpRam) of `W` byte lanes. `buf_raddr` is
//! combinational (the address of the word wanted in the next cycle).
//!
//! # Datapath
//!
//! A byte queue of `C = bus_bytes + W - 1` slots (the registers of a
//! [`Packer`], `cnt` of them valid) packs the input items (load: response
//! beats, store: buffer words) into output items (load: buffer words,
//! store: request beats). Each cycle it may emit the first `O` slots (`O` = output item
//! bytes; a row's last, partial item when its input is complete) and append
//! one input item behind what remains. A store row starts `dram % bus_bytes`
//! slots into the queue (its first beat's strobes are off below that); a load
//! row's first beat skips its first `dram % bus_bytes` bytes. The queue only
//! ever holds one row, so every row starts a fresh buffer word or beat.
//!
//! # Timing
//!
//! [`dma_cycles`] gives the exact cycles (checked against the engine on
//! every transfer of the tests) and its closed form. Compared with
//! docs/isa.md §5's `mem_latency + rows * ceil(row_bytes / bus_bytes)`, the
//! engine takes, with `bus_bytes <= W`: loads 2 cycles more (command cycle,
//! last buffer write), stores `3 - mem_latency` (posted writes); plus one
//! beat for each unaligned row that straddles one more beat boundary, plus
//! one cycle for each row whose last beat leaves two output items to write.
//! With `W < bus_bytes` the buffer port (one word a cycle) is the limit:
//! `ceil(row_bytes / W)` cycles a row.
//!
//! # rust-hdl notes
//!
//! Cost on iCE40 (yosys `synth_ice40`, test `ice40_resources`): ~1400
//! LUT4 for bus 4 / word 4, ~2100 for bus 8 / word 8 with `is_store` a
//! free input, mostly the 32-bit address and count registers with their
//! adders and the byte shifters. The per-command word size (`cmd_word`)
//! costs ~160-500 of those LUTs (the shifters' amounts become variable) and
//! lets one engine serve all three buffers of the load unit instead of one
//! engine per word size. With `is_store` and the word sizes tied as in the
//! accelerator (bus 4, 1x1 array), the load engine takes ~980 LUT4 and the
//! store engine ~540 (docs/rtl.md, "Area").
//!
//! Address and length arithmetic is 32 bits wide (buffer addresses and row
//! counts 16, queue counts 8): rust-hdl emits integer literals as 32-bit
//! constants, so 32-bit signals and `Constant` fields keep Verilator's WIDTH
//! checks quiet; `bit_cast` would emit `x & N'hmask`, whose width is the
//! wider operand's. Lane numbers to
//! compare counts with are a `Vec<Constant>`. An index expression's `[..]`
//! is evaluated only for the first bracket of a name (`self.a[k].b[j]`
//! breaks), so each `Vec` is indexed once per expression. Signals named
//! `new` (a SystemVerilog keyword) would break Verilator. `#[hdl_gen]`
//! reaches a child's ports but not a grandchild's (`self.a.b.x` emits an
//! undeclared `a$b$x`). The Verilator test drives the engine's own Verilog
//! from a SystemVerilog testbench (memory and buffer modelled there);
//! Verilator 5.006 there: drive a DUT input port with whole-vector
//! assignments (part-select writes in a loop reached the port a cycle late),
//! and `expect` is a reserved word.

use rust_hdl::prelude::*;

use crate::memory::ADDR_BITS;

type B32 = Bits<32>;
type B8 = Bits<8>;
type Addr = Bits<ADDR_BITS>;
/// Row counts: the instructions' `rows` field is 16 bits (docs/isa.md §4).
type Rows = Bits<16>;

/// `n` default signals (or other blocks).
fn sig<T: Default>(n: usize) -> Vec<T> {
    (0..n).map(|_| T::default()).collect()
}

/// The byte queue: `slots` registers that take, at each rising edge,
/// `slots[s + drop]` below `base` and `incoming[s - base + lo]` from `base`
/// on (0 outside the inputs); see [`pack`]. Custom Verilog (two shifts)
/// because rust-hdl cannot shift by a variable. The registers live inside
/// this block, so no combinational path leaves the engine's single always
/// block through a child and comes back into it (as with `LowByteDff`).
#[derive(LogicBlock)]
pub struct Packer {
    pub clock: Signal<In, Clock>,
    pub incoming: Vec<Signal<In, B8>>,
    /// Slots to shift out (the emitted item).
    pub drop: Signal<In, B8>,
    /// Where the first incoming byte lands.
    pub base: Signal<In, B8>,
    /// The first incoming lane taken.
    pub lo: Signal<In, B8>,
    /// The first `outputs` slots (the emitted item's lanes).
    pub slots: Vec<Signal<Out, B8>>,
    /// Simulation model: all the slots.
    _held: Vec<u8>,
}

impl Packer {
    /// `slots` queue slots, `lanes <= slots` incoming lanes, the first
    /// `outputs <= slots` slots as outputs.
    pub fn new(slots: usize, lanes: usize, outputs: usize) -> Self {
        assert!(1 <= lanes && lanes <= slots && outputs <= slots && slots < 64);
        Self {
            clock: Default::default(),
            incoming: sig(lanes),
            drop: Default::default(),
            base: Default::default(),
            lo: Default::default(),
            slots: sig(outputs),
            _held: vec![0; slots],
        }
    }

    /// The Verilog body: byte vectors, one right shift per input, a mux per slot.
    fn verilog(&self) -> String {
        let (c, i) = (self._held.len(), self.incoming.len());
        let cat = |name: &str, n: usize| {
            let lanes: Vec<String> = (0..n).rev().map(|k| format!("{name}${k}")).collect();
            lanes.join(", ")
        };
        let pad = if c > i {
            format!("{}'d0, ", 8 * (c - i))
        } else {
            String::new()
        };
        // Shift amounts in slots need only the bits of `c` (drop, lo <= c; a
        // base >= c keeps every slot, so `placed` is then unused): fewer stages.
        let a = (usize::BITS - c.leading_zeros()) as usize;
        let mut v = format!("reg [{}:0] held_v;\ninitial held_v = 0;\n", 8 * c - 1);
        v += &format!("wire [{}:0] in_v = {{{pad}{}}};\n", 8 * c - 1, cat("incoming", i));
        v += &format!(
            "wire [{}:0] kept = held_v >> {{drop[{h}:0], 3'b000}};\n",
            8 * c - 1,
            h = a - 1
        );
        v += &format!(
            "wire [{}:0] placed = (in_v >> {{lo[{h}:0], 3'b000}}) << {{base[{h}:0], 3'b000}};\n",
            8 * c - 1,
            h = a - 1
        );
        v +=
            &format!("wire unused_packer = ^{{drop[7:{a}], lo[7:{a}], base[7:{a}]}};\nalways @(posedge clock) begin\n");
        for s in 0..c {
            let r = format!("[{}:{}]", 8 * s + 7, 8 * s);
            v += &format!("  held_v{r} <= (base > 8'd{s}) ? kept{r} : placed{r};\n");
        }
        v += "end\nalways @(*) begin\n";
        for s in 0..self.slots.len() {
            v += &format!("  slots${s} = held_v[{}:{}];\n", 8 * s + 7, 8 * s);
        }
        v + "end\n"
    }
}

/// The packer's function on plain bytes (its simulation model).
pub fn pack(held: &[u8], incoming: &[u8], drop: usize, base: usize, lo: usize) -> Vec<u8> {
    let byte = |v: &[u8], k: usize| v.get(k).copied().unwrap_or(0);
    (0..held.len())
        .map(|s| {
            if s < base {
                byte(held, s + drop)
            } else {
                byte(incoming, s - base + lo)
            }
        })
        .collect()
}

impl Logic for Packer {
    fn update(&mut self) {
        if !self.clock.pos_edge() {
            return;
        }
        let bytes = |v: &[Signal<In, B8>]| v.iter().map(|x| x.val().index() as u8).collect::<Vec<_>>();
        let (base, drop, lo) = (self.base.val().index(), self.drop.val().index(), self.lo.val().index());
        self._held = pack(&self._held, &bytes(&self.incoming), drop, base, lo);
        for (slot, &b) in self.slots.iter_mut().zip(&self._held) {
            slot.next = (b as u64).into();
        }
    }

    fn connect(&mut self) {
        for p in self.slots.iter_mut() {
            p.connect();
        }
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom(self.verilog())
    }
}

/// A 32-bit register that also presents its low byte (`low`). Custom
/// Verilog: rust-hdl's `bit_cast` emits `x & N'hmask` (a Verilator WIDTH
/// warning), and a combinational narrowing block between the parent's
/// always block and itself is reported as circular logic (UNOPTFLAT).
#[derive(LogicBlock, Default)]
pub struct LowByteDff {
    pub clock: Signal<In, Clock>,
    pub d: Signal<In, B32>,
    pub q: Signal<Out, B32>,
    pub low: Signal<Out, B8>,
}

impl Logic for LowByteDff {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            self.q.next = self.d.val();
        }
        self.low.next = (self.q.val().to_u64() & 0xff).into();
    }

    fn connect(&mut self) {
        self.q.connect();
        self.low.connect();
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom("initial q = 32'd0;\nalways @(posedge clock) q <= d;\nalways @(*) low = q[7:0];".into())
    }
}

/// The load/store engine; see the module documentation.
#[derive(LogicBlock)]
pub struct Dma {
    pub clock: Signal<In, Clock>,
    // Command.
    pub start: Signal<In, Bit>,
    pub is_store: Signal<In, Bit>,
    pub cmd_addr: Signal<In, Addr>,
    pub cmd_dram: Signal<In, B32>,
    pub cmd_rows: Signal<In, Rows>,
    pub cmd_row_bytes: Signal<In, B32>,
    pub cmd_dram_stride: Signal<In, B32>,
    pub cmd_buf_stride: Signal<In, Addr>,
    /// Bytes of a buffer word for this command, 1..=`word_bytes` (one engine
    /// serves buffers with different word sizes: lanes from `cmd_word` on are
    /// neither written nor read).
    pub cmd_word: Signal<In, B32>,
    pub busy: Signal<Out, Bit>,
    pub done: Signal<Out, Bit>,
    // Buffer ports.
    pub buf_we: Signal<Out, Bit>,
    pub buf_waddr: Signal<Out, Addr>,
    pub buf_wdata: Vec<Signal<Out, Bits<8>>>,
    pub buf_wlanes: Vec<Signal<Out, Bit>>,
    pub buf_raddr: Signal<Out, Addr>,
    pub buf_rdata: Vec<Signal<In, Bits<8>>>,
    // External memory.
    pub mem_req_valid: Signal<Out, Bit>,
    pub mem_req_ready: Signal<In, Bit>,
    pub mem_req_addr: Signal<Out, B32>,
    pub mem_req_write: Signal<Out, Bit>,
    pub mem_req_data: Vec<Signal<Out, Bits<8>>>,
    pub mem_req_strobe: Vec<Signal<Out, Bit>>,
    pub mem_resp_valid: Signal<In, Bit>,
    pub mem_resp_ready: Signal<Out, Bit>,
    pub mem_resp_data: Vec<Signal<In, Bits<8>>>,
    // Constants.
    c_bus: Constant<B32>,
    c_bus8: Constant<B8>,
    c_low: Constant<B32>,
    c_zero24: Constant<Bits<24>>,
    c_align: Constant<B32>,
    c_zero: Constant<B32>,
    c_one16: Constant<Addr>,
    c_zero_rows: Constant<Rows>,
    c_one_rows: Constant<Rows>,
    c_zero8: Constant<Bits<8>>,
    /// `c_lane[k] = k`, to compare counts with lane numbers.
    c_lane: Vec<Constant<B8>>,
    busy_r: DFF<Bit>,
    /// `cmd_word` in 8 bits, for the byte-queue counts.
    word8: Signal<Local, B8>,
    unused_word_high: Signal<Local, Bits<24>>,
    /// External address of a row: the one being requested (loads) or the one
    /// entering the queue (stores); one walker serves both, as each engine
    /// instance is either a load or a store engine.
    row_dram: DFF<B32>,
    // Read-request generator (loads).
    rq_rows_left: DFF<Rows>,
    rq_addr: DFF<B32>,
    // Input side: the row whose bytes enter the queue, and its byte offset in
    // the beat (`dram % bus_bytes`: a load's input row trails its requests).
    in_rows_left: DFF<Rows>,
    in_off: LowByteDff,
    in_left: LowByteDff,
    in_first: DFF<Bit>,
    in_row_word: DFF<Addr>,
    in_word: DFF<Addr>,
    rd_valid: DFF<Bit>,
    // The byte queue.
    cnt: DFF<B8>,
    tail: DFF<Bit>,
    pad: DFF<B8>,
    packer: Packer,
    // Output side.
    out_word: DFF<Addr>,
    out_beat: DFF<B32>,
    // Combinational temporaries.
    o: Signal<Local, B8>,
    emit_want: Signal<Local, Bit>,
    emit: Signal<Local, Bit>,
    flush: Signal<Local, Bit>,
    base: Signal<Local, B8>,
    lo: Signal<Local, B8>,
    avail: Signal<Local, B8>,
    count: Signal<Local, B8>,
    row_last: Signal<Local, Bit>,
    accept: Signal<Local, Bit>,
    can_accept: Signal<Local, Bit>,
    place_base: Signal<Local, B8>,
    next_row_word: Signal<Local, Addr>,
    rd_next: Signal<Local, Addr>,
    row_next: Signal<Local, B32>,
    finish: Signal<Local, Bit>,
    offset: Signal<Local, B8>,
    short: Signal<Local, Bit>,
    minus_avail: Signal<Local, B32>,
    _bus: usize,
    _word: usize,
}

impl Dma {
    /// An engine for a bus of `bus_bytes` (a power of two, <= 32) and buffer
    /// words of `word_bytes` (1..=32) bytes.
    pub fn new(bus_bytes: usize, word_bytes: usize) -> Self {
        assert!(
            bus_bytes.is_power_of_two() && bus_bytes <= 32,
            "bus_bytes: a power of two <= 32"
        );
        assert!((1..=32).contains(&word_bytes), "word_bytes: 1..=32");
        let slots = bus_bytes + word_bytes - 1;
        let c = |v: usize| Constant::new((v as u64).into());
        let c8 = |v: usize| Constant::new((v as u64).into());
        Self {
            clock: Default::default(),
            start: Default::default(),
            is_store: Default::default(),
            cmd_addr: Default::default(),
            cmd_dram: Default::default(),
            cmd_rows: Default::default(),
            cmd_row_bytes: Default::default(),
            cmd_dram_stride: Default::default(),
            cmd_buf_stride: Default::default(),
            cmd_word: Default::default(),
            busy: Default::default(),
            done: Default::default(),
            buf_we: Default::default(),
            buf_waddr: Default::default(),
            buf_wdata: sig(word_bytes),
            buf_wlanes: sig(word_bytes),
            buf_raddr: Default::default(),
            buf_rdata: sig(word_bytes),
            mem_req_valid: Default::default(),
            mem_req_ready: Default::default(),
            mem_req_addr: Default::default(),
            mem_req_write: Default::default(),
            mem_req_data: sig(bus_bytes),
            mem_req_strobe: sig(bus_bytes),
            mem_resp_valid: Default::default(),
            mem_resp_ready: Default::default(),
            mem_resp_data: sig(bus_bytes),
            c_bus: c(bus_bytes),
            c_bus8: c8(bus_bytes),
            c_low: c(bus_bytes - 1),
            c_zero24: Constant::new(0u64.into()),
            c_align: Constant::new(((!(bus_bytes as u64 - 1)) & 0xffff_ffff).into()),
            c_zero: c(0),
            c_one16: Constant::new(1u64.into()),
            c_zero_rows: Constant::new(0u64.into()),
            c_one_rows: Constant::new(1u64.into()),
            c_zero8: Constant::new(0u64.into()),
            c_lane: (0..bus_bytes.max(word_bytes)).map(c8).collect(),
            busy_r: Default::default(),
            word8: Default::default(),
            unused_word_high: Default::default(),
            row_dram: Default::default(),
            rq_rows_left: Default::default(),
            rq_addr: Default::default(),
            in_rows_left: Default::default(),
            in_off: Default::default(),
            in_left: Default::default(),
            in_first: Default::default(),
            in_row_word: Default::default(),
            in_word: Default::default(),
            rd_valid: Default::default(),
            cnt: Default::default(),
            tail: Default::default(),
            pad: Default::default(),
            packer: Packer::new(slots, bus_bytes.max(word_bytes), bus_bytes.max(word_bytes)),
            out_word: Default::default(),
            out_beat: Default::default(),
            o: Default::default(),
            emit_want: Default::default(),
            emit: Default::default(),
            flush: Default::default(),
            base: Default::default(),
            lo: Default::default(),
            avail: Default::default(),
            count: Default::default(),
            row_last: Default::default(),
            accept: Default::default(),
            can_accept: Default::default(),
            place_base: Default::default(),
            next_row_word: Default::default(),
            rd_next: Default::default(),
            row_next: Default::default(),
            finish: Default::default(),
            offset: Default::default(),
            short: Default::default(),
            minus_avail: Default::default(),
            _bus: bus_bytes,
            _word: word_bytes,
        }
    }

    pub fn bus_bytes(&self) -> usize {
        self._bus
    }

    pub fn word_bytes(&self) -> usize {
        self._word
    }
}

impl Logic for Dma {
    #[hdl_gen]
    fn update(&mut self) {
        // Registers hold by default.
        dff_setup!(
            self,
            clock,
            busy_r,
            row_dram,
            rq_rows_left,
            rq_addr,
            in_rows_left,
            in_off,
            in_left,
            in_first,
            in_row_word,
            in_word,
            rd_valid,
            cnt,
            tail,
            pad,
            out_word,
            out_beat
        );
        self.packer.clock.next = self.clock.val();
        // Output side: emit the first `o` slots, or a row's complete tail.
        self.word8.next = self.cmd_word.val().get_bits::<8>(0);
        self.unused_word_high.next = self.cmd_word.val().get_bits::<24>(8);
        self.o.next = self.word8.val();
        if self.is_store.val() {
            self.o.next = self.c_bus8.val();
        }
        self.emit_want.next =
            (self.cnt.q.val() >= self.o.val()) || (self.tail.q.val() && (self.cnt.q.val() != self.c_zero8.val()));
        self.emit.next = self.emit_want.val() && (!self.is_store.val() || self.mem_req_ready.val());
        self.flush.next = self.emit.val() && self.tail.q.val() && (self.cnt.q.val() <= self.o.val());
        self.base.next = self.cnt.q.val();
        self.packer.drop.next = self.c_zero8.val();
        if self.emit.val() {
            self.base.next = self.cnt.q.val() - self.o.val();
            self.packer.drop.next = self.o.val();
        }
        if self.flush.val() {
            self.base.next = self.c_zero8.val();
        }
        // Input side: this cycle's item (a response beat or a buffer word).
        self.offset.next = self.in_off.low.val();
        self.lo.next = self.c_zero8.val();
        if !self.is_store.val() && self.in_first.q.val() {
            self.lo.next = self.offset.val();
        }
        self.avail.next = self.c_bus8.val() - self.lo.val();
        if self.is_store.val() {
            self.avail.next = self.word8.val();
        }
        // A load's `-avail` in 32 bits for `in_left`, without a subtractor:
        // `lo - bus_bytes` is `lo | !(bus_bytes - 1)`, as `lo < bus_bytes`.
        self.minus_avail.next = self.c_align.val();
        if self.in_first.q.val() {
            self.minus_avail.next = self.in_off.q.val() | self.c_align.val();
        }
        // The row's last item: the bytes left fit (count = min(in_left, avail)).
        // `in_left < 256` as its upper bits all zero: no comparator carry chain.
        self.short.next = self.in_left.q.val().get_bits::<24>(8) == self.c_zero24.val();
        self.row_last.next = self.short.val() && (self.in_left.low.val() <= self.avail.val());
        self.count.next = self.avail.val();
        if self.row_last.val() {
            self.count.next = self.in_left.low.val();
        }
        self.can_accept.next = self.busy_r.q.val()
            && (self.in_rows_left.q.val() != self.c_zero_rows.val())
            && (self.base.val() < self.o.val())
            && (!self.tail.q.val() || self.flush.val());
        self.accept.next = self.can_accept.val() && self.mem_resp_valid.val();
        if self.is_store.val() {
            self.accept.next = self.can_accept.val() && self.rd_valid.q.val();
        }
        self.mem_resp_ready.next = self.can_accept.val() && !self.is_store.val();
        // Append the item; a store row starts at its byte offset in the beat.
        self.place_base.next = self.base.val();
        if self.is_store.val() && self.in_first.q.val() {
            self.place_base.next = self.base.val() + self.offset.val();
        }
        self.packer.base.next = self.place_base.val();
        self.packer.lo.next = self.lo.val();
        for k in 0..self.packer.incoming.len() {
            self.packer.incoming[k].next = self.c_zero8.val();
        }
        for k in 0..self._bus {
            if !self.is_store.val() {
                self.packer.incoming[k].next = self.mem_resp_data[k].val();
            }
        }
        for k in 0..self._word {
            if self.is_store.val() {
                self.packer.incoming[k].next = self.buf_rdata[k].val();
            }
        }
        self.cnt.d.next = self.base.val();
        if self.accept.val() {
            self.cnt.d.next = self.place_base.val() + self.count.val();
        }
        // Queue flags.
        if self.flush.val() {
            self.tail.d.next = false;
        }
        if self.emit.val() {
            self.pad.d.next = self.c_zero8.val();
            self.out_word.d.next = self.out_word.q.val() + self.c_one16.val();
            self.out_beat.d.next = self.out_beat.q.val() + self.c_bus.val();
        }
        // Input bookkeeping, and the buffer word to read next (stores).
        self.row_next.next = self.row_dram.q.val() + self.cmd_dram_stride.val();
        self.next_row_word.next = self.in_row_word.q.val() + self.cmd_buf_stride.val();
        self.rd_next.next = self.in_word.q.val();
        self.rd_valid.d.next = self.busy_r.q.val();
        if self.accept.val() {
            self.tail.d.next = self.row_last.val();
            if self.in_first.q.val() {
                self.out_word.d.next = self.in_row_word.q.val();
                self.out_beat.d.next = self.row_dram.q.val() & self.c_align.val();
                self.pad.d.next = self.place_base.val();
            }
            if self.row_last.val() {
                self.in_rows_left.d.next = self.in_rows_left.q.val() - self.c_one_rows.val();
                self.in_off.d.next = (self.in_off.q.val() + self.cmd_dram_stride.val()) & self.c_low.val();
                if self.is_store.val() {
                    self.row_dram.d.next = self.row_next.val();
                }
                self.in_row_word.d.next = self.next_row_word.val();
                self.in_left.d.next = self.cmd_row_bytes.val();
                self.in_first.d.next = true;
                self.rd_next.next = self.next_row_word.val();
            } else {
                self.in_left.d.next = self.in_left.q.val() + self.minus_avail.val();
                if self.is_store.val() {
                    self.in_left.d.next = self.in_left.q.val() - self.cmd_word.val();
                }
                self.in_first.d.next = false;
                self.rd_next.next = self.in_word.q.val() + self.c_one16.val();
            }
        }
        self.in_word.d.next = self.rd_next.val();
        self.buf_raddr.next = self.rd_next.val();
        // Buffer writes (loads) and write beats (stores) come from the queue head.
        self.buf_we.next = self.emit.val() && !self.is_store.val();
        self.buf_waddr.next = self.out_word.q.val();
        for k in 0..self._word {
            self.buf_wdata[k].next = self.packer.slots[k].val();
            self.buf_wlanes[k].next =
                (self.cnt.q.val() > self.c_lane[k].val()) && (self.c_lane[k].val() < self.word8.val());
        }
        for k in 0..self._bus {
            self.mem_req_data[k].next = self.packer.slots[k].val();
            self.mem_req_strobe[k].next = self.is_store.val()
                && (self.cnt.q.val() > self.c_lane[k].val())
                && (self.pad.q.val() <= self.c_lane[k].val());
        }
        // Requests: write beats (stores) or the read-request generator (loads).
        self.mem_req_write.next = self.is_store.val();
        self.mem_req_valid.next = self.emit_want.val();
        self.mem_req_addr.next = self.out_beat.q.val();
        if !self.is_store.val() {
            self.mem_req_valid.next = self.busy_r.q.val() && (self.rq_rows_left.q.val() != self.c_zero_rows.val());
            self.mem_req_addr.next = self.rq_addr.q.val();
            if self.mem_req_valid.val() && self.mem_req_ready.val() {
                if (self.rq_addr.q.val() + self.c_bus.val()) < (self.row_dram.q.val() + self.cmd_row_bytes.val()) {
                    self.rq_addr.d.next = self.rq_addr.q.val() + self.c_bus.val();
                } else {
                    self.rq_rows_left.d.next = self.rq_rows_left.q.val() - self.c_one_rows.val();
                    self.row_dram.d.next = self.row_next.val();
                    self.rq_addr.d.next = self.row_next.val() & self.c_align.val();
                }
            }
        }
        // Finish once every row has entered the queue and the queue is empty.
        self.finish.next = self.busy_r.q.val()
            && (self.in_rows_left.q.val() == self.c_zero_rows.val())
            && ((self.cnt.q.val() == self.c_zero8.val()) || self.flush.val());
        self.done.next = self.finish.val();
        if self.finish.val() {
            self.busy_r.d.next = false;
        }
        self.busy.next = self.busy_r.q.val();
        // A new command (ignored while busy); zero-byte rows move nothing.
        if self.start.val() && !self.busy_r.q.val() {
            self.busy_r.d.next = true;
            self.rq_rows_left.d.next = self.cmd_rows.val();
            self.in_rows_left.d.next = self.cmd_rows.val();
            if self.cmd_row_bytes.val() == self.c_zero.val() {
                self.rq_rows_left.d.next = self.c_zero_rows.val();
                self.in_rows_left.d.next = self.c_zero_rows.val();
            }
            self.row_dram.d.next = self.cmd_dram.val();
            self.rq_addr.d.next = self.cmd_dram.val() & self.c_align.val();
            self.in_off.d.next = self.cmd_dram.val() & self.c_low.val();
            self.in_left.d.next = self.cmd_row_bytes.val();
            self.in_first.d.next = true;
            self.in_row_word.d.next = self.cmd_addr.val();
            self.in_word.d.next = self.cmd_addr.val();
            self.rd_valid.d.next = false;
            self.cnt.d.next = self.c_zero8.val();
            self.tail.d.next = false;
            self.pad.d.next = self.c_zero8.val();
        }
    }
}

/// The cycle model of a transfer is defined once, in the compiler (docs/isa.md §5);
/// the tests check that this engine takes exactly that many cycles.
pub use compiler::cycles::{transfer_cycles as dma_cycles, Transfer as Xfer};

/// A `Dma` as a standalone top module, for linting.
pub fn dma_verilog(bus_bytes: usize, word_bytes: usize) -> String {
    crate::verilog::top_verilog(Dma::new(bus_bytes, word_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SdpRam;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::collections::VecDeque;

    /// A `Dma` wired to an `SdpRam` buffer of `word <= ` the engine's word size
    /// (its first `word` lanes); the test drives the command and
    /// external-memory ports of `dma` directly.
    #[derive(LogicBlock)]
    struct Bench {
        clock: Signal<In, Clock>,
        dma: Dma,
        ram: SdpRam<Bits<8>>,
    }

    impl Bench {
        fn new(bus_bytes: usize, word_bytes: usize, depth: usize) -> Self {
            Self::sharing(bus_bytes, word_bytes, word_bytes, depth)
        }

        /// An engine of `engine_word` bytes serving a buffer of `word` bytes.
        fn sharing(bus_bytes: usize, engine_word: usize, word: usize, depth: usize) -> Self {
            let mut bench = Self {
                clock: Default::default(),
                dma: Dma::new(bus_bytes, engine_word),
                ram: SdpRam::new(word, depth),
            };
            bench.connect_all();
            bench
        }
    }

    impl Logic for Bench {
        #[hdl_gen]
        fn update(&mut self) {
            self.dma.clock.next = self.clock.val();
            self.ram.clock.next = self.clock.val();
            self.ram.write_enable.next = self.dma.buf_we.val();
            self.ram.write_address.next = self.dma.buf_waddr.val();
            self.ram.read_address.next = self.dma.buf_raddr.val();
            for k in 0..self.dma.buf_rdata.len() {
                self.dma.buf_rdata[k].next = 0u64.into();
            }
            for k in 0..self.ram.write_data.len() {
                self.ram.write_data[k].next = self.dma.buf_wdata[k].val();
                self.ram.write_lanes[k].next = self.dma.buf_wlanes[k].val();
                self.dma.buf_rdata[k].next = self.ram.read_data[k].val();
            }
        }
    }

    /// External memory: `bytes`, a read response `latency` cycles after its
    /// request (>= 1), at most one response beat per cycle, posted writes.
    struct ExtMem {
        bytes: Vec<u8>,
        latency: usize,
        /// (first cycle the beat may be returned, the beat)
        queue: VecDeque<(usize, Vec<u8>)>,
        /// Refuse requests at random (`req_ready` low) when set.
        stalls: Option<ChaCha8Rng>,
    }

    impl ExtMem {
        /// Drive the memory's outputs for cycle `t`.
        fn drive(&mut self, dma: &mut Dma, t: usize) {
            dma.mem_req_ready.next = self.stalls.as_mut().is_none_or(|r| r.gen_bool(0.7));
            let head = self.queue.front().filter(|(at, _)| *at <= t);
            dma.mem_resp_valid.next = head.is_some();
            if let Some((_, beat)) = head {
                for (k, &b) in beat.iter().enumerate() {
                    dma.mem_resp_data[k].next = (b as u64).into();
                }
            }
        }

        /// The handshakes of cycle `t` (at its closing edge).
        fn observe(&mut self, dma: &Dma, t: usize) {
            let bus = dma.bus_bytes();
            if dma.mem_resp_valid.val() && dma.mem_resp_ready.val() {
                self.queue.pop_front();
            }
            if !(dma.mem_req_valid.val() && dma.mem_req_ready.val()) {
                return;
            }
            let addr = dma.mem_req_addr.val().index();
            assert_eq!(addr % bus, 0, "unaligned beat address {addr:#x}");
            if dma.mem_req_write.val() {
                for k in (0..bus).filter(|&k| dma.mem_req_strobe[k].val()) {
                    self.bytes[addr + k] = dma.mem_req_data[k].val().index() as u8;
                }
            } else {
                let beat = (addr..addr + bus).map(|a| self.bytes.get(a).copied().unwrap_or(0));
                self.queue.push_back((t + self.latency, beat.collect()));
            }
        }
    }

    /// compiler::functional's `load` / `store`, transcribed (its buffers are
    /// private): row `i` between `dram + i*dram_stride` and buffer byte
    /// `(addr + i*buf_stride) * W`.
    fn reference(x: &Xfer, mem: &mut [u8], buf: &mut [u8], word: usize) {
        for i in 0..x.rows {
            let d = x.dram + i * x.dram_stride;
            let b = (x.addr + i * x.buf_stride) * word;
            let n = x.row_bytes;
            if x.store {
                mem[d..d + n].copy_from_slice(&buf[b..b + n]);
            } else {
                buf[b..b + n].copy_from_slice(&mem[d..d + n]);
            }
        }
    }

    /// Cycle `t`: memory outputs, settle with the clock low, handshakes, edge.
    fn cycle(bench: &mut Bench, mem: &mut ExtMem, t: usize) {
        mem.drive(&mut bench.dma, t);
        bench.clock.next = Clock { clk: false };
        assert!(simulate(bench, 200), "did not settle with the clock low");
        mem.observe(&bench.dma, t);
        bench.clock.next = Clock { clk: true };
        assert!(simulate(bench, 200), "did not settle after the edge");
    }

    /// Runs `x` from an idle engine; returns the cycles it occupied the unit
    /// (the start cycle through the last busy cycle).
    fn execute(bench: &mut Bench, mem: &mut ExtMem, x: &Xfer) -> usize {
        let d = &mut bench.dma;
        d.start.next = true;
        d.is_store.next = x.store;
        d.cmd_addr.next = (x.addr as u64).into();
        d.cmd_dram.next = (x.dram as u64).into();
        d.cmd_rows.next = (x.rows as u64).into();
        d.cmd_row_bytes.next = (x.row_bytes as u64).into();
        d.cmd_dram_stride.next = (x.dram_stride as u64).into();
        d.cmd_buf_stride.next = (x.buf_stride as u64).into();
        d.cmd_word.next = (bench.ram.lanes() as u64).into();
        for t in 0..100_000 {
            cycle(bench, mem, t);
            bench.dma.start.next = false;
            if !bench.dma.busy.val() {
                assert!(mem.queue.is_empty(), "responses left over: {x:?}");
                return t + 1;
            }
        }
        panic!("{x:?} did not finish");
    }

    /// A random instruction within a `mem_len`-byte memory and a buffer of
    /// `depth` words of `word` bytes: unaligned, odd lengths, any strides.
    fn random_xfer(rng: &mut ChaCha8Rng, mem_len: usize, depth: usize, word: usize) -> Xfer {
        let rows = rng.gen_range(1..=4);
        let row_bytes = rng.gen_range(1..=3 * word + 5);
        let buf_stride = rng.gen_range(0..=(row_bytes.div_ceil(word) + 1));
        let dram_stride = rng.gen_range(0..=row_bytes + 9);
        let (buf_span, mem_span) = ((rows - 1) * buf_stride, (rows - 1) * dram_stride + row_bytes);
        Xfer {
            store: rng.gen(),
            addr: rng.gen_range(0..depth - buf_span - row_bytes.div_ceil(word) + 1),
            dram: rng.gen_range(0..=mem_len - mem_span),
            rows,
            row_bytes,
            dram_stride,
            buf_stride,
        }
    }

    /// Checks the cycles of `x` against [`dma_cycles`] and its closed form.
    fn check_cycles(x: &Xfer, cycles: usize, bus: usize, word: usize, latency: usize) {
        assert_eq!(cycles, dma_cycles(x, bus, word, latency), "cycles of {x:?}");
        let words = x.row_bytes.div_ceil(word);
        let beats = |i: usize| ((x.dram + i * x.dram_stride) % bus + x.row_bytes).div_ceil(bus);
        let rows: usize = (0..x.rows).map(|i| beats(i).max(words)).sum();
        let fixed = if x.store { 3 } else { latency + 2 };
        assert!((fixed + rows..=fixed + rows + x.rows).contains(&cycles), "{x:?}");
    }

    /// Random loads and stores, back to back, against `reference`, comparing
    /// every byte of the memory and of the buffer after each, and (without
    /// `stalls`) the cycles against `dma_cycles`.
    fn random_transfers(bus: usize, word: usize, latency: usize, stalls: bool, seed: u64) {
        random_transfers_sharing(bus, word, word, latency, stalls, seed);
    }

    /// [`random_transfers`] for an engine of `engine_word` bytes serving a
    /// buffer of `word` bytes.
    fn random_transfers_sharing(bus: usize, engine_word: usize, word: usize, latency: usize, stalls: bool, seed: u64) {
        let (depth, mem_len, count) = (24, 160, 25);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut bench = Bench::sharing(bus, engine_word, word, depth);
        let mut buf: Vec<u8> = (0..depth * word).map(|_| rng.gen()).collect();
        for (i, &b) in buf.iter().enumerate() {
            bench.ram.poke(i / word, i % word, (b as u64).into());
        }
        let bytes = (0..mem_len).map(|_| rng.gen()).collect();
        let stalls = stalls.then(|| ChaCha8Rng::seed_from_u64(!seed));
        let mut mem = ExtMem {
            bytes,
            latency,
            queue: VecDeque::new(),
            stalls,
        };
        let mut expect = mem.bytes.clone();
        for _ in 0..count {
            let x = random_xfer(&mut rng, mem_len, depth, word);
            let cycles = execute(&mut bench, &mut mem, &x);
            reference(&x, &mut expect, &mut buf, word);
            assert_eq!(mem.bytes, expect, "memory after {x:?}");
            let got: Vec<u8> = (0..depth * word)
                .map(|i| bench.ram.peek(i / word, i % word).index() as u8)
                .collect();
            assert_eq!(got, buf, "buffer after {x:?}");
            if mem.stalls.is_none() {
                check_cycles(&x, cycles, bus, word, latency);
            }
        }
    }

    #[test]
    fn random_transfers_bus_1() {
        random_transfers(1, 3, 2, false, 1);
        random_transfers(1, 1, 1, true, 11);
    }

    #[test]
    fn random_transfers_bus_4() {
        random_transfers(4, 3, 3, false, 2);
        random_transfers(4, 4, 1, false, 3);
        random_transfers(4, 5, 2, true, 13);
    }

    #[test]
    fn random_transfers_bus_8() {
        random_transfers(8, 8, 5, false, 4);
        random_transfers(8, 2, 1, false, 5);
        random_transfers(8, 12, 4, true, 14);
    }

    /// One engine serving buffers of smaller words (the accelerator's load
    /// unit: activation, weight and parameter words), same data and cycles as
    /// an engine of the buffer's own word size.
    #[test]
    fn one_engine_serves_smaller_words() {
        random_transfers_sharing(8, 8, 3, 4, false, 21);
        random_transfers_sharing(4, 8, 5, 2, false, 22);
        random_transfers_sharing(8, 12, 8, 3, true, 23);
    }

    /// Rows longer than 255 bytes (the queue counts bytes in 8 bits; the
    /// 32-bit `in_left` decides the last item), unaligned, on buses 4 and 8.
    #[test]
    fn long_unaligned_rows() {
        for (bus, word, lat) in [(8, 8, 3), (4, 3, 2)] {
            let depth = 400;
            let mut bench = Bench::new(bus, word, depth);
            let bytes: Vec<u8> = (0..1400).map(|i| (i * 7 + 3) as u8).collect();
            let mut mem = ExtMem {
                bytes,
                latency: lat,
                queue: VecDeque::new(),
                stalls: None,
            };
            let mut expect = mem.bytes.clone();
            let mut buf = vec![0u8; depth * word];
            for (store, dram, row_bytes) in [(false, 5, 300), (true, 611, 300), (false, 3, 513), (true, 2, 513)] {
                let words = usize::div_ceil(row_bytes, word);
                let x = Xfer {
                    store,
                    addr: 1,
                    dram,
                    rows: 2,
                    row_bytes,
                    dram_stride: row_bytes + 1,
                    buf_stride: words,
                };
                let cycles = execute(&mut bench, &mut mem, &x);
                reference(&x, &mut expect, &mut buf, word);
                assert_eq!(mem.bytes, expect, "memory after {x:?}");
                let got: Vec<u8> = (0..depth * word)
                    .map(|i| bench.ram.peek(i / word, i % word).index() as u8)
                    .collect();
                assert_eq!(got, buf, "buffer after {x:?}");
                check_cycles(&x, cycles, bus, word, lat);
            }
        }
    }

    /// `rows == 0` or `row_bytes == 0` moves nothing and takes 2 cycles.
    #[test]
    fn empty_transfers_finish_at_once() {
        let mut bench = Bench::new(4, 4, 8);
        let mut mem = ExtMem {
            bytes: vec![7; 64],
            latency: 3,
            queue: VecDeque::new(),
            stalls: None,
        };
        for (rows, row_bytes, store) in [(0, 5, false), (3, 0, true), (0, 0, true)] {
            let x = Xfer {
                store,
                addr: 1,
                dram: 3,
                rows,
                row_bytes,
                dram_stride: 4,
                buf_stride: 1,
            };
            assert_eq!(execute(&mut bench, &mut mem, &x), 2);
            assert_eq!(dma_cycles(&x, 4, 4, 3), 2);
        }
        assert_eq!(mem.bytes, vec![7; 64]);
        assert!((0..8).all(|a| (0..4).all(|k| bench.ram.peek(a, k).index() == 0)));
    }

    /// The numbers of the report: docs/isa.md §5 says `mem_latency + rows *
    /// ceil(row_bytes / bus_bytes)`; the engine adds 2 (load) or 3 - L
    /// (store) and one beat per unaligned row that straddles one more beat.
    #[test]
    fn cycles_against_the_isa_formula() {
        let (bus, word, latency) = (8, 8, 4);
        for (dram, row_bytes, rows, dram_stride) in [(0, 16, 2, 16), (3, 16, 2, 16), (5, 5, 3, 9), (0, 64, 1, 0)] {
            for store in [false, true] {
                let x = Xfer {
                    store,
                    addr: 0,
                    dram,
                    rows,
                    row_bytes,
                    dram_stride,
                    buf_stride: 2,
                };
                let mut bench = Bench::new(bus, word, 64);
                let mut mem = ExtMem {
                    bytes: vec![0; 256],
                    latency,
                    queue: VecDeque::new(),
                    stalls: None,
                };
                let cycles = execute(&mut bench, &mut mem, &x);
                let isa = latency + rows * row_bytes.div_ceil(bus);
                println!("{x:?}: {cycles} cycles, isa.md {isa}");
                assert_eq!(cycles, dma_cycles(&x, bus, word, latency));
            }
        }
    }

    #[test]
    fn verilog_has_the_packer() {
        let v = dma_verilog(4, 3);
        assert!(v.contains("placed = (in_v >> {lo[2:0], 3'b000})"), "{v}");
    }

    /// SystemVerilog testbench around the engine's own Verilog (top): the
    /// memory model of `ExtMem` (latency `lat`, every request accepted), a
    /// buffer like `SdpRam` (registered read, byte-enabled write), the
    /// commands of `cmds.hex` one after another, then the memory compared
    /// with `want.hex`. The buffer is modelled here, not a rust-hdl parent:
    /// see the module notes on Verilator.
    fn verilator_testbench(bus: usize, word: usize, depth: usize, mem_len: usize, lat: usize, n: usize) -> String {
        let mut ports = String::new();
        for k in 0..bus {
            let (h, l) = (8 * k + 7, 8 * k);
            ports += &format!(
                ", .mem_req_data${k}(req_data[{h}:{l}]), .mem_req_strobe${k}(req_strobe[{k}]), .mem_resp_data${k}(resp_data[{h}:{l}])"
            );
        }
        for k in 0..word {
            let (h, l) = (8 * k + 7, 8 * k);
            ports += &format!(
                ", .buf_wdata${k}(wdata[{h}:{l}]), .buf_wlanes${k}(wlanes[{k}]), .buf_rdata${k}(rdata[{h}:{l}])"
            );
        }
        format!(
            r#"module tb;
  reg clock = 0, start = 0, is_store = 0, req_ready = 1, resp_valid = 0;
  reg [15:0] addr = 0, buf_stride = 0; reg [31:0] dram = 0, rows = 0, row_bytes = 0, dram_stride = 0;
  wire busy, done, req_valid, req_write, resp_ready, we; wire [31:0] req_addr; wire [15:0] waddr, raddr;
  wire [{bw}:0] req_data; wire [{b1}:0] req_strobe; reg [{bw}:0] resp_data = 0, rtmp = 0;
  wire [{ww}:0] wdata; wire [{w1}:0] wlanes; reg [{ww}:0] rdata = 0, rnext = 0;
  reg [7:0] ext [0:{m1}]; reg [7:0] want [0:{m1}]; reg [7:0] bufm [0:{d1}]; reg [223:0] cmds [0:{n1}];
  integer qt [0:4095]; integer qa [0:4095]; integer head = 0, tail = 0, t, i, k, errors = 0;
  top dut(.clock(clock), .start(start), .is_store(is_store), .cmd_addr(addr), .cmd_dram(dram),
    .cmd_rows(rows[15:0]), .cmd_row_bytes(row_bytes), .cmd_dram_stride(dram_stride), .cmd_buf_stride(buf_stride), .cmd_word(32'd{word}),
    .busy(busy), .done(done), .buf_we(we), .buf_waddr(waddr), .buf_raddr(raddr),
    .mem_req_valid(req_valid), .mem_req_ready(req_ready), .mem_req_addr(req_addr),
    .mem_req_write(req_write), .mem_resp_valid(resp_valid), .mem_resp_ready(resp_ready){ports});
  task cycle;
    begin
      resp_valid = (head < tail) && (qt[head] <= t);
      for (k = 0; k < {bus}; k = k + 1) rtmp[8*k +: 8] = resp_valid ? ext[qa[head] + k] : 8'd0;
      resp_data = rtmp; // whole-vector: Verilator 5.006 missed part-select writes to a port

      #1;
      if (resp_valid && resp_ready) head = head + 1;
      if (req_valid && req_ready) begin
        if (req_write) begin
          for (k = 0; k < {bus}; k = k + 1) if (req_strobe[k]) ext[req_addr + k] = req_data[8*k +: 8];
        end else begin
          qt[tail] = t + {lat}; qa[tail] = req_addr; tail = tail + 1;
        end
      end
      for (k = 0; k < {word}; k = k + 1) rnext[8*k +: 8] = bufm[(raddr % {depth}) * {word} + k];
      if (we) for (k = 0; k < {word}; k = k + 1) if (wlanes[k]) bufm[(waddr % {depth}) * {word} + k] = wdata[8*k +: 8];
      clock = 1; #1; clock = 0; start = 0; rdata = rnext;
    end
  endtask
  initial begin
    $readmemh("ext.hex", ext); $readmemh("want.hex", want); $readmemh("cmds.hex", cmds);
    for (k = 0; k <= {d1}; k = k + 1) bufm[k] = 0;
    #1;
    for (i = 0; i <= {n1}; i = i + 1) begin
      {{is_store, addr, dram, rows, row_bytes, dram_stride, buf_stride}} =
        {{cmds[i][192], cmds[i][175:160], cmds[i][159:128], cmds[i][127:96], cmds[i][95:64], cmds[i][63:32], cmds[i][15:0]}};
      start = 1;
      t = 0;
      cycle;
      while (busy) begin t = t + 1; cycle; end
      $display("CYCLES %0d %0d", i, t + 1);
    end
    for (k = 0; k <= {m1}; k = k + 1) if (ext[k] !== want[k]) errors = errors + 1;
    $display("COMPARED {mem_len} bytes, %0d mismatches", errors);
    $finish;
  end
endmodule
"#,
            b1 = bus - 1,
            bw = 8 * bus - 1,
            w1 = word - 1,
            ww = 8 * word - 1,
            d1 = depth * word - 1,
            m1 = mem_len - 1,
            n1 = n - 1,
        )
    }

    /// The generated Verilog of Dma + SdpRam in Verilator: a buffer fill,
    /// random loads and stores, then every byte of the memory and every
    /// instruction's cycles against the reference and `dma_cycles`.
    #[test]
    fn verilog_runs_random_transfers_in_verilator() {
        for (bus, word, lat, seed) in [(4, 3, 3, 77), (8, 8, 5, 78), (1, 2, 1, 79)] {
            verilator_random_transfers(bus, word, lat, seed);
        }
    }

    fn verilator_random_transfers(bus: usize, word: usize, lat: usize, seed: u64) {
        let (depth, mem_len) = (24, 200);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut mem: Vec<u8> = (0..mem_len).map(|_| rng.gen()).collect();
        let initial = mem.clone();
        let mut buf = vec![0u8; depth * word];
        let fill = Xfer {
            store: false,
            addr: 0,
            dram: 0,
            rows: depth,
            row_bytes: word,
            dram_stride: word,
            buf_stride: 1,
        };
        let mut xfers = vec![fill];
        xfers.extend((0..40).map(|_| random_xfer(&mut rng, mem_len, depth, word)));
        for x in &xfers {
            reference(x, &mut mem, &mut buf, word);
        }
        let hex = |v: &[u8]| v.iter().map(|b| format!("{b:02x}\n")).collect::<String>();
        let cmd = |x: &Xfer| {
            let f = [
                x.store as usize,
                x.addr,
                x.dram,
                x.rows,
                x.row_bytes,
                x.dram_stride,
                x.buf_stride,
            ];
            f.iter().map(|v| format!("{v:08x}")).collect::<String>() + "\n"
        };
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        write("top.v", dma_verilog(bus, word));
        write(
            "tb.sv",
            verilator_testbench(bus, word, depth, mem_len, lat, xfers.len()),
        );
        write("ext.hex", hex(&initial));
        write("want.hex", hex(&mem));
        write("cmds.hex", xfers.iter().map(cmd).collect());
        let Some(stdout) = crate::testing::run_testbench(dir.path(), &["tb.sv", "top.v"]) else {
            return;
        };
        for (i, x) in xfers.iter().enumerate() {
            let line = format!("CYCLES {i} {}\n", dma_cycles(x, bus, word, lat));
            assert!(stdout.contains(&line), "{x:?}: expected {line}{stdout}");
        }
        assert!(
            stdout.contains(&format!("COMPARED {mem_len} bytes, 0 mismatches")),
            "{stdout}"
        );
    }

    /// iCE40 resources of a 4-byte-bus engine for 4-byte words (yosys
    /// `synth_ice40`): printed for the record, bounded against regressions.
    #[test]
    fn ice40_resources() {
        for (bus, word) in [(4, 4), (8, 8)] {
            let Some(stat) = crate::memory::tests::ice40_stat(&dma_verilog(bus, word)) else {
                return;
            };
            let luts = crate::memory::tests::cells(&stat, "SB_LUT4");
            println!("bus {bus}, word {word}: {luts} LUT4\n{stat}");
            assert!(luts < 2400, "{luts} LUTs");
        }
    }

    #[test]
    fn verilog_lints_clean() {
        for (bus, word) in [(1, 3), (4, 4), (8, 2), (8, 8)] {
            crate::testing::assert_lints_clean(&dma_verilog(bus, word));
        }
    }
}
