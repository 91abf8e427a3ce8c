//! Run-time Verilator models: built from Verilog text, cached, loaded and
//! driven through `VerilatedModel`. Every test skips (with a note) when
//! Verilator is not installed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::{build_model, clock_rate, BuildOptions, SimError, VerilatedModel};
use verilator_sys::{default_cache_root, VerilatorError};

mod common;
use common::verilator_present;

/// A hand-written design of a different shape from the PE: a `width`-bit
/// counter with synchronous reset, in ANSI style.
fn counter_verilog(width: u32) -> String {
    format!(
        "module top(input wire clock, input wire reset, output reg [{msb}:0] count);\n\
         \x20 initial count = 0;\n\
         \x20 always @(posedge clock) count <= reset ? {width}'d0 : count + {width}'d1;\n\
         endmodule\n",
        msb = width - 1
    )
}

/// A cache of its own (so builds in it are cold) whose `runtime/` is the
/// shared one, so that Verilator's runtime is not recompiled per test.
fn fresh_cache() -> (tempfile::TempDir, BuildOptions) {
    let dir = tempfile::tempdir().unwrap();
    let shared_runtime = default_cache_root().join("runtime");
    std::fs::create_dir_all(&shared_runtime).unwrap();
    std::os::unix::fs::symlink(&shared_runtime, dir.path().join("runtime")).unwrap();
    let opts = BuildOptions {
        trace: false,
        cache_dir: Some(dir.path().to_path_buf()),
    };
    (dir, opts)
}

/// Random controls and operands, the extreme products, then enough
/// (-128)^2 steps to wrap the accumulator past i32::MAX.
fn pe_stimulus() -> Vec<(bool, bool, i8, i8)> {
    let mut rng = ChaCha8Rng::seed_from_u64(0xD1_5EED);
    let mut inputs: Vec<_> = (0..5000)
        .map(|_| (rng.gen_bool(0.05), rng.gen_bool(0.8), rng.gen(), rng.gen()))
        .collect();
    let extremes = [(-128, 127), (127, -128), (127, 127), (-128, -128), (-1, -128)];
    inputs.extend((0..1000).map(|i| (i == 0, true, extremes[i % 5].0, extremes[i % 5].1)));
    inputs.push((true, true, -128, -128));
    inputs.extend(std::iter::repeat_n((false, true, -128, -128), 131_073));
    inputs
}

#[test]
fn pe_matches_the_integer_reference() -> Result<(), SimError> {
    if !verilator_present() {
        return Ok(());
    }
    let mut pe = VerilatedModel::new(&hdl::pe_verilog(), "top", &BuildOptions::default())?;
    let [clock, clear, enable, act_in, weight_in, act_out, weight_out, acc] = [
        "clock",
        "clear",
        "enable",
        "act_in",
        "weight_in",
        "act_out",
        "weight_out",
        "acc",
    ]
    .map(|name| pe.port(name).unwrap());
    assert_eq!(pe.get(acc)?, 0, "registers start at 0");
    let mut reference = hdl::PeModel::default();
    let mut wrapped = false;
    for (cycle, &(c, e, act, weight)) in pe_stimulus().iter().enumerate() {
        pe.set(clear, c.into())?;
        pe.set(enable, e.into())?;
        pe.set_signed(act_in, act.into())?;
        pe.set_signed(weight_in, weight.into())?;
        pe.tick(clock)?;
        reference.step(c, e, act, weight);
        assert_eq!(pe.get_signed(acc)?, reference.acc, "acc, cycle {cycle}");
        assert_eq!(
            pe.get_signed(act_out)?,
            i64::from(reference.act_out),
            "act_out, cycle {cycle}"
        );
        assert_eq!(
            pe.get_signed(weight_out)?,
            i64::from(reference.weight_out),
            "weight_out, cycle {cycle}"
        );
        wrapped |= reference.acc < 0 && !c && act == -128 && weight == -128;
    }
    assert!(wrapped, "the stimulus must wrap the accumulator");
    assert_eq!(pe.time(), 2 * pe_stimulus().len() as u64);
    Ok(())
}

