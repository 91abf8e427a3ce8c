//! The board wrapper end to end: the iCEBreaker's `board_top` (UART bridge around
//! the accelerator) Verilated with a testbench that turns its UART pins into this
//! process's pipes, driven by the host driver `boards::host::serve_run` exactly as a
//! serial port would be. The logits must equal the integer reference.

use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::process::{Command, Stdio};

use boards::host::{link_bytes, serve_run, LinkTraffic};
use boards::top::{BoardTop, BOARD_TOP};
use boards::Board;
use compiler::isa::encode;
use compiler::lower::compile;
use compiler::{synthetic, Reference};

/// A fast line for simulation: 4 clocks per bit at the iCEBreaker's 12 MHz.
const SIM_BAUD: u32 = 3_000_000;

fn tool_present(tool: &str) -> bool {
    let present = Command::new(tool).arg("--version").output().is_ok();
    if !present {
        println!("SKIPPED: {tool} not found on PATH; run scripts/setup.sh");
    }
    present
}

/// Builds the Verilated board into `dir` and returns the executable.
fn build_board(dir: &Path, accelerator: &str, top: &BoardTop) -> std::path::PathBuf {
    std::fs::write(dir.join("accelerator.v"), accelerator).unwrap();
    std::fs::write(dir.join("board_top.v"), &top.verilog).unwrap();
    let testbench = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/board_sim.cpp");
    let status = Command::new("verilator")
        .current_dir(dir)
        .args([
            "--cc",
            "--exe",
            "--build",
            "-j",
            "2",
            "-Wno-fatal",
            "-Wno-lint",
            "-Wno-style",
        ])
        .args(["--top-module", BOARD_TOP, "-Mdir", "obj", "-o", "board_sim"])
        .args(["-CFLAGS".to_string(), format!("-DCLKS_PER_BIT={}", top.clocks_per_bit)])
        .args(["accelerator.v", "board_top.v"])
        .arg(testbench)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "verilator build failed");
    dir.join("obj/board_sim")
}

#[test]
fn host_runs_a_model_through_the_simulated_board_uart() {
    if !tool_present("verilator") {
        return;
    }
    let board = Board::by_name("icebreaker").unwrap();
    let (model, mut hw) = synthetic::random_layer_case(3, 8, 6);
    hw.bus_bytes = 4;
    let compiled = compile(&model, &hw).unwrap();
    let top = BoardTop::new(board, &hw, board.target_mhz, SIM_BAUD).unwrap();
    assert_eq!(top.clocks_per_bit, 4);
    let dir = tempfile::tempdir().unwrap();
    let executable = build_board(dir.path(), &hdl::accelerator_verilog(&hw), &top);

    let program = encode(&compiled.program);
    let reference = Reference::new(model.clone());
    for seed in 0..2u8 {
        let image: Vec<u8> = (0..model.input.elements())
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect();
        let mut memory = compiled.memory_with_input(&image);
        let mut child = Command::new(&executable)
            .arg("100000000")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut to_board = BufWriter::new(child.stdin.take().unwrap());
        let mut from_board = BufReader::new(child.stdout.take().unwrap());
        let run = serve_run(&mut from_board, &mut to_board, hw.bus_bytes, &program, &mut memory).unwrap();
        drop(to_board);
        assert!(child.wait().unwrap().success());
        assert_eq!(run.status, 0);
        assert_eq!(compiled.read_logits(&memory), reference.logits(&image), "image {seed}");
        assert_eq!(
            run.bytes_to_board + run.bytes_from_board,
            link_bytes(hw.bus_bytes, run.fetches, run.reads, run.writes)
        );
        let predicted = LinkTraffic::of_program(&compiled.program, hw.bus_bytes);
        assert_eq!((run.reads, run.writes), (predicted.reads, predicted.writes), "{run:?}");
        let prefetched = run.fetches - predicted.fetches;
        assert!(prefetched <= hw.fetch_depth as u64, "{run:?}");
        println!("image {seed}: {run:?}");
    }
}
