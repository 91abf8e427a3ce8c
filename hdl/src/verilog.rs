//! Facts about Verilog text shared by the tools that consume the generated RTL, and
//! the one way a block becomes a standalone Verilog design.

use rust_hdl::prelude::{generate_verilog, Block};

/// `block` as a standalone design: its ports connected as a top level and its Verilog
/// emitted (top module `top`), as every `*_verilog` function of this crate does.
pub fn top_verilog(mut block: impl Block) -> String {
    block.connect_all();
    generate_verilog(&block)
}

/// `[A-Za-z_][A-Za-z0-9_$]*`: a simple Verilog identifier, the form of every module
/// name rust-hdl emits. Checking it also keeps a name from injecting tool commands
/// (yosys scripts, Verilator arguments).
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

#[cfg(test)]
mod tests {
    #[test]
    fn identifiers() {
        assert!(!super::is_identifier("") && !super::is_identifier("1top") && !super::is_identifier("a b"));
        assert!(super::is_identifier("top") && super::is_identifier("_a$b9"));
    }
}