#[test]
fn two_designs_coexist_in_one_process() -> Result<(), SimError> {
    if !verilator_present() {
        return Ok(());
    }
    let opts = BuildOptions::default();
    let mut pe = VerilatedModel::new(&hdl::pe_verilog(), "top", &opts)?;
    let mut counter = VerilatedModel::new(&counter_verilog(8), "top", &opts)?;
    // A second instance of the same design is independent of the first.
    let mut counter2 = VerilatedModel::new(&counter_verilog(8), "top", &opts)?;
    let (pe_clock, enable, act, weight, acc) = (
        pe.port("clock")?,
        pe.port("enable")?,
        pe.port("act_in")?,
        pe.port("weight_in")?,
        pe.port("acc")?,
    );
    let (clock, count) = (counter.port("clock")?, counter.port("count")?);
    pe.set(enable, 1)?;
    pe.set_signed(act, -2)?;
    pe.set(weight, 100)?;
    for cycle in 1..=300u64 {
        // Interleaved: each design's code must run its own model.
        pe.tick(pe_clock)?;
        counter.tick(clock)?;
        assert_eq!(pe.get_signed(acc)?, -200 * cycle as i64);
        assert_eq!(counter.get(count)?, cycle % 256);
    }
    counter2.tick(clock)?;
    assert_eq!(counter2.get(count)?, 1);
    assert_eq!(counter.get(count)?, 300 % 256);
    assert!(matches!(pe.get(count), Err(SimError::ForeignPort)));
    Ok(())
}

#[test]
fn a_second_build_comes_from_the_cache() -> Result<(), SimError> {
    if !verilator_present() {
        return Ok(());
    }
    let (_cache, opts) = fresh_cache();
    let cold = build_model(&counter_verilog(7), "top", &opts)?;
    assert!(!cold.stats.from_cache);
    assert!(cold.stats.verilate > Duration::ZERO);
    println!("cold build of a 7-bit counter: {:?}", cold.stats);
    let start = Instant::now();
    let cached = build_model(&counter_verilog(7), "top", &opts)?;
    let elapsed = start.elapsed();
    assert!(cached.stats.from_cache, "{:?}", cached.stats);
    assert_eq!(cached.stats.verilate, Duration::ZERO, "verilator must not run");
    assert!(elapsed < Duration::from_secs(1), "cached build took {elapsed:?}");
    assert_eq!((cached.key, cached.library), (cold.key, cold.library));
    Ok(())
}

