//! The external memory of the co-simulation (docs/rtl.md, "Memory the cycle model
//! assumes"): a byte array behind the accelerator's read and write channels, and the
//! program behind its instruction port. Pure Rust; [`crate::harness`] connects it to
//! the Verilated design.
//!
//! # Timing
//!
//! - **read channel**: accepts one request per cycle; `rd_req_ready` is high unless
//!   the response queue is full. A request accepted at the edge that closes cycle
//!   `t` has its beat (the `bus_bytes` bytes at its address, read at acceptance)
//!   valid from cycle `t + mem_latency` on; beats leave in request order, one per
//!   cycle, each held until a cycle with `rd_resp_ready` high. This is the memory of
//!   `hdl::Dma`'s tests and of `compiler::cycles::transfer_cycles`.
//! - **write channel**: always ready; a request writes the bytes whose strobe is set,
//!   at the edge that accepts it (posted: no response).
//! - **instruction port**: like the read channel with the same latency; a request for
//!   instruction `index` returns the 64 bytes at `64 * index` of the encoded program,
//!   zeros past its end (an out-of-range fetch is the controller's business).
//!
//! The response queues are sized so that they never throttle a correct requester:
//! [`read_queue_capacity`] is the most reads one `load` can have outstanding
//! (`hdl::Dma` issues a whole instruction's reads without waiting for responses)
//! plus the beats in flight.
//!
//! # One cycle
//!
//! The handshake rules (hdl/src/dma.rs) are: a transfer happens at a rising edge where
//! valid and ready are both high; the accelerator's valids and payloads come from
//! registers; its `rd_resp_ready` may depend combinationally on `rd_req_ready`; no
//! `ready` depends on a `valid`. The memory's outputs in cycle `t` are functions of
//! its state alone, so each cycle is:
//!
//! 1. **drive**: set the memory's outputs for cycle `t` ([`Memory::rd_req_ready`],
//!    [`Memory::rd_resp`], [`Memory::ins_req_ready`], [`Memory::ins_resp`];
//!    `wr_req_ready` is always high);
//! 2. **settle**: evaluate the design with the clock low, so its combinational
//!    outputs (e.g. `rd_resp_ready`) see those inputs;
//! 3. **sample** the accelerator's outputs and apply the cycle's handshakes to the
//!    memory ([`Memory::accept_read`], [`Memory::pop_read`], [`Memory::write`],
//!    [`Memory::accept_fetch`], [`Memory::pop_fetch`]), all decided from values
//!    sampled in step 3 and the memory's outputs of step 1;
//! 4. **edge**: the rising clock edge (the design samples the same inputs), then
//!    [`Memory::advance`] to cycle `t + 1`.
//!
//! Order inside step 3 does not matter: every decision uses the memory's outputs of
//! step 1 (a request accepted in cycle `t` can never be answered in cycle `t`, as
//! `mem_latency >= 1`).

use std::collections::VecDeque;

use compiler::hw::MAX_BUS_BYTES;
use compiler::isa::{Instruction, Op, INSTRUCTION_BYTES};

/// A beat of the read channel.
pub type Beat = [u8; MAX_BUS_BYTES];

/// The first access the memory refused: a write outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteFault {
    pub cycle: u64,
    pub addr: u64,
    /// Size of the memory in bytes.
    pub size: usize,
}

/// Counts of what the memory did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    pub reads: u64,
    pub writes: u64,
    pub fetches: u64,
    /// Cycles in which a read request was refused because the queue was full.
    pub read_stalls: u64,
    /// Most responses queued or in flight at once.
    pub peak_read_queue: usize,
}

/// External memory, read/write channels and instruction port (see the module docs).
#[derive(Debug, Clone)]
pub struct Memory {
    /// The memory's contents.
    pub bytes: Vec<u8>,
    program: Vec<u8>,
    bus_bytes: usize,
    latency: u64,
    now: u64,
    /// (first cycle the beat may be returned, the beat), in request order.
    reads: VecDeque<(u64, Beat)>,
    read_capacity: usize,
    /// (first cycle the instruction may be returned, its index), in request order.
    fetches: VecDeque<(u64, u32)>,
    fetch_capacity: usize,
    fault: Option<WriteFault>,
    stats: MemoryStats,
}

