//! The board wrapper around the accelerator: clock (the oscillator, or an iCE40
//! PLL to the target frequency), reset (power-on, PLL lock and the board's
//! button), the UART host bridge (`verilog/host_bridge.v`, protocol in
//! docs/boards.md) and an LED lit while a run is in progress; plus the pin
//! constraints in the board's own format.

use compiler::hw::HwConfig;
use hdl::controller::INSN_USED_BYTES;
use thiserror::Error;

use crate::board::{Board, Family};
use crate::pll::{Ice40Pll, PllError};

/// The UART bridge and its receiver and transmitter.
pub const HOST_BRIDGE_VERILOG: &str = include_str!("../verilog/host_bridge.v");
/// The wrapper's module name.
pub const BOARD_TOP: &str = "board_top";
/// Default UART speed: 1 Mbaud divides 12, 25 and 100 MHz exactly and every
/// board's FTDI bridge supports it.
pub const DEFAULT_BAUD: u32 = 1_000_000;
/// Largest baud-rate error a UART link tolerates comfortably (receivers
/// sample mid-bit, so ~5% breaks a frame; stay well below).
const MAX_BAUD_ERROR: f64 = 0.02;

#[derive(Debug, Error, PartialEq)]
pub enum TopError {
    #[error("board {board}: {source}")]
    Pll { board: String, source: PllError },
    #[error("board {board}: the target clock must be its {clock_mhz} MHz oscillator (no PLL support for {family:?} here), not {target_mhz} MHz")]
    NoPll {
        board: String,
        family: Family,
        clock_mhz: f64,
        target_mhz: f64,
    },
    #[error("--baud {baud}: {clock_mhz} MHz / {baud} is {clocks_per_bit:.2} clocks per bit, {error_percent:.1}% off an integer divider (at most 2%, and at least 4 clocks per bit)")]
    Baud {
        baud: u32,
        clock_mhz: f64,
        clocks_per_bit: f64,
        error_percent: f64,
    },
}

/// How the wrapper clocks the accelerator.
#[derive(Debug, Clone, PartialEq)]
pub enum ClockPlan {
    /// The oscillator drives the design directly.
    Direct {
        mhz: f64,
    },
    Ice40Pll(Ice40Pll),
}

impl ClockPlan {
    /// The frequency the design runs at.
    pub fn mhz(&self) -> f64 {
        match self {
            ClockPlan::Direct { mhz } => *mhz,
            ClockPlan::Ice40Pll(pll) => pll.achieved_mhz,
        }
    }

    /// The plan that runs `board` at `target_mhz`.
    pub fn for_board(board: &Board, target_mhz: f64) -> Result<Self, TopError> {
        if (target_mhz - board.clock_mhz).abs() < 1e-9 {
            return Ok(ClockPlan::Direct { mhz: board.clock_mhz });
        }
        match board.family {
            Family::Ice40 => Ice40Pll::for_target(board.clock_mhz, target_mhz)
                .map(ClockPlan::Ice40Pll)
                .map_err(|source| TopError::Pll {
                    board: board.name.to_string(),
                    source,
                }),
            family => Err(TopError::NoPll {
                board: board.name.to_string(),
                family,
                clock_mhz: board.clock_mhz,
                target_mhz,
            }),
        }
    }
}

/// Everything the board flow synthesizes besides the accelerator itself.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardTop {
    /// `board_top` and the host bridge (the accelerator's module `top` is separate).
    pub verilog: String,
    /// Pin constraints, in the format [`constraints_extension`] names.
    pub constraints: String,
    pub clock: ClockPlan,
    pub clocks_per_bit: u32,
    pub baud: u32,
}

impl BoardTop {
    pub fn new(board: &Board, hw: &HwConfig, target_mhz: f64, baud: u32) -> Result<Self, TopError> {
        let clock = ClockPlan::for_board(board, target_mhz)?;
        let clocks_per_bit = clocks_per_bit(clock.mhz(), baud)?;
        let verilog = format!(
            "{}\n{HOST_BRIDGE_VERILOG}",
            wrapper_verilog(board, hw, &clock, clocks_per_bit)
        );
        Ok(BoardTop {
            verilog,
            constraints: constraints(board, clock.mhz()),
            clock,
            clocks_per_bit,
            baud,
        })
    }
}

/// The UART divider for `baud` at `clock_mhz`, refused when inexact.
pub fn clocks_per_bit(clock_mhz: f64, baud: u32) -> Result<u32, TopError> {
    let exact = clock_mhz * 1e6 / f64::from(baud);
    let rounded = exact.round();
    let error = (exact - rounded).abs() / exact;
    if rounded < 4.0 || error > MAX_BAUD_ERROR {
        return Err(TopError::Baud {
            baud,
            clock_mhz,
            clocks_per_bit: exact,
            error_percent: 100.0 * error,
        });
    }
    Ok(rounded as u32)
}

