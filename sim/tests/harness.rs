//! The co-simulation harness (`sim::Rtl`): first on a small hand-written stand-in
//! for the accelerator (a beat copier with the top-level ports of docs/rtl.md), which
//! pins the harness's handshakes, timing and errors; then on the real accelerator.
//! Every test skips (with a note) when Verilator is not installed.

use std::time::Instant;

use compiler::isa::{Instruction, Op};
use compiler::lower::Compiled;
use sim::{BuildOptions, Rtl, RtlOptions, SimError};

mod common;
use common::verilator_present;

/// A stand-in accelerator with the ports of docs/rtl.md and a `bus`-byte bus. On
/// `start` it fetches instruction 0 and reads its `load` fields as: copy `rows` beats
/// from `dram` to `dram_stride`, except byte `bus - 1` of each beat (its strobe is
/// low). Reads are issued back to back; responses are taken only in even cycles
/// (back-pressure); each beat is written in the cycle after it arrives. An opcode
/// other than 1 sets `status` to 1 and stops (the harness must time out).
/// `retired_load` counts beats read, `retired_store` beats written, `retired_exec`
/// becomes 1 at `done`.
fn copier_verilog(bus: usize) -> String {
    let mut ports = vec![
        "clock",
        "start",
        "busy",
        "done",
        "cycles",
        "status",
        "retired_load",
        "retired_exec",
        "retired_store",
        "ins_req_valid",
        "ins_req_ready",
        "ins_req_index",
        "ins_resp_valid",
        "ins_resp_ready",
        "rd_req_valid",
        "rd_req_ready",
        "rd_req_addr",
        "rd_resp_valid",
        "rd_resp_ready",
        "wr_req_valid",
        "wr_req_ready",
        "wr_req_addr",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    let mut decl = String::new();
    for k in 0..64 {
        ports.push(format!("ins_resp_data${k}"));
        decl += &format!("input wire [7:0] ins_resp_data${k};\n");
    }
    let mut latch = String::new();
    for k in 0..bus {
        ports.extend([
            format!("rd_resp_data${k}"),
            format!("wr_req_data${k}"),
            format!("wr_req_strobe${k}"),
        ]);
        decl += &format!(
            "input wire [7:0] rd_resp_data${k};\noutput reg [7:0] wr_req_data${k};\noutput wire wr_req_strobe${k};\nassign wr_req_strobe${k} = {};\n",
            u8::from(k + 1 != bus)
        );
        latch += &format!("        wr_req_data${k} <= rd_resp_data${k};\n");
    }
    let field = |lo: usize, n: usize| {
        (lo..lo + n)
            .rev()
            .map(|k| format!("ins_resp_data${k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "module top({ports});
input wire clock; input wire start;
output wire busy; output reg done; output reg [31:0] cycles; output reg [7:0] status;
output reg [31:0] retired_load; output reg [31:0] retired_exec; output reg [31:0] retired_store;
output wire ins_req_valid; input wire ins_req_ready; output wire [31:0] ins_req_index;
input wire ins_resp_valid; output wire ins_resp_ready;
output wire rd_req_valid; input wire rd_req_ready; output reg [31:0] rd_req_addr;
input wire rd_resp_valid; output wire rd_resp_ready;
output reg wr_req_valid; input wire wr_req_ready; output reg [31:0] wr_req_addr;
{decl}
reg [2:0] state; reg [31:0] issued; reg [31:0] count; reg [31:0] written;
initial begin state = 0; done = 0; cycles = 0; status = 0; retired_load = 0; retired_exec = 0;
  retired_store = 0; rd_req_addr = 0; wr_req_valid = 0; wr_req_addr = 0; issued = 0; count = 0; written = 0; end
assign busy = state != 0;
assign ins_req_valid = state == 1;
assign ins_req_index = 0;
assign ins_resp_ready = state == 2;
assign rd_req_valid = state == 3 && issued < count;
assign rd_resp_ready = state == 3 && !cycles[0];
always @(posedge clock) begin
  done <= 0;
  if (state != 0 && state != 5) cycles <= cycles + 1;
  if (wr_req_valid && wr_req_ready) begin
    wr_req_valid <= 0; wr_req_addr <= wr_req_addr + {bus}; written <= written + 1; retired_store <= retired_store + 1;
  end
  case (state)
    0: if (start) begin state <= 1; cycles <= 1; retired_load <= 0; retired_exec <= 0; retired_store <= 0; end
    1: if (ins_req_ready) state <= 2;
    2: if (ins_resp_valid) begin
         if ({{{op}}} != 8'd1) begin status <= 1; state <= 5; end
         else begin
           rd_req_addr <= {{{src}}}; count <= {{16'd0, {n}}}; wr_req_addr <= {{{dst}}};
           issued <= 0; written <= 0; state <= 3;
         end
       end
    3: begin
         if (rd_req_valid && rd_req_ready) begin rd_req_addr <= rd_req_addr + {bus}; issued <= issued + 1; end
         if (rd_resp_valid && rd_resp_ready) begin
{latch}           wr_req_valid <= 1; retired_load <= retired_load + 1;
         end
         if (written == count && !wr_req_valid && issued == count) begin state <= 4; end
       end
    4: begin done <= 1; retired_exec <= 1; state <= 0; end
    default: ;
  endcase
end
endmodule
",
        ports = ports.join(", "),
        op = field(0, 1),
        src = field(17, 4),
        n = field(21, 2),
        dst = field(27, 4),
    )
}

/// A compiled model (any: the copier ignores all but the memory size) whose program
/// is one `load` the copier reads as "copy `beats` beats from `src` to `dst`".
fn copy_program(src: u32, dst: u32, beats: u16) -> Compiled {
    let model = compiler::synthetic::small_cnn([1, 28, 28], 10, compiler::synthetic::Precision::W8A8, 0).unwrap();
    let mut compiled = compiler::lower::compile(&model, &compiler::hw::HwConfig::preset(2, 2).unwrap()).unwrap();
    compiled.program = vec![
        Instruction::new(Op::Load {
            buffer: 0,
            addr: 0,
            dram: src,
            rows: beats,
            row_bytes: 0,
            dram_stride: dst,
            buf_stride: 0,
        }),
        Instruction::new(Op::End {}),
    ];
    compiled
}

#[test]
fn the_harness_drives_a_stand_in_through_every_port() -> Result<(), SimError> {
    if !verilator_present() {
        return Ok(());
    }
    let beats = 40u16;
    let compiled = copy_program(0x100, 0x1000, beats);
    let (bus, latency) = (compiled.hw.bus_bytes, compiled.hw.mem_latency as u64);
    let options = RtlOptions {
        trace_instructions: true,
        ..Default::default()
    };
    let rtl = Rtl::from_verilog(compiled.clone(), &copier_verilog(bus), options)?;
    let image: Vec<u8> = (0..784).map(|i| (i * 7 % 251) as u8).collect();
    let run = rtl.run_image(&image)?;

    // The input image is packed into memory exactly as the functional model does it.
    let mut expected = compiled.memory.clone();
    let packed = compiler::lower::layout::pack_input(&image, &compiled.layout, compiled.hw.rows);
    let base = compiled.input().base;
    expected[base..base + packed.len()].copy_from_slice(&packed);
    for beat in 0..beats as usize {
        for k in 0..bus - 1 {
            expected[0x1000 + beat * bus + k] = expected[0x100 + beat * bus + k];
        }
    }
    assert!(run.memory == expected, "copied beats, strobes honoured");
    assert_eq!(run.memory_stats.reads, u64::from(beats));
    assert_eq!(run.memory_stats.writes, u64::from(beats));
    assert_eq!(run.memory_stats.fetches, 1);
    assert_eq!(run.memory_stats.read_stalls, 0);

    // Timing: start (cycle 0), fetch request (1), response after `latency` cycles;
    // reads from the cycle after; responses taken in even cycles only.
    println!(
        "copier: {} cycles, {} ticks, {:?}",
        run.cycles, run.ticks, run.memory_stats
    );
    assert_eq!(run.ticks, run.cycles + 1, "cycles counts from the cycle after start");
    let first_response = 1 + latency + 1 + latency;
    assert!(
        run.cycles >= first_response + 2 * u64::from(beats) - 2,
        "{}",
        run.cycles
    );
    assert!(
        run.cycles <= first_response + 2 * u64::from(beats) + 4,
        "{}",
        run.cycles
    );
    let ends = run.instruction_end.as_ref().expect("traced");
    // The load retired its (first) count increment; `end` (exec) at done.
    assert!(ends[0] > first_response && ends[0] < run.cycles, "{ends:?}");
    assert_eq!(ends[1], run.cycles, "{ends:?}");
    Ok(())
}

#[test]
fn a_stuck_design_times_out_naming_the_status() -> Result<(), SimError> {
    if !verilator_present() {
        return Ok(());
    }
    let mut compiled = copy_program(0, 64, 1);
    compiled.program[0] = Instruction::new(Op::End {}); // opcode 7: the copier stops.
    let options = RtlOptions {
        timeout_cycles: Some(5_000),
        ..Default::default()
    };
    let rtl = Rtl::from_verilog(compiled.clone(), &copier_verilog(compiled.hw.bus_bytes), options)?;
    let started = Instant::now();
    let err = rtl.run_image(&[0; 784]).unwrap_err();
    assert!(started.elapsed().as_secs() < 10);
    let text = err.to_string();
    assert!(matches!(err, SimError::Timeout { status: 1, .. }), "{text}");
    assert!(
        text.contains("timeout of 5000 cycles") && text.contains("status 1"),
        "{text}"
    );
    assert!(rtl.run_image(&[0; 10]).unwrap_err().to_string().contains("784"));
    Ok(())
}

#[test]
fn a_design_with_the_wrong_bus_width_is_refused() {
    if !verilator_present() {
        return;
    }
    let compiled = copy_program(0, 64, 1);
    let err = Rtl::from_verilog(compiled, &copier_verilog(4), RtlOptions::default())
        .err()
        .expect("refused");
    assert!(err.to_string().contains("`rd_resp_data` is 4 lanes of 8 bits"), "{err}");
}

#[test]
fn build_options_reach_the_verilator_build() -> Result<(), SimError> {
    if !verilator_present() {
        return Ok(());
    }
    let cache = tempfile::tempdir().unwrap();
    let shared_runtime = verilator_sys::default_cache_root().join("runtime");
    std::fs::create_dir_all(&shared_runtime).unwrap();
    std::os::unix::fs::symlink(&shared_runtime, cache.path().join("runtime")).unwrap();
    let compiled = copy_program(0, 64, 1);
    let options = RtlOptions {
        build: BuildOptions {
            trace: false,
            cache_dir: Some(cache.path().to_path_buf()),
        },
        vcd: Some(cache.path().join("wave.vcd")),
        ..Default::default()
    };
    let verilog = copier_verilog(compiled.hw.bus_bytes);
    let cold = Rtl::from_verilog(compiled.clone(), &verilog, options.clone())?;
    assert!(!cold.build_info().from_cache && cold.build().trace);
    assert!(cold.build().dir.starts_with(cache.path()));
    cold.run_image(&[0; 784])?;
    let vcd = std::fs::read_to_string(cache.path().join("wave.vcd")).unwrap();
    assert!(vcd.contains("rd_req_valid"), "the first run writes the VCD");
    let warm = Rtl::from_verilog(compiled, &verilog, options)?;
    assert!(warm.build_info().from_cache);
    Ok(())
}

// The real accelerator (`hdl::accelerator_verilog`).

/// A small random model: small-cnn at a quarter of its width (211k MACs).
fn tiny_model() -> compiler::Model {
    compiler::synthetic::random_model(
        compiler::zoo::Arch::SmallCnn,
        [1, 28, 28],
        10,
        0.25,
        compiler::synthetic::Precision::W8A8,
        7,
    )
    .unwrap()
}

fn test_images(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|k| (0..784).map(|i| ((i * 131 + k * 977) % 256) as u8).collect())
        .collect()
}

#[test]
fn a_tiny_model_on_2x2_matches_the_functional_model_and_the_reference() -> Result<(), SimError> {
    if !verilator_present() {
        return Ok(());
    }
    let model = tiny_model();
    let hw = compiler::hw::HwConfig::preset(2, 2).unwrap();
    let compiled = compiler::lower::compile(&model, &hw).unwrap();
    let predicted = compiler::cycles::report(&model, &compiled).unwrap();
    let options = RtlOptions {
        trace_instructions: true,
        ..Default::default()
    };
    let rtl = Rtl::new(compiled.clone(), options)?;
    println!("2x2 build: {:?}", rtl.build_info());
    let reference = compiler::Reference::new(model.clone());
    for image in test_images(2) {
        let started = Instant::now();
        let run = rtl.run_image(&image)?;
        let seconds = started.elapsed().as_secs_f64();
        let functional = compiler::functional::run_image(&compiled, &image).unwrap();
        let trace = reference.trace(&image);
        assert_eq!(
            sim::first_mismatch(&model, &compiled, &trace, &run.memory),
            None,
            "every layer's output in memory"
        );
        assert_eq!(run.logits, functional, "RTL vs functional model");
        assert_eq!(&run.logits, trace.last().unwrap(), "RTL vs reference");
        let error = (run.cycles as f64 - predicted.total_cycles as f64) / run.cycles as f64;
        println!(
            "RTL {} cycles, cycle model {} ({:+.3}%), {:.0} simulated cycles/s",
            run.cycles,
            predicted.total_cycles,
            100.0 * error,
            run.ticks as f64 / seconds
        );
        let layers = compiler::cycles::layer_cycles(&compiled, run.instruction_end.as_ref().unwrap());
        for (l, rtl_cycles) in predicted.layers.iter().zip(&layers) {
            println!("  {:<12} model {:>8} RTL {:>8}", l.name, l.cycles, rtl_cycles);
        }
        let model_layers: Vec<u64> = predicted.layers.iter().map(|l| l.cycles).collect();
        assert_eq!(layers, model_layers, "per-layer cycles, RTL vs cycle model");
        assert_eq!(run.cycles, predicted.total_cycles, "cycles, RTL vs cycle model");
    }
    Ok(())
}

/// A program the controller can never finish gives a timeout error naming the
/// state, not a hang: a wait count raised past what the program provides (the
/// units deadlock), and the `end` instruction removed (the controller fetches zeros
/// past the program, an unknown opcode: status 1).
#[test]
fn corrupted_programs_time_out_with_the_status() -> Result<(), SimError> {
    if !verilator_present() {
        return Ok(());
    }
    let model = tiny_model();
    let hw = compiler::hw::HwConfig::preset(2, 2).unwrap();
    let compiled = compiler::lower::compile(&model, &hw).unwrap();
    let options = || RtlOptions {
        timeout_cycles: Some(200_000),
        ..Default::default()
    };
    let image = &test_images(1)[0];

    let mut deadlocked = compiled.clone();
    let victim = deadlocked
        .program
        .iter()
        .position(|i| matches!(i.op, Op::Matmul { .. }))
        .unwrap();
    deadlocked.program[victim].waits.load = 1_000_000;
    let started = Instant::now();
    let err = Rtl::new(deadlocked, options())?.run_image(image).unwrap_err();
    println!("deadlock: {err} ({:.2} s)", started.elapsed().as_secs_f64());
    assert!(
        matches!(
            err,
            SimError::Timeout {
                status: 0,
                busy: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("timeout of 200000 cycles"), "{err}");

    let mut endless = compiled;
    assert!(matches!(endless.program.pop().map(|i| i.op), Some(Op::End {})));
    let err = Rtl::new(endless, options())?.run_image(image).unwrap_err();
    println!("no end: {err}");
    assert!(matches!(err, SimError::Timeout { status: 1, .. }), "{err}");
    Ok(())
}

/// A second build of the same accelerator comes from the cache; another HwConfig
/// is another design and is built.
#[test]
fn the_accelerator_build_is_cached_per_configuration() -> Result<(), SimError> {
    if !verilator_present() {
        return Ok(());
    }
    let cache = tempfile::tempdir().unwrap();
    let shared_runtime = verilator_sys::default_cache_root().join("runtime");
    std::fs::create_dir_all(&shared_runtime).unwrap();
    std::os::unix::fs::symlink(&shared_runtime, cache.path().join("runtime")).unwrap();
    let options = RtlOptions {
        build: BuildOptions {
            trace: false,
            cache_dir: Some(cache.path().to_path_buf()),
        },
        ..Default::default()
    };
    let model = tiny_model();
    let hw = compiler::hw::HwConfig::preset(2, 2).unwrap();
    let compiled = compiler::lower::compile(&model, &hw).unwrap();
    let cold = Rtl::new(compiled.clone(), options.clone())?;
    let warm = Rtl::new(compiled, options.clone())?;
    println!("cold {:?}\nwarm {:?}", cold.build_info(), warm.build_info());
    assert!(!cold.build_info().from_cache);
    assert!(warm.build_info().from_cache && warm.build_info().seconds < 1.0);
    assert_eq!(cold.build().key, warm.build().key);

    let other = compiler::hw::HwConfig { bus_bytes: 4, ..hw };
    let compiled = compiler::lower::compile(&model, &other).unwrap();
    let rebuilt = Rtl::new(compiled, options)?;
    println!("other config {:?}", rebuilt.build_info());
    assert!(!rebuilt.build_info().from_cache);
    assert_ne!(rebuilt.build().key, cold.build().key);
    Ok(())
}