/// The most reads a `load` of `program` can have outstanding: `rows *
/// (ceil(row_bytes / bus_bytes) + 1)` beats (an unaligned row straddles one more),
/// plus the `mem_latency + 1` beats in flight.
pub fn read_queue_capacity(program: &[Instruction], bus_bytes: usize, mem_latency: usize) -> usize {
    let most = program
        .iter()
        .map(|ins| match ins.op {
            Op::Load { rows, row_bytes, .. } => rows as usize * ((row_bytes as usize).div_ceil(bus_bytes) + 1),
            _ => 0,
        })
        .max()
        .unwrap_or(0);
    most + mem_latency + 1
}

impl Memory {
    /// A memory holding `bytes` and the encoded `program` (`compiler::isa::encode`),
    /// with `bus_bytes`-byte beats (1 to [`MAX_BUS_BYTES`]), responses `mem_latency`
    /// (>= 1) cycles after acceptance, and room for `read_capacity` queued reads.
    pub fn new(bytes: Vec<u8>, program: Vec<u8>, bus_bytes: usize, mem_latency: usize, read_capacity: usize) -> Self {
        assert!(
            (1..=MAX_BUS_BYTES).contains(&bus_bytes),
            "bus of {bus_bytes} bytes (1 to {MAX_BUS_BYTES})"
        );
        assert!(mem_latency >= 1, "a memory latency of at least one cycle");
        assert!(read_capacity >= 1, "room for at least one read");
        Memory {
            bytes,
            program,
            bus_bytes,
            latency: mem_latency as u64,
            now: 0,
            reads: VecDeque::with_capacity(read_capacity),
            read_capacity,
            fetches: VecDeque::with_capacity(mem_latency + 1),
            // One fetch a cycle, each answered after `mem_latency`: never full.
            fetch_capacity: mem_latency + 1,
            fault: None,
            stats: MemoryStats::default(),
        }
    }

    /// The current cycle (cycles since [`Memory::new`]).
    pub fn cycle(&self) -> u64 {
        self.now
    }

    pub fn bus_bytes(&self) -> usize {
        self.bus_bytes
    }

    pub fn stats(&self) -> MemoryStats {
        self.stats
    }

    /// The first write outside the memory, if any (it was dropped).
    pub fn fault(&self) -> Option<WriteFault> {
        self.fault
    }

    /// Whether the read channel accepts a request this cycle.
    pub fn rd_req_ready(&self) -> bool {
        self.reads.len() < self.read_capacity
    }

    /// The response beat valid this cycle, if any (`bus_bytes` bytes).
    pub fn rd_resp(&self) -> Option<&[u8]> {
        self.reads
            .front()
            .filter(|(due, _)| *due <= self.now)
            .map(|(_, beat)| &beat[..self.bus_bytes])
    }

    /// The read request `addr` is accepted in this cycle (`rd_req_ready` was high).
    pub fn accept_read(&mut self, addr: u64) {
        debug_assert!(self.rd_req_ready(), "read accepted while the queue is full");
        let mut beat = [0u8; MAX_BUS_BYTES];
        for (k, byte) in beat[..self.bus_bytes].iter_mut().enumerate() {
            *byte = usize::try_from(addr + k as u64)
                .ok()
                .and_then(|a| self.bytes.get(a))
                .copied()
                .unwrap_or(0);
        }
        self.reads.push_back((self.now + self.latency, beat));
        self.stats.reads += 1;
        self.stats.peak_read_queue = self.stats.peak_read_queue.max(self.reads.len());
    }

    /// A read request was refused this cycle (valid while not ready).
    pub fn refuse_read(&mut self) {
        self.stats.read_stalls += 1;
    }

    /// The valid response beat was taken in this cycle (`rd_resp_ready` was high).
    pub fn pop_read(&mut self) {
        debug_assert!(self.rd_resp().is_some(), "read response taken while none is valid");
        self.reads.pop_front();
    }

    /// A write accepted in this cycle: byte `k` of `data` goes to `addr + k` where
    /// `strobe` bit `k` is set. A byte outside the memory is dropped and recorded as
    /// the [`Memory::fault`].
    pub fn write(&mut self, addr: u64, data: &[u8], strobe: u64) {
        self.stats.writes += 1;
        for (k, &byte) in data.iter().enumerate().filter(|(k, _)| strobe >> k & 1 != 0) {
            let at = addr + k as u64;
            match usize::try_from(at).ok().and_then(|a| self.bytes.get_mut(a)) {
                Some(slot) => *slot = byte,
                None => {
                    self.fault.get_or_insert(WriteFault {
                        cycle: self.now,
                        addr: at,
                        size: self.bytes.len(),
                    });
                }
            }
        }
    }