/// File extension of a family's constraint format.
pub fn constraints_extension(family: Family) -> &'static str {
    match family {
        Family::Ice40 => "pcf",
        Family::Ecp5 => "lpf",
        Family::Xilinx7 => "xdc",
    }
}

/// The wrapper's ports, each with its board pin.
fn port_pins(board: &Board) -> [(&'static str, &'static str); 5] {
    let p = board.pins;
    [
        ("clk_pin", p.clock),
        ("uart_rx_pin", p.uart_rx),
        ("uart_tx_pin", p.uart_tx),
        ("reset_n_pin", p.reset_n),
        ("led_pin", p.led),
    ]
}

fn constraints(board: &Board, clock_mhz: f64) -> String {
    let pins = port_pins(board);
    let mut text = format!(
        "# divqat board wrapper for {}: pins of the board's own constraint file\n",
        board.name
    );
    for (port, pin) in pins {
        text += &match board.family {
            Family::Ice40 => format!("set_io {port} {pin}\n"),
            Family::Ecp5 => {
                format!("LOCATE COMP \"{port}\" SITE \"{pin}\";\nIOBUF PORT \"{port}\" IO_TYPE=LVCMOS33;\n")
            }
            Family::Xilinx7 => {
                format!("set_property -dict {{PACKAGE_PIN {pin} IOSTANDARD LVCMOS33}} [get_ports {port}]\n")
            }
        };
    }
    let period_ns = 1e3 / board.clock_mhz;
    text += &match board.family {
        // nextpnr-ice40 takes the frequency from --freq.
        Family::Ice40 => String::new(),
        Family::Ecp5 => format!("FREQUENCY PORT \"clk_pin\" {clock_mhz} MHZ;\n"),
        Family::Xilinx7 => format!("create_clock -period {period_ns:.3} [get_ports clk_pin]\n"),
    };
    text
}

fn wrapper_verilog(board: &Board, hw: &HwConfig, clock: &ClockPlan, clocks_per_bit: u32) -> String {
    let clocking = match clock {
        ClockPlan::Direct { .. } => "assign clock = clk_pin;\nassign locked = 1'b1;\n".to_string(),
        ClockPlan::Ice40Pll(pll) => pll.verilog("clk_pin", "clock", "locked"),
    };
    let led = if board.pins.led_active_low {
        "!running"
    } else {
        "running"
    };
    format!(
        "// Generated by divqat for board {name} ({device}); see docs/boards.md.
module {BOARD_TOP} (
  input wire clk_pin,
  input wire uart_rx_pin,
  output wire uart_tx_pin,
  input wire reset_n_pin,
  output wire led_pin
);
wire clock;
wire locked;
{clocking}
// Reset for 16 cycles after configuration (flip-flops start at 0) and while the PLL
// is unlocked or the button is held. It resets the bridge; the accelerator has no
// reset and is idle after configuration.
reg [1:0] button_sync;
reg [4:0] reset_count;
always @(posedge clock) begin
  button_sync <= {{button_sync[0], reset_n_pin}};
  if (!locked || !button_sync[1]) reset_count <= 5'd0;
  else if (!reset_count[4]) reset_count <= reset_count + 5'd1;
end
wire reset = !reset_count[4];
wire running;
assign led_pin = {led};
{bridge}
{accelerator}
endmodule
",
        name = board.name,
        device = board.device,
        bridge = bridge_instance(hw, clocks_per_bit),
        accelerator = accelerator_instance(hw),
    )
}

fn bridge_instance(hw: &HwConfig, clocks_per_bit: u32) -> String {
    let bus = hw.bus_bytes;
    format!(
        "wire acc_start;
wire acc_done;
wire [31:0] acc_cycles;
wire [7:0] acc_status;
wire ins_req_valid, ins_req_ready, ins_resp_valid, ins_resp_ready;
wire [31:0] ins_req_index;
wire [{insn_bits}:0] ins_resp_data;
wire rd_req_valid, rd_req_ready, rd_resp_valid, rd_resp_ready;
wire [31:0] rd_req_addr;
wire [{bus_bits}:0] rd_resp_data;
wire wr_req_valid, wr_req_ready;
wire [31:0] wr_req_addr;
wire [{bus_bits}:0] wr_req_data;
wire [{strobe_bits}:0] wr_req_strobe;
divqat_host_bridge #(
  .CLKS_PER_BIT({clocks_per_bit}),
  .BUS_BYTES({bus}),
  .INSN_BYTES({INSN_USED_BYTES})
) bridge (
  .clock(clock), .reset(reset), .uart_rx(uart_rx_pin), .uart_tx(uart_tx_pin),
  .acc_start(acc_start), .acc_done(acc_done), .acc_cycles(acc_cycles), .acc_status(acc_status),
  .ins_req_valid(ins_req_valid), .ins_req_ready(ins_req_ready), .ins_req_index(ins_req_index),
  .ins_resp_valid(ins_resp_valid), .ins_resp_ready(ins_resp_ready), .ins_resp_data(ins_resp_data),
  .rd_req_valid(rd_req_valid), .rd_req_ready(rd_req_ready), .rd_req_addr(rd_req_addr),
  .rd_resp_valid(rd_resp_valid), .rd_resp_ready(rd_resp_ready), .rd_resp_data(rd_resp_data),
  .wr_req_valid(wr_req_valid), .wr_req_ready(wr_req_ready), .wr_req_addr(wr_req_addr),
  .wr_req_data(wr_req_data), .wr_req_strobe(wr_req_strobe),
  .running(running)
);",
        insn_bits = 8 * INSN_USED_BYTES - 1,
        bus_bits = 8 * bus - 1,
        strobe_bits = bus - 1,
    )
}

