//! `divqat rtl`: write the accelerator's Verilog for a hardware configuration, with a
//! short report of what it contains (modules, register bits, memories).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use compiler::hw::HwConfig;
use serde::Serialize;

use super::output::print_json;

#[derive(Args)]
#[command(
    after_help = "Writes DIR/accelerator.v (top module `top`, ports as in docs/rtl.md) and DIR/rtl-report.json.\n\nExamples:\n  divqat rtl --hw 8x8 --out build/rtl-8x8\n  divqat rtl --hw 2x2 --out build/rtl-2x2 --json\n  divqat rtl --hw my-hw.toml --out build/rtl"
)]
pub struct RtlArgs {
    /// Hardware: a preset RxC (e.g. 8x8, 4x16) or a TOML file.
    #[arg(long, default_value = "8x8")]
    pub hw: String,
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// One memory array (`reg [w-1:0] name [0:words-1]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryArray {
    pub module: String,
    pub name: String,
    pub words: u64,
    pub width: u64,
}

/// What the emitted Verilog holds. rust-hdl emits one module per instance, so
/// summing over module definitions counts every instance once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerilogStats {
    pub modules: usize,
    /// Bits of every signal assigned in an `always @(posedge ...)` block, memories
    /// excluded.
    pub register_bits: u64,
    pub memories: Vec<MemoryArray>,
    pub memory_bits: u64,
}

#[derive(Serialize)]
struct RtlReport<'a> {
    hw: &'a HwConfig,
    verilog: String,
    verilog_bytes: usize,
    #[serde(flatten)]
    stats: VerilogStats,
    generate_seconds: f64,
    /// The Verilator lint that passes on this Verilog, with the documented waivers
    /// (`hdl::LINT_WAIVERS`, docs/rtl.md).
    lint_command: String,
}

/// `verilator --lint-only -Wall` with the waivers of `hdl::LINT_WAIVERS`.
fn lint_command(verilog: &Path) -> String {
    let waivers: String = hdl::LINT_WAIVERS
        .iter()
        .map(|(rule, _)| format!(" -Wno-{rule}"))
        .collect();
    format!(
        "verilator --lint-only -Wall{waivers} --top-module top {}",
        verilog.display()
    )
}

/// Tokens of Verilog text: identifiers (with `$`), numbers (with their base, e.g.
/// `8'hff`), `<=`, and single other characters; comments and strings dropped.
fn tokenize(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'\'';
    while i < bytes.len() {
        let c = bytes[i];
        let rest = &bytes[i..];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if rest.starts_with(b"//") {
            i += rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        } else if rest.starts_with(b"/*") {
            i += rest.windows(2).position(|w| w == b"*/").map_or(rest.len(), |p| p + 2);
        } else if c == b'"' {
            i += 1 + rest[1..]
                .iter()
                .position(|&b| b == b'"')
                .map_or(rest.len() - 1, |p| p + 1);
        } else if rest.starts_with(b"<=") {
            tokens.push(&text[i..i + 2]);
            i += 2;
        } else if word(c) {
            let len = rest.iter().position(|&b| !word(b)).unwrap_or(rest.len());
            tokens.push(&text[i..i + len]);
            i += len;
        } else {
            let len = text[i..].chars().next().map_or(1, char::len_utf8);
            tokens.push(&text[i..i + len]);
            i += len;
        }
    }
    tokens
}

/// `[a:b]` at `tokens[at]` with numeric bounds: its size and the index after it.
fn range_at(tokens: &[&str], at: usize) -> Option<(u64, usize)> {
    match tokens.get(at..at + 5)? {
        ["[", a, ":", b, "]"] => {
            let (a, b): (i64, i64) = (a.parse().ok()?, b.parse().ok()?);
            Some((a.abs_diff(b) + 1, at + 5))
        }
        _ => None,
    }
}

/// Declared signal widths by name.
type Widths<'a> = std::collections::HashMap<&'a str, u64>;
/// Declared memories: name, words, bits per word.
type Memories<'a> = Vec<(&'a str, u64, u64)>;