    /// Whether the instruction port accepts a request this cycle.
    pub fn ins_req_ready(&self) -> bool {
        self.fetches.len() < self.fetch_capacity
    }

    /// The instruction valid on the instruction port this cycle, if any: its index
    /// and its 64 bytes.
    pub fn ins_resp(&self) -> Option<(u32, [u8; INSTRUCTION_BYTES])> {
        let &(due, index) = self.fetches.front()?;
        if due > self.now {
            return None;
        }
        let mut bytes = [0u8; INSTRUCTION_BYTES];
        let start = index as usize * INSTRUCTION_BYTES;
        if let Some(ins) = self.program.get(start..start + INSTRUCTION_BYTES) {
            bytes.copy_from_slice(ins);
        }
        Some((index, bytes))
    }

    /// The request for instruction `index` is accepted in this cycle.
    pub fn accept_fetch(&mut self, index: u32) {
        debug_assert!(self.ins_req_ready(), "fetch accepted while the queue is full");
        self.fetches.push_back((self.now + self.latency, index));
        self.stats.fetches += 1;
    }

    /// The valid instruction was taken in this cycle.
    pub fn pop_fetch(&mut self) {
        self.fetches.pop_front();
    }

    /// The clock edge: on to the next cycle.
    pub fn advance(&mut self) {
        self.now += 1;
    }