#[test]
fn changed_verilog_builds_a_new_entry() -> Result<(), SimError> {
    if !verilator_present() {
        return Ok(());
    }
    let (cache, opts) = fresh_cache();
    let narrow = build_model(&counter_verilog(5), "top", &opts)?;
    let wide = build_model(&counter_verilog(6), "top", &opts)?;
    assert!(!wide.stats.from_cache, "a changed design must be rebuilt");
    assert_ne!(narrow.dir, wide.dir);
    let entries = std::fs::read_dir(cache.path().join("models"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir() && !e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(entries, 2);
    // Each entry holds its own design: the counters wrap at 32 and 64.
    for (build, modulus) in [(&narrow, 32), (&wide, 64)] {
        let mut model = VerilatedModel::load(build)?;
        let (clock, count) = (model.port("clock")?, model.port("count")?);
        for _ in 0..modulus + 3 {
            model.tick(clock)?;
        }
        assert_eq!(model.get(count)?, 3);
    }
    Ok(())
}

#[test]
fn a_syntax_error_is_reported_with_verilators_message() {
    if !verilator_present() {
        return;
    }
    let (_cache, opts) = fresh_cache();
    let broken = "module top(input wire clock, output reg q);\n  always @(posedge clock) q <= ~q\nendmodule\n";
    let err = build_model(broken, "top", &opts).unwrap_err();
    let VerilatorError::Verilate { errors } = &err else {
        panic!("{err}")
    };
    assert!(errors[0].starts_with("%Error"), "{errors:?}");
    assert!(errors[0].contains("top.v:3"), "{errors:?}");
    let message = err.to_string();
    assert!(
        message.starts_with("verilator rejected the design: %Error"),
        "{message}"
    );
    assert!(!message.contains('\n'), "one line: {message}");
}

#[test]
fn bad_designs_and_names_are_refused_before_building() {
    let opts = BuildOptions {
        trace: false,
        cache_dir: Some(PathBuf::from("/nonexistent/never-created")),
    };
    let wide = "module top(input wire clock, output reg [64:0] big_sum); endmodule";
    let err = build_model(wide, "top", &opts).unwrap_err();
    assert!(err.to_string().contains("port `big_sum` is 65 bits wide"), "{err}");
    let err = build_model(&counter_verilog(4), "top; rm -rf", &opts).unwrap_err();
    assert!(matches!(err, VerilatorError::InvalidTop(_)), "{err}");
    let err = build_model(&counter_verilog(4), "other", &opts).unwrap_err();
    assert_eq!(err.to_string(), "no `module other` in the Verilog");
}

#[test]
fn misuse_of_ports_gives_clear_errors() -> Result<(), SimError> {
    if !verilator_present() {
        return Ok(());
    }
    let mut model = VerilatedModel::new(&counter_verilog(8), "top", &BuildOptions::default())?;
    let err = model.port("clk").unwrap_err();
    assert_eq!(
        err.to_string(),
        "no port `clk` in this design; its ports are: clock, reset, count"
    );
    let (count, reset) = (model.port("count")?, model.port("reset")?);
    let err = model.set(count, 1).unwrap_err();
    assert_eq!(err.to_string(), "port `count` is an output; only inputs can be set");
    let err = model.set(reset, 2).unwrap_err();
    assert_eq!(err.to_string(), "value 0x2 does not fit the 1-bit port `reset`");
    assert!(matches!(model.tick(count), Err(SimError::NotAnInput(_))));
    let err = model.open_vcd(&std::env::temp_dir().join("x.vcd")).unwrap_err();
    assert!(matches!(err, SimError::TraceNotBuilt), "{err}");
    assert!(matches!(clock_rate(&mut model, reset, 0), Err(SimError::NoCycles)));
    Ok(())
}

#[test]
fn tracing_writes_a_vcd_file() -> Result<(), SimError> {
    if !verilator_present() {
        return Ok(());
    }
    let opts = BuildOptions {
        trace: true,
        cache_dir: None,
    };
    let plain_key = build_model(&counter_verilog(4), "top", &BuildOptions::default())?.key;
    let mut model = VerilatedModel::new(&counter_verilog(4), "top", &opts)?;
    assert_ne!(model.build().key, plain_key, "tracing is a separate cache entry");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("counter.vcd");
    model.open_vcd(&path)?;
    let clock = model.port("clock")?;
    for _ in 0..20 {
        model.tick(clock)?;
    }
    model.close_vcd();
    let vcd = std::fs::read_to_string(&path).unwrap();
    assert!(vcd.contains("$enddefinitions"), "{vcd}");
    assert!(vcd.contains(" count "), "{vcd}");
    assert!(vcd.contains("#40"), "one dump per half cycle:\n{vcd}");
    Ok(())
}

/// Names Verilator encodes in C++: `__`, `$`, and a C++ keyword.
#[test]
fn encoded_port_names_work() -> Result<(), SimError> {
    if !verilator_present() {
        return Ok(());
    }
    let verilog = "module top(a__b, x$y, delete);\n  input [3:0] a__b;\n  input x$y;\n  output [4:0] delete;\n  assign delete = a__b + x$y;\nendmodule\n";
    let mut model = VerilatedModel::new(verilog, "top", &BuildOptions::default())?;
    let (a, x, sum) = (model.port("a__b")?, model.port("x$y")?, model.port("delete")?);
    model.set(a, 15)?;
    model.set(x, 1)?;
    model.eval();
    assert_eq!(model.get(sum)?, 16);
    Ok(())
}

#[test]
fn clock_rate_counts_cycles() -> Result<(), SimError> {
    if !verilator_present() {
        return Ok(());
    }
    let mut model = VerilatedModel::new(&counter_verilog(16), "top", &BuildOptions::default())?;
    let (clock, count) = (model.port("clock")?, model.port("count")?);
    let rate = clock_rate(&mut model, clock, 10_000)?;
    assert!(rate > 0.0 && rate.is_finite(), "{rate}");
    assert_eq!(model.get(count)?, 10_000);
    Ok(())
}

/// The version script at work: only the shim's functions are dynamic
/// symbols, so no design's (or runtime's) C++ names can bind across
/// libraries, whatever flags a loader uses.
#[test]
fn the_library_exports_only_the_shim() -> Result<(), SimError> {
    if !verilator_present() {
        return Ok(());
    }
    let build = build_model(&counter_verilog(8), "top", &BuildOptions::default())?;
    let nm = std::process::Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&build.library)
        .output();
    let Ok(nm) = nm else {
        println!("SKIPPED: nm (binutils) not found");
        return Ok(());
    };
    let symbols = String::from_utf8_lossy(&nm.stdout);
    let mut exported: Vec<&str> = symbols
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2))
        .collect();
    exported.sort_unstable();
    let mut expected = verilator_sys::shim::EXPORTS.to_vec();
    expected.sort_unstable();
    assert_eq!(exported, expected);
    Ok(())
}