/// Declared widths (`reg`, `wire`, `input`, `output`) and memories of one module body.
fn declarations<'a>(body: &[&'a str]) -> (Widths<'a>, Memories<'a>) {
    let mut widths = std::collections::HashMap::new();
    let mut memories = Vec::new();
    let mut previous = ";";
    let mut i = 0;
    while i < body.len() {
        let t = body[i];
        let statement_start = matches!(previous, ";" | ")" | "begin" | "end");
        if !(statement_start && matches!(t, "reg" | "wire" | "input" | "output" | "logic")) {
            previous = t;
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while matches!(body.get(j), Some(&("reg" | "wire" | "signed" | "logic"))) {
            j += 1;
        }
        let mut width = 1;
        if let Some((w, next)) = range_at(body, j) {
            width = w;
            j = next;
        }
        // Names, each perhaps with an unpacked dimension (a memory) or an
        // initializer, up to the `;`.
        while let Some(&name) = body.get(j) {
            match name {
                ";" => break,
                "," => j += 1,
                "=" => {
                    // An initializer: to the next `,` or `;` outside brackets.
                    let mut depth = 0i32;
                    while let Some(&t) = body.get(j) {
                        match t {
                            "(" | "[" | "{" => depth += 1,
                            ")" | "]" | "}" => depth -= 1,
                            "," | ";" if depth == 0 => break,
                            _ => {}
                        }
                        j += 1;
                    }
                }
                _ => match range_at(body, j + 1) {
                    Some((words, next)) => {
                        memories.push((name, words, width));
                        j = next;
                    }
                    None => {
                        widths.insert(name, width);
                        j += 1;
                    }
                },
            }
        }
        previous = ";";
        i = j + 1;
    }
    (widths, memories)
}

/// The statement of an `always` block starting at `at`: to the `end` matching a
/// `begin`, or to the `;` of a single statement (with its `else` branches).
fn statement_end(tokens: &[&str], at: usize) -> usize {
    if tokens.get(at) == Some(&"begin") {
        let mut depth = 0;
        for (i, t) in tokens.iter().enumerate().skip(at) {
            match *t {
                "begin" => depth += 1,
                "end" => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        }
        return tokens.len();
    }
    let mut i = at;
    loop {
        match tokens[i..].iter().position(|t| *t == ";") {
            Some(p) => i += p + 1,
            None => return tokens.len(),
        }
        if tokens.get(i) != Some(&"else") {
            return i;
        }
    }
}

/// Targets of nonblocking assignments (`name <=`, `name[..] <=` at the start of a
/// statement) in `block`.
fn assigned<'a>(block: &[&'a str]) -> Vec<&'a str> {
    let mut names = Vec::new();
    for (i, t) in block.iter().enumerate() {
        if *t != "<=" {
            continue;
        }
        // Walk back over index brackets to the name.
        let mut j = i;
        while j > 0 && block[j - 1] == "]" {
            let mut depth = 0;
            while j > 0 {
                j -= 1;
                match block[j] {
                    "]" => depth += 1,
                    "[" => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
        }
        if j == 0 {
            continue;
        }
        let name = block[j - 1];
        let before = if j >= 2 { block[j - 2] } else { ";" };
        let starts_statement = matches!(before, ";" | "begin" | ")" | "else" | ":" | "end" | "endcase");
        if starts_statement && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            names.push(name);
        }
    }
    names
}

/// Modules, register bits and memories of rust-hdl's Verilog (see [`VerilogStats`]).
pub fn verilog_stats(text: &str) -> VerilogStats {
    let tokens = tokenize(text);
    let mut stats = VerilogStats::default();
    let mut i = 0;
    while let Some(p) = tokens[i..].iter().position(|t| *t == "module") {
        let start = i + p;
        let end = tokens[start..]
            .iter()
            .position(|t| *t == "endmodule")
            .map_or(tokens.len(), |e| start + e);
        let module = tokens.get(start + 1).copied().unwrap_or("?");
        let body = &tokens[start..end];
        stats.modules += 1;
        let (widths, memories) = declarations(body);
        let memory_names: Vec<&str> = memories.iter().map(|m| m.0).collect();
        let mut registers = std::collections::BTreeSet::new();
        let mut k = 0;
        while k + 4 < body.len() {
            if body[k] == "always" && body[k + 1] == "@" && body[k + 2] == "(" && body[k + 3] == "posedge" {
                let close = body[k..].iter().position(|t| *t == ")").map_or(body.len(), |c| k + c);
                let stop = statement_end(body, close + 1);
                registers.extend(
                    assigned(&body[close + 1..stop])
                        .into_iter()
                        .filter(|n| !memory_names.contains(n)),
                );
                k = stop;
            } else {
                k += 1;
            }
        }
        stats.register_bits += registers
            .iter()
            .map(|n| widths.get(n).copied().unwrap_or(1))
            .sum::<u64>();
        for (name, words, width) in memories {
            stats.memory_bits += words * width;
            stats.memories.push(MemoryArray {
                module: module.to_string(),
                name: name.to_string(),
                words,
                width,
            });
        }
        i = end.max(start + 1);
    }
    stats
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    compiler::format::write_atomic(&path, bytes).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(path)
}

