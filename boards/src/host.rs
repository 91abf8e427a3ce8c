//! The host side of the board's UART bridge (verilog/host_bridge.v, protocol in
//! docs/boards.md): starts a run and serves the accelerator's instruction fetches,
//! reads and writes from the program and the memory image held here, until the
//! board reports `done`. Works over any byte stream: a serial port, or the
//! stdin/stdout of a simulated board.

use std::io::{Read, Write};

use compiler::cycles::transfer_beats;
use compiler::isa::{Instruction, Op, INSTRUCTION_BYTES};
use hdl::controller::INSN_USED_BYTES;
use serde::Serialize;
use thiserror::Error;

const CHAR_START: u8 = b'S';
const CHAR_INS: u8 = b'I';
const CHAR_READ: u8 = b'R';
const CHAR_WRITE: u8 = b'W';
const CHAR_DONE: u8 = b'D';

#[derive(Debug, Error)]
pub enum HostError {
    #[error("board link: {0}")]
    Io(#[from] std::io::Error),
    #[error("board link: unexpected byte 0x{byte:02x} where a request was due (wrong baud rate, or not a divqat bitstream?)")]
    Protocol { byte: u8 },
    #[error("the board accessed {bytes} bytes at address {addr:#x}, outside the {len}-byte memory image")]
    AddressOutOfRange { addr: u32, bytes: usize, len: usize },
}

/// What one run exchanged, and what the board reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    /// The accelerator's cycle counter at `done`.
    pub cycles: u32,
    pub status: u8,
    pub fetches: u64,
    pub reads: u64,
    pub writes: u64,
    /// Bytes over the link in each direction.
    pub bytes_to_board: u64,
    pub bytes_from_board: u64,
}

/// Bytes on the link for one run: what [`serve_run`] moves, per request kind.
pub fn link_bytes(bus_bytes: usize, fetches: u64, reads: u64, writes: u64) -> u64 {
    let strobe_bytes = bus_bytes.div_ceil(8) as u64;
    let (bus, insn) = (bus_bytes as u64, INSN_USED_BYTES as u64);
    1 + fetches * (5 + insn) + reads * (5 + bus) + writes * (5 + strobe_bytes + bus) + 6
}

/// The requests one run of `program` makes over the link: one fetch per
/// instruction (plus the few the controller fetches past `end`, not counted),
/// and the bus beats of its loads and stores; so the link-bound speed can be
/// predicted without a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LinkTraffic {
    pub fetches: u64,
    pub reads: u64,
    pub writes: u64,
    pub bytes: u64,
}

impl LinkTraffic {
    pub fn of_program(program: &[Instruction], bus_bytes: usize) -> Self {
        let beats = |store: bool| -> u64 {
            program
                .iter()
                .filter(|i| matches!(i.op, Op::Store { .. }) == store)
                .map(|i| transfer_beats(&i.op, bus_bytes))
                .sum()
        };
        let (fetches, reads, writes) = (program.len() as u64, beats(false), beats(true));
        LinkTraffic {
            fetches,
            reads,
            writes,
            bytes: link_bytes(bus_bytes, fetches, reads, writes),
        }
    }

    /// Runs per second a UART at `baud` (8N1: 10 bits a byte) can carry.
    pub fn runs_per_second(&self, baud: u32) -> f64 {
        f64::from(baud) / 10.0 / self.bytes as f64
    }
}

/// Runs the program once on the board behind `from_board` / `to_board`, serving
/// `program` (encoded, 64 bytes per instruction) and `memory` (updated by the
/// board's writes).
pub fn serve_run(
    from_board: &mut impl Read,
    to_board: &mut impl Write,
    bus_bytes: usize,
    program: &[u8],
    memory: &mut [u8],
) -> Result<RunSummary, HostError> {
    let mut run = RunSummary::default();
    send(to_board, &[CHAR_START], &mut run)?;
    loop {
        let tag = read_array::<1>(from_board, &mut run)?[0];
        match tag {
            CHAR_INS => {
                let index = u32::from_le_bytes(read_array(from_board, &mut run)?);
                // The controller fetches ahead and may ask for a few instructions
                // past `end` (it drops them): zeros, as in `sim::Memory`.
                let at = index as usize * INSTRUCTION_BYTES;
                let zeros = [0u8; INSN_USED_BYTES];
                let bytes = program.get(at..at + INSN_USED_BYTES).unwrap_or(&zeros);
                send(to_board, bytes, &mut run)?;
                run.fetches += 1;
            }
            CHAR_READ => {
                let addr = u32::from_le_bytes(read_array(from_board, &mut run)?);
                let len = memory.len();
                let bytes =
                    memory
                        .get(addr as usize..addr as usize + bus_bytes)
                        .ok_or(HostError::AddressOutOfRange {
                            addr,
                            bytes: bus_bytes,
                            len,
                        })?;
                send(to_board, bytes, &mut run)?;
                run.reads += 1;
            }
            CHAR_WRITE => {
                let addr = u32::from_le_bytes(read_array(from_board, &mut run)?);
                let mut strobe = vec![0u8; bus_bytes.div_ceil(8)];
                read_exact(from_board, &mut strobe, &mut run)?;
                let mut data = vec![0u8; bus_bytes];
                read_exact(from_board, &mut data, &mut run)?;
                let len = memory.len();
                let target =
                    memory
                        .get_mut(addr as usize..addr as usize + bus_bytes)
                        .ok_or(HostError::AddressOutOfRange {
                            addr,
                            bytes: bus_bytes,
                            len,
                        })?;
                for (k, byte) in data.iter().enumerate() {
                    if strobe[k / 8] >> (k % 8) & 1 == 1 {
                        target[k] = *byte;
                    }
                }
                run.writes += 1;
            }
            CHAR_DONE => {
                run.status = read_array::<1>(from_board, &mut run)?[0];
                run.cycles = u32::from_le_bytes(read_array(from_board, &mut run)?);
                return Ok(run);
            }
            byte => return Err(HostError::Protocol { byte }),
        }
    }
}

