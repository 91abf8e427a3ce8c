//! Board descriptions: the FPGA on each board, its resources and its clock.
//!
//! Resource numbers are the device datasheets' totals:
//! - iCE40 UltraPlus UP5K (Lattice FPGA-DS-02008): 5280 LUT4 logic cells (one
//!   FF each), 8 SB_MAC16 DSPs, 30 EBR of 4 Kbit, 4 SPRAM of 256 Kbit.
//! - iCE40 HX8K (Lattice DS1040): 7680 LUT4 logic cells (one FF each), no
//!   DSP, 32 EBR of 4 Kbit, no SPRAM.
//! - ECP5 LFE5U-85F (Lattice FPGA-DS-02012): 83,640 LUT4 (two LUT4 + two FF
//!   per slice), 156 18x18 multipliers, 208 EBR (DP16KD) of 18 Kbit.
//! - Artix-7 XC7A35T (Xilinx DS180): 20,800 LUT6, 41,600 FF, 90 DSP48E1,
//!   50 RAMB36 of 36 Kbit.
//!
//! Clock pins are the boards' oscillator pins: iCEBreaker 12 MHz on pin 35,
//! Alchitry Cu 100 MHz on P7, ULX3S 25 MHz on G2, Arty A7 100 MHz on E3.

use serde::Serialize;
use thiserror::Error;

/// FPGA family; decides the synthesis flow and the primitive cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ice40,
    Ecp5,
    Xilinx7,
}

impl Family {
    /// Inputs per LUT: the unit of [`Resources::lut`].
    pub fn lut_inputs(self) -> u32 {
        match self {
            Family::Ice40 | Family::Ecp5 => 4,
            Family::Xilinx7 => 6,
        }
    }
}

/// What one FPGA offers. Block counts are in the family's own primitive
/// (SB_RAM40_4K / DP16KD / RAMB36E1 for block RAM; SB_MAC16 / MULT18X18D /
/// DSP48E1 for DSP), the same units a synthesis report counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Resources {
    /// LUTs of [`Family::lut_inputs`] inputs.
    pub lut: u64,
    pub ff: u64,
    pub dsp: u64,
    pub bram_blocks: u64,
    pub bram_block_bits: u64,
    /// Single-port RAM blocks (SB_SPRAM256KA, UP5K only).
    pub spram_blocks: u64,
    pub spram_block_bits: u64,
}

impl Resources {
    /// Total block-RAM capacity in bits.
    pub fn bram_bits(&self) -> u64 {
        self.bram_blocks * self.bram_block_bits
    }

    /// Total single-port RAM capacity in bits.
    pub fn spram_bits(&self) -> u64 {
        self.spram_blocks * self.spram_block_bits
    }
}

/// One development board.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Board {
    pub name: &'static str,
    /// Device name as the place-and-route tool spells it ("up5k", "hx8k", ...).
    pub device: &'static str,
    pub package: &'static str,
    pub family: Family,
    pub resources: Resources,
    /// Frequency of the board's oscillator.
    pub clock_mhz: f64,
    pub clock_pin: &'static str,
    /// Whether the open flow here can place and route it (nextpnr-ice40);
    /// otherwise only synthesis resource estimates are available.
    pub place_and_route: bool,
}

const EBR_4K_BITS: u64 = 4096;
const SPRAM_256K_BITS: u64 = 256 * 1024;

/// Every known board.
pub static BOARDS: [Board; 4] = [
    Board {
        name: "icebreaker",
        device: "up5k",
        package: "sg48",
        family: Family::Ice40,
        resources: Resources {
            lut: 5280,
            ff: 5280,
            dsp: 8,
            bram_blocks: 30,
            bram_block_bits: EBR_4K_BITS,
            spram_blocks: 4,
            spram_block_bits: SPRAM_256K_BITS,
        },
        clock_mhz: 12.0,
        clock_pin: "35",
        place_and_route: true,
    },
    Board {
        name: "alchitry-cu",
        device: "hx8k",
        package: "cb132",
        family: Family::Ice40,
        resources: Resources {
            lut: 7680,
            ff: 7680,
            dsp: 0,
            bram_blocks: 32,
            bram_block_bits: EBR_4K_BITS,
            spram_blocks: 0,
            spram_block_bits: 0,
        },
        clock_mhz: 100.0,
        clock_pin: "P7",
        place_and_route: true,
    },
    Board {
        name: "ulx3s",
        device: "85k",
        package: "CABGA381",
        family: Family::Ecp5,
        resources: Resources {
            lut: 83_640,
            ff: 83_640,
            dsp: 156,
            bram_blocks: 208,
            bram_block_bits: 18 * 1024,
            spram_blocks: 0,
            spram_block_bits: 0,
        },
        clock_mhz: 25.0,
        clock_pin: "G2",
        place_and_route: false,
    },
    Board {
        name: "arty-a7-35",
        device: "xc7a35t",
        package: "csg324",
        family: Family::Xilinx7,
        resources: Resources {
            lut: 20_800,
            ff: 41_600,
            dsp: 90,
            bram_blocks: 50,
            bram_block_bits: 36 * 1024,
            spram_blocks: 0,
            spram_block_bits: 0,
        },
        clock_mhz: 100.0,
        clock_pin: "E3",
        place_and_route: false,
    },
];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BoardError {
    #[error("unknown board {name:?}; valid boards: {}", valid.join(", "))]
    UnknownBoard { name: String, valid: Vec<String> },
}

impl Board {
    /// All known boards.
    pub fn all() -> &'static [Board] {
        &BOARDS
    }

    /// Looks a board up by its exact name.
    pub fn by_name(name: &str) -> Result<&'static Board, BoardError> {
        BOARDS
            .iter()
            .find(|board| board.name == name)
            .ok_or_else(|| BoardError::UnknownBoard {
                name: name.to_string(),
                valid: BOARDS.iter().map(|board| board.name.to_string()).collect(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_board_by_name() {
        for board in Board::all() {
            assert_eq!(Board::by_name(board.name).unwrap(), board);
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = Board::all().iter().map(|b| b.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Board::all().len());
    }

    #[test]
    fn unknown_board_lists_valid_names() {
        let err = Board::by_name("icebraker").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown board \"icebraker\"; valid boards: icebreaker, alchitry-cu, ulx3s, arty-a7-35"
        );
    }

    #[test]
    fn icebreaker_matches_the_up5k_datasheet() {
        let board = Board::by_name("icebreaker").unwrap();
        assert_eq!((board.device, board.package, board.clock_pin), ("up5k", "sg48", "35"));
        assert_eq!(board.clock_mhz, 12.0);
        let r = board.resources;
        assert_eq!(
            (r.lut, r.ff, r.dsp, r.bram_blocks, r.spram_blocks),
            (5280, 5280, 8, 30, 4)
        );
        assert_eq!(r.bram_bits(), 120 * 1024);
        assert_eq!(r.spram_bits(), 1024 * 1024); // 128 KB
    }

    #[test]
    fn only_ice40_boards_place_and_route() {
        for board in Board::all() {
            assert_eq!(board.place_and_route, board.family == Family::Ice40, "{}", board.name);
        }
    }

    #[test]
    fn serializes_to_json() {
        let json = serde_json::to_value(Board::by_name("alchitry-cu").unwrap()).unwrap();
        assert_eq!(json["family"], "ice40");
        assert_eq!(json["device"], "hx8k");
        assert_eq!(json["resources"]["bram_blocks"], 32);
        assert_eq!(json["place_and_route"], true);
    }
}
