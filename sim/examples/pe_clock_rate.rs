//! Builds the PE (`hdl::pe_verilog`) into a run-time Verilator model and
//! measures its simulation speed with accumulation enabled.
//!
//! Run: `cargo run --release -p sim --example pe_clock_rate [cycles]`
//! (the model's own speed does not depend on the Rust profile much: the
//! time is spent in the C++ model, compiled with -O2 either way).
//!
//! Measured on the 2-core shared development machine (Verilator 5.006,
//! g++ 12, load average ~3.8), 20 M cycles: 25-30 M cycles/s. Build: 5.4 s
//! the very first time (Verilator's runtime objects plus the model), 1.3 s
//! for a new design once the runtime is cached, 0.08-0.14 s from the cache
//! (mostly spent asking Verilator and g++ for their versions).

use std::time::Instant;

use sim::{clock_rate, BuildOptions, VerilatedModel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cycles: u64 = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 20_000_000,
    };
    let start = Instant::now();
    let mut model = VerilatedModel::new(&hdl::pe_verilog(), "top", &BuildOptions::default())?;
    let stats = &model.build().stats;
    println!(
        "build: {:.3} s (from cache: {}, verilator {:.3} s, compile+link {:.3} s, runtime objects compiled: {}); load {:.3} s",
        stats.total.as_secs_f64(),
        stats.from_cache,
        stats.verilate.as_secs_f64(),
        stats.compile.as_secs_f64(),
        stats.runtime_objects_compiled,
        start.elapsed().as_secs_f64() - stats.total.as_secs_f64(),
    );
    println!("library: {}", model.build().library.display());
    let (clock, enable) = (model.port("clock")?, model.port("enable")?);
    model.set(enable, 1)?;
    model.set_signed(model.port("act_in")?, -3)?;
    model.set_signed(model.port("weight_in")?, 7)?;
    let rate = clock_rate(&mut model, clock, cycles)?;
    let acc = model.get_signed(model.port("acc")?)?;
    println!("{cycles} cycles: {:.2} M cycles/s (acc = {acc})", rate / 1e6);
    Ok(())
}