pub fn run(args: RtlArgs) -> anyhow::Result<()> {
    let hw = HwConfig::from_arg(&args.hw)?;
    let start = Instant::now();
    let verilog = hdl::accelerator_verilog(&hw);
    let generate_seconds = start.elapsed().as_secs_f64();
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}: cannot create", args.out.display()))?;
    let path = write_file(&args.out, "accelerator.v", verilog.as_bytes())?;
    let report = RtlReport {
        hw: &hw,
        verilog: path.display().to_string(),
        verilog_bytes: verilog.len(),
        stats: verilog_stats(&verilog),
        generate_seconds,
        lint_command: lint_command(&path),
    };
    write_file(
        &args.out,
        "rtl-report.json",
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    if args.json {
        return print_json(&report);
    }
    let s = &report.stats;
    println!(
        "{}x{} accelerator -> {} ({} bytes, generated in {:.2} s)",
        hw.rows, hw.cols, report.verilog, report.verilog_bytes, generate_seconds
    );
    println!(
        "{} modules, {} register bits, {} memories ({} bits):",
        s.modules,
        s.register_bits,
        s.memories.len(),
        s.memory_bits
    );
    for m in &s.memories {
        println!(
            "  {:<40} {:>6} x {:<3} bits",
            format!("{}.{}", m.module, m.name),
            m.words,
            m.width
        );
    }
    println!("lint (waivers explained in docs/rtl.md): {}", report.lint_command);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
// a comment with module in it
module top(clock,a,q);
    input wire clock;
    input wire [7:0] a;
    output reg [7:0] q;
    reg [3:0] count; /* module */
    reg [15:0] wide$d;
    wire [1:0] w = {a[1], count[0]}, v = a[3:2];
    wire unused = ^{a[7:4], count[3:1]};
    top$ram ram(.clock(clock));
    always @(*) begin
        if (count <= 4'd3) wide$d = 16'h0;
    end
    always @(posedge clock) begin
        if (a <= 8'd2) begin
            q <= a;
        end else count <= count + 4'd1;
        case (a) 2: q <= 8'h1; endcase
    end
endmodule // top

module top$ram(clock,write_data$0,q);
    input wire clock;
    (* no_rw_check *) reg [15:0] mem [0:1023];
    reg [15:0] q;
    always @(posedge clock) if (we) mem[wa][7:0] <= write_data$0; else mem[wa] <= 16'h0;
    always @(posedge clock) q <= mem[ra];
    initial begin q = 0; end
endmodule
"#;

    #[test]
    fn counts_modules_registers_and_memories() {
        let s = verilog_stats(SAMPLE);
        assert_eq!(s.modules, 2);
        // q (8) + count (4) in top, q (16) in the RAM; `wide$d` is combinational.
        assert_eq!(s.register_bits, 8 + 4 + 16);
        assert_eq!(
            s.memories,
            [MemoryArray {
                module: "top$ram".into(),
                name: "mem".into(),
                words: 1024,
                width: 16
            }]
        );
        assert_eq!(s.memory_bits, 16 * 1024);
    }

    #[test]
    fn tokens_keep_dollar_names_numbers_and_nonblocking_assignments() {
        assert_eq!(
            tokenize("a$b <= 8'hff; // x\n/* y */ \"str\" c"),
            ["a$b", "<=", "8'hff", ";", "c"]
        );
    }
}