/// The accelerator (module `top`, docs/rtl.md "Top-level ports"); instruction
/// bytes past `INSN_USED_BYTES` are padding (docs/isa.md) and tied to zero.
fn accelerator_instance(hw: &HwConfig) -> String {
    let byte = |port: &str, k: usize, signal: &str| format!("  .{port}${k}({signal}[{}:{}]),\n", 8 * k + 7, 8 * k);
    let mut ports = String::new();
    for k in 0..compiler::isa::INSTRUCTION_BYTES {
        ports += &if k < INSN_USED_BYTES {
            byte("ins_resp_data", k, "ins_resp_data")
        } else {
            format!("  .ins_resp_data${k}(8'd0),\n")
        };
    }
    for k in 0..hw.bus_bytes {
        ports += &byte("rd_resp_data", k, "rd_resp_data");
        ports += &byte("wr_req_data", k, "wr_req_data");
        ports += &format!("  .wr_req_strobe${k}(wr_req_strobe[{k}]),\n");
    }
    let ports = ports.trim_end_matches(",\n");
    format!(
        "/* verilator lint_off PINCONNECTEMPTY */
top accelerator (
  .clock(clock), .start(acc_start), .busy(), .done(acc_done), .cycles(acc_cycles),
  .status(acc_status), .retired_load(), .retired_exec(), .retired_store(),
  .ins_req_valid(ins_req_valid), .ins_req_ready(ins_req_ready), .ins_req_index(ins_req_index),
  .ins_resp_valid(ins_resp_valid), .ins_resp_ready(ins_resp_ready),
  .rd_req_valid(rd_req_valid), .rd_req_ready(rd_req_ready), .rd_req_addr(rd_req_addr),
  .rd_resp_valid(rd_resp_valid), .rd_resp_ready(rd_resp_ready),
  .wr_req_valid(wr_req_valid), .wr_req_ready(wr_req_ready), .wr_req_addr(wr_req_addr),
{ports}
);
/* verilator lint_on PINCONNECTEMPTY */"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uart_divider_is_exact_or_refused() {
        assert_eq!(clocks_per_bit(12.0, 1_000_000), Ok(12));
        assert_eq!(clocks_per_bit(25.0, 1_000_000), Ok(25));
        assert_eq!(clocks_per_bit(12.0, 115_200), Ok(104)); // 0.16% off
        let err = clocks_per_bit(12.0, 5_000_000).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--baud 5000000: 12 MHz / 5000000 is 2.40 clocks per bit"),
            "{err}"
        );
    }

    #[test]
    fn icebreaker_runs_from_its_oscillator_and_alchitry_through_the_pll() {
        let hw = HwConfig::preset(2, 2).unwrap();
        let ice = Board::by_name("icebreaker").unwrap();
        let top = BoardTop::new(ice, &hw, ice.target_mhz, DEFAULT_BAUD).unwrap();
        assert_eq!(top.clock, ClockPlan::Direct { mhz: 12.0 });
        assert!(
            top.constraints.contains("set_io uart_rx_pin 6\n"),
            "{}",
            top.constraints
        );
        assert!(!top.verilog.contains("SB_PLL40_CORE"));
        let cu = Board::by_name("alchitry-cu").unwrap();
        let top = BoardTop::new(cu, &hw, 25.0, DEFAULT_BAUD).unwrap();
        assert!(matches!(top.clock, ClockPlan::Ice40Pll(_)));
        assert!(top.verilog.contains("SB_PLL40_CORE"));
        assert_eq!(top.clocks_per_bit, 25);
    }

    #[test]
    fn ecp5_without_pll_refuses_another_clock() {
        let ulx3s = Board::by_name("ulx3s").unwrap();
        let err = BoardTop::new(ulx3s, &HwConfig::preset(2, 2).unwrap(), 50.0, DEFAULT_BAUD).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("board ulx3s: the target clock must be its 25 MHz oscillator"),
            "{err}"
        );
        let top = BoardTop::new(ulx3s, &HwConfig::preset(2, 2).unwrap(), 25.0, DEFAULT_BAUD).unwrap();
        assert!(top.constraints.contains("LOCATE COMP \"uart_tx_pin\" SITE \"L4\";"));
    }
}