fn send(to_board: &mut impl Write, bytes: &[u8], run: &mut RunSummary) -> Result<(), HostError> {
    to_board.write_all(bytes)?;
    to_board.flush()?;
    run.bytes_to_board += bytes.len() as u64;
    Ok(())
}

fn read_exact(from_board: &mut impl Read, buf: &mut [u8], run: &mut RunSummary) -> Result<(), HostError> {
    from_board.read_exact(buf)?;
    run.bytes_from_board += buf.len() as u64;
    Ok(())
}

fn read_array<const N: usize>(from_board: &mut impl Read, run: &mut RunSummary) -> Result<[u8; N], HostError> {
    let mut buf = [0u8; N];
    read_exact(from_board, &mut buf, run)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted board: what it says, and what it should hear back.
    fn run_script(board_says: &[u8], program: &[u8], memory: &mut [u8]) -> (Result<RunSummary, HostError>, Vec<u8>) {
        let mut heard = Vec::new();
        let result = serve_run(&mut &board_says[..], &mut heard, 4, program, memory);
        (result, heard)
    }

    #[test]
    fn serves_fetches_reads_and_strobed_writes() {
        let mut program = vec![0u8; 2 * INSTRUCTION_BYTES];
        program[INSTRUCTION_BYTES..INSTRUCTION_BYTES + INSN_USED_BYTES].fill(7);
        let mut memory: Vec<u8> = (0..16).collect();
        let mut says = vec![CHAR_INS, 1, 0, 0, 0, CHAR_READ, 4, 0, 0, 0];
        says.extend([CHAR_WRITE, 8, 0, 0, 0, 0b0101, 0xa0, 0xa1, 0xa2, 0xa3]);
        says.extend([CHAR_DONE, 0, 0x34, 0x12, 0, 0]);
        let (run, heard) = run_script(&says, &program, &mut memory);
        let run = run.unwrap();
        let mut expected = vec![CHAR_START];
        expected.extend([7u8; INSN_USED_BYTES]);
        expected.extend([4, 5, 6, 7]);
        assert_eq!(heard, expected);
        assert_eq!(&memory[8..12], &[0xa0, 9, 0xa2, 11]);
        assert_eq!(
            (run.cycles, run.status, run.fetches, run.reads, run.writes),
            (0x1234, 0, 1, 1, 1)
        );
        assert_eq!(run.bytes_from_board, says.len() as u64);
        assert_eq!(run.bytes_to_board + run.bytes_from_board, link_bytes(4, 1, 1, 1));
    }

    #[test]
    fn fetches_past_the_end_are_zeros_and_bad_requests_are_errors() {
        let program = vec![1u8; INSTRUCTION_BYTES];
        let mut memory = vec![0u8; 8];
        // Past the program's end: zeros, like sim::Memory.
        let (run, heard) = run_script(&[CHAR_INS, 1, 0, 0, 0], &program, &mut memory);
        assert!(matches!(run, Err(HostError::Io(_))), "the script ends there");
        assert_eq!(heard[1..], [0u8; INSN_USED_BYTES]);
        let (run, _) = run_script(&[CHAR_READ, 6, 0, 0, 0], &program, &mut memory);
        assert_eq!(
            run.unwrap_err().to_string(),
            "the board accessed 4 bytes at address 0x6, outside the 8-byte memory image"
        );
        let (run, _) = run_script(&[0xff], &program, &mut memory);
        assert!(matches!(run, Err(HostError::Protocol { byte: 0xff })));
        let (run, _) = run_script(&[CHAR_DONE, 0], &program, &mut memory);
        assert!(matches!(run, Err(HostError::Io(_))), "a cut link is an I/O error");
    }
}