    /// The memory's contents.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(latency: usize, capacity: usize) -> Memory {
        let bytes = (0..256).map(|i| i as u8).collect();
        let program = (0..2 * INSTRUCTION_BYTES)
            .map(|i| (i / INSTRUCTION_BYTES + 1) as u8)
            .collect();
        Memory::new(bytes, program, 4, latency, capacity)
    }

    /// Requests `addrs` back to back (one per cycle) with the response side always
    /// ready or never; returns (cycle, first byte) of each beat returned.
    fn stream(mem: &mut Memory, addrs: &[u64], resp_ready: impl Fn(u64) -> bool, cycles: u64) -> Vec<(u64, u8)> {
        let mut next = 0;
        let mut got = Vec::new();
        for _ in 0..cycles {
            let t = mem.cycle();
            let ready = mem.rd_req_ready();
            let resp = mem.rd_resp().map(|b| b[0]);
            if let Some(first) = resp.filter(|_| resp_ready(t)) {
                got.push((t, first));
                mem.pop_read();
            }
            if next < addrs.len() {
                if ready {
                    mem.accept_read(addrs[next]);
                    next += 1;
                } else {
                    mem.refuse_read();
                }
            }
            mem.advance();
        }
        got
    }

    #[test]
    fn a_read_answers_exactly_latency_cycles_after_acceptance() {
        for latency in [1, 2, 5] {
            let mut mem = memory(latency, 16);
            assert!(mem.rd_resp().is_none());
            mem.accept_read(8);
            for _ in 0..latency {
                assert!(mem.rd_resp().is_none(), "early at cycle {}", mem.cycle());
                mem.advance();
            }
            assert_eq!(mem.rd_resp(), Some(&[8u8, 9, 10, 11][..]), "latency {latency}");
            // Held until taken.
            mem.advance();
            mem.advance();
            assert_eq!(mem.rd_resp(), Some(&[8u8, 9, 10, 11][..]));
            mem.pop_read();
            assert!(mem.rd_resp().is_none());
        }
    }

    #[test]
    fn back_to_back_reads_return_one_beat_per_cycle_in_order() {
        let mut mem = memory(3, 16);
        let got = stream(&mut mem, &[0, 40, 4, 200], |_| true, 12);
        assert_eq!(got, [(3, 0), (4, 40), (5, 4), (6, 200)]);
        assert_eq!(mem.stats().reads, 4);
    }

    #[test]
    fn reads_past_the_end_are_zero() {
        let mut mem = memory(1, 4);
        mem.accept_read(254);
        mem.advance();
        assert_eq!(mem.rd_resp(), Some(&[254u8, 255, 0, 0][..]));
        mem.pop_read();
        mem.accept_read(u64::from(u32::MAX));
        mem.advance();
        assert_eq!(mem.rd_resp(), Some(&[0u8; 4][..]));
    }

    #[test]
    fn a_full_queue_refuses_requests_until_responses_are_taken() {
        let mut mem = memory(2, 3);
        // The requester takes no responses before cycle 10.
        let got = stream(&mut mem, &[0, 4, 8, 12, 16], |t| t >= 10, 16);
        // Three requests fill the queue (cycles 0-2); the 4th is refused in cycles
        // 3-10 (in cycle 10 a beat leaves, but ready was decided from the queue at the
        // start of the cycle) and accepted at 11, the 5th at 12.
        assert_eq!(got, [(10, 0), (11, 4), (12, 8), (13, 12), (14, 16)]);
        assert_eq!(mem.stats().read_stalls, 8);
        assert_eq!(mem.stats().peak_read_queue, 3);
    }

    #[test]
    fn responses_wait_while_resp_ready_is_low() {
        let mut mem = memory(1, 8);
        let got = stream(&mut mem, &[0, 4], |t| t % 3 == 0, 10);
        // Valid from cycles 1 and 2; taken at cycles 3 and 6.
        assert_eq!(got, [(3, 0), (6, 4)]);
    }

    #[test]
    fn writes_honour_strobes_and_record_faults() {
        let mut mem = memory(1, 4);
        mem.write(16, &[0xa0, 0xa1, 0xa2, 0xa3], 0b1010);
        assert_eq!(&mem.bytes[16..20], &[16, 0xa1, 18, 0xa3]);
        assert_eq!(mem.fault(), None);
        mem.advance();
        mem.write(254, &[1, 2, 3, 4], 0b0111);
        assert_eq!(&mem.bytes[254..], &[1, 2]);
        assert_eq!(
            mem.fault(),
            Some(WriteFault {
                cycle: 1,
                addr: 256,
                size: 256
            })
        );
        // A write with no strobes writes nothing, even outside the memory.
        let mut clean = memory(1, 4);
        clean.write(1 << 40, &[1, 2, 3, 4], 0);
        assert_eq!(clean.fault(), None);
        // A read after an accepted write sees it.
        mem.accept_read(16);
        mem.advance();
        assert_eq!(mem.rd_resp(), Some(&[16u8, 0xa1, 18, 0xa3][..]));
    }

    #[test]
    fn the_instruction_port_serves_the_program_with_the_same_latency() {
        let mut mem = memory(2, 4);
        assert!(mem.ins_req_ready());
        mem.accept_fetch(1);
        mem.advance();
        mem.accept_fetch(0);
        mem.advance();
        let (index, bytes) = mem.ins_resp().expect("fetch 1 due");
        assert_eq!((index, bytes[0], bytes[63]), (1, 2, 2));
        mem.pop_fetch();
        assert!(mem.ins_resp().is_none(), "the second fetch is due next cycle");
        mem.advance();
        mem.accept_fetch(7);
        let (index, bytes) = mem.ins_resp().unwrap();
        assert_eq!((index, bytes[0]), (0, 1));
        mem.pop_fetch();
        mem.advance();
        mem.advance();
        let (index, bytes) = mem.ins_resp().unwrap();
        assert_eq!((index, bytes), (7, [0; INSTRUCTION_BYTES]), "past the program: zeros");
        assert_eq!(mem.stats().fetches, 3);
    }

    #[test]
    fn the_fetch_queue_never_fills_at_one_request_per_cycle() {
        let mut mem = memory(4, 1);
        for i in 0..20 {
            assert!(mem.ins_req_ready(), "cycle {i}");
            if mem.ins_resp().is_some() {
                mem.pop_fetch();
            }
            mem.accept_fetch(i);
            mem.advance();
        }
    }

    #[test]
    fn read_capacity_covers_the_largest_load() {
        let load = |rows, row_bytes| {
            Instruction::new(Op::Load {
                buffer: 0,
                addr: 0,
                dram: 0,
                rows,
                row_bytes,
                dram_stride: 0,
                buf_stride: 0,
            })
        };
        let program = [load(2, 17), load(10, 3), Instruction::new(Op::End {})];
        // max(2 * (3 + 1), 10 * (1 + 1)) + 32 + 1
        assert_eq!(read_queue_capacity(&program, 8, 32), 20 + 33);
        assert_eq!(read_queue_capacity(&[], 8, 1), 2);
    }
}
