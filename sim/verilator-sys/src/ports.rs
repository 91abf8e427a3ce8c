//! The port list of a Verilog module, read from the source text.
//!
//! Enough of Verilog for the generated RTL and small hand-written modules:
//! rust-hdl's non-ANSI style (`module top(a, b); input wire [7:0] a; ...`) and
//! ANSI headers (`module top(input [7:0] a, output reg b);`). The build
//! cross-checks this list against Verilator's own (see `ports_from_header`),
//! so a construct read wrongly here fails the build instead of misbehaving.

use thiserror::Error;

/// Widest port a run-time model supports: the shim moves values as `u64`.
pub const MAX_PORT_BITS: u32 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Input,
    Output,
}

/// One port of the top module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub direction: Direction,
    /// Bits, 1 to [`MAX_PORT_BITS`].
    pub width: u32,
    /// Declared `signed`; values still travel as raw bits.
    pub signed: bool,
}

impl Port {
    pub fn new(name: impl Into<String>, direction: Direction, width: u32, signed: bool) -> Port {
        Port {
            name: name.into(),
            direction,
            width,
            signed,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PortError {
    #[error("no `module {0}` in the Verilog")]
    ModuleNotFound(String),
    #[error("module `{module}`: {reason}")]
    Syntax { module: String, reason: String },
    #[error("port `{port}` is {width} bits wide; run-time models support ports of at most {MAX_PORT_BITS} bits")]
    TooWide { port: String, width: u64 },
    #[error("port `{0}` is an inout; run-time models support only inputs and outputs")]
    Inout(String),
    #[error("port `{0}` is listed in the module header but never declared input or output")]
    Undeclared(String),
}

/// Reads the ports of module `top` from `verilog`, in header order.
pub fn parse_ports(verilog: &str, top: &str) -> Result<Vec<Port>, PortError> {
    let tokens = tokenize(verilog);
    let start = find_module(&tokens, top).ok_or_else(|| PortError::ModuleNotFound(top.into()))?;
    let syntax = |reason: String| PortError::Syntax {
        module: top.into(),
        reason,
    };
    let mut cursor = Cursor {
        tokens: &tokens,
        pos: start,
    };
    cursor.skip_parameters().map_err(syntax)?;
    let items = cursor.port_items().map_err(syntax)?;
    let ports = if items
        .first()
        .is_some_and(|item| item.first().is_some_and(|t| is_direction(t)))
    {
        ansi_ports(&items).map_err(syntax)?
    } else {
        let names = plain_names(&items).map_err(syntax)?;
        let body = cursor.module_body();
        declared_ports(&names, body).map_err(syntax)?
    };
    ports.into_iter().map(check_port).collect()
}

fn check_port(declared: Declared) -> Result<Port, PortError> {
    let direction = match declared.direction.as_str() {
        "input" => Direction::Input,
        "output" => Direction::Output,
        _ => return Err(PortError::Inout(declared.name)),
    };
    if declared.width > u64::from(MAX_PORT_BITS) {
        return Err(PortError::TooWide {
            port: declared.name,
            width: declared.width,
        });
    }
    Ok(Port {
        name: declared.name,
        direction,
        width: declared.width as u32,
        signed: declared.signed,
    })
}

/// A port as declared, before the direction and width checks.
#[derive(Debug, Clone)]
struct Declared {
    name: String,
    direction: String,
    width: u64,
    signed: bool,
}

/// Identifiers and numbers as one token each, every other character alone;
/// comments, whitespace and string literals dropped.
fn tokenize(text: &str) -> Vec<String> {
    let text = strip_comments(text);
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if c == '"' {
            // A string literal (e.g. in $display) never holds a port.
            for (_, next) in chars.by_ref() {
                if next == '"' {
                    break;
                }
            }
            continue;
        }
        let mut end = start + c.len_utf8();
        if is_word_char(c) || c == '`' || c == '\\' {
            while let Some(&(i, next)) = chars.peek() {
                let escaped = c == '\\' && !next.is_whitespace();
                if !(is_word_char(next) || escaped) {
                    break;
                }
                end = i + next.len_utf8();
                chars.next();
            }
        }
        tokens.push(text[start..end].to_string());
    }
    tokens
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

/// Replaces `// ...` and `/* ... */` by spaces (strings are not special-cased:
/// a `//` inside a string literal only loses the rest of that line).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('/') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if after.starts_with("//") {
            rest = after.find('\n').map_or("", |end| &after[end..]);
            out.push(' ');
        } else if let Some(body) = after.strip_prefix("/*") {
            rest = body.find("*/").map_or("", |end| &body[end + 2..]);
            out.push(' ');
        } else {
            out.push('/');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Index just past `module <top>` (the whole name must match: rust-hdl also
/// emits modules such as `top$acc_reg`).
fn find_module(tokens: &[String], top: &str) -> Option<usize> {
    tokens
        .windows(2)
        .position(|pair| matches!(pair[0].as_str(), "module" | "macromodule") && pair[1] == top)
        .map(|i| i + 2)
}

fn is_direction(token: &str) -> bool {
    matches!(token, "input" | "output" | "inout")
}

struct Cursor<'a> {
    tokens: &'a [String],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.tokens.get(self.pos).map(String::as_str)
    }

    /// Skips `#( ... )`.
    fn skip_parameters(&mut self) -> Result<(), String> {
        if self.peek() == Some("#") {
            self.pos += 1;
            self.balanced_group()?;
        }
        Ok(())
    }

    /// The tokens of a `( ... )` group (without the outer parentheses).
    fn balanced_group(&mut self) -> Result<&'a [String], String> {
        if self.peek() != Some("(") {
            return Err(format!(
                "expected `(`, found {:?}",
                self.peek().unwrap_or("end of text")
            ));
        }
        let start = self.pos + 1;
        let mut depth = 0usize;
        while let Some(token) = self.peek() {
            self.pos += 1;
            match token {
                "(" => depth += 1,
                ")" if depth == 1 => return Ok(&self.tokens[start..self.pos - 1]),
                ")" => depth -= 1,
                _ => {}
            }
        }
        Err("unbalanced parentheses in the module header".into())
    }

    /// The header's port list split at top-level commas; consumes the `;`.
    fn port_items(&mut self) -> Result<Vec<&'a [String]>, String> {
        let items = if self.peek() == Some("(") {
            split_commas(self.balanced_group()?)
        } else {
            Vec::new()
        };
        if self.peek() != Some(";") {
            return Err("expected `;` after the port list".into());
        }
        self.pos += 1;
        Ok(items)
    }

    /// Tokens up to `endmodule`.
    fn module_body(&self) -> &'a [String] {
        let rest = &self.tokens[self.pos..];
        let end = rest.iter().position(|t| t == "endmodule").unwrap_or(rest.len());
        &rest[..end]
    }
}

/// Splits at commas outside (), [] and {}; an empty list gives no items.
fn split_commas(tokens: &[String]) -> Vec<&[String]> {
    if tokens.is_empty() {
        return Vec::new();
    }
    let mut items = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, token) in tokens.iter().enumerate() {
        match token.as_str() {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" => depth -= 1,
            "," if depth == 0 => {
                items.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&tokens[start..]);
    items
}

/// ANSI header items: a bare name inherits the previous item's declaration.
fn ansi_ports(items: &[&[String]]) -> Result<Vec<Declared>, String> {
    let mut ports: Vec<Declared> = Vec::new();
    for item in items {
        let port = match (item, ports.last()) {
            ([name], Some(previous)) => Declared {
                name: simple_name(name)?,
                ..previous.clone()
            },
            _ => {
                let mut declared = declaration(item)?;
                if declared.len() != 1 {
                    return Err(format!("cannot read port declaration `{}`", item.join(" ")));
                }
                declared.remove(0)
            }
        };
        ports.push(port);
    }
    Ok(ports)
}

/// Non-ANSI header items: plain names only.
fn plain_names(items: &[&[String]]) -> Result<Vec<String>, String> {
    items
        .iter()
        .map(|item| match item {
            [name] => simple_name(name),
            _ => Err(format!("unsupported port expression `{}`", item.join(" "))),
        })
        .collect()
}

/// Looks up each header name among the body's `input`/`output` statements
/// (skipping those inside functions and tasks, which declare arguments).
fn declared_ports(names: &[String], body: &[String]) -> Result<Vec<Declared>, String> {
    let mut declared = Vec::new();
    let mut statement_start = true;
    let mut nested = 0usize;
    for (i, token) in body.iter().enumerate() {
        match token.as_str() {
            "function" | "task" => nested += 1,
            "endfunction" | "endtask" => nested = nested.saturating_sub(1),
            _ if nested == 0 && statement_start && is_direction(token) => {
                let end = body[i..].iter().position(|t| t == ";").map_or(body.len(), |n| i + n);
                declared.extend(declaration(&body[i..end])?);
            }
            _ => {}
        }
        statement_start = token == ";";
    }
    names
        .iter()
        .map(|name| {
            declared
                .iter()
                .find(|port| &port.name == name)
                .cloned()
                .ok_or_else(|| name.clone())
        })
        .collect::<Result<_, _>>()
        .map_err(|name| format!("{}", PortError::Undeclared(name)))
}

/// `dir [wire|reg|logic|...] [signed|unsigned] [m:l]... name {, name}`.
fn declaration(tokens: &[String]) -> Result<Vec<Declared>, String> {
    let text = || tokens.join(" ");
    let (direction, mut rest) = tokens.split_first().ok_or("empty declaration")?;
    let mut signed = false;
    while let Some((word, tail)) = rest.split_first() {
        match word.as_str() {
            "wire" | "reg" | "logic" | "var" | "bit" | "tri" => {}
            "signed" => signed = true,
            "unsigned" => signed = false,
            _ => break,
        }
        rest = tail;
    }
    let mut width = 1u64;
    while rest.first().is_some_and(|t| t == "[") {
        let (range_width, tail) = packed_range(rest).map_err(|e| format!("{e} in `{}`", text()))?;
        width = width.saturating_mul(range_width);
        rest = tail;
    }
    split_commas(rest)
        .into_iter()
        .map(|item| match item {
            [name] => Ok(Declared {
                name: simple_name(name)?,
                direction: direction.clone(),
                width,
                signed,
            }),
            _ => Err(format!("cannot read port declaration `{}`", text())),
        })
        .collect()
}

/// `[msb:lsb]` with decimal bounds: its width and the tokens after it.
fn packed_range(tokens: &[String]) -> Result<(u64, &[String]), String> {
    let close = tokens.iter().position(|t| t == "]").ok_or("unclosed `[`")?;
    match &tokens[1..close] {
        [msb, colon, lsb] if colon == ":" => {
            let bound = |t: &String| {
                t.parse::<i64>()
                    .map_err(|_| format!("range bound `{t}` is not a number (port widths must be literal)"))
            };
            let (msb, lsb) = (bound(msb)?, bound(lsb)?);
            Ok((msb.abs_diff(lsb) + 1, &tokens[close + 1..]))
        }
        inside => Err(format!(
            "range `[{}]` is not two numbers (port widths must be literal)",
            inside.join("")
        )),
    }
}

/// `[A-Za-z_][A-Za-z0-9_$]*`, a simple Verilog identifier (the same rule as
/// `hdl::verilog::is_identifier`, which this -sys crate does not depend on).
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_') && chars.all(is_word_char)
}

/// A simple identifier; escaped ones (`\a+b `) have no C++ name in the model.
fn simple_name(token: &str) -> Result<String, String> {
    if is_identifier(token) {
        Ok(token.to_string())
    } else {
        Err(format!("unsupported port name `{token}` (only simple identifiers)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str, direction: Direction, width: u32, signed: bool) -> Port {
        Port::new(name, direction, width, signed)
    }

    const RUST_HDL_STYLE: &str = "
module top(clock,act_in,acc);
    // Module arguments
    input wire  clock;
    input wire signed [7:0] act_in;
    output reg signed [31:0] acc;
    reg signed [7:0] act_reg$d;
    top$acc_reg acc_reg(.d(act_reg$d));
endmodule // top

module top$acc_reg(d,q,clock);
    input wire signed [63:0] d;
endmodule
";

    #[test]
    fn reads_rust_hdl_declarations() {
        use Direction::*;
        assert_eq!(
            parse_ports(RUST_HDL_STYLE, "top").unwrap(),
            [
                port("clock", Input, 1, false),
                port("act_in", Input, 8, true),
                port("acc", Output, 32, true)
            ]
        );
    }

    #[test]
    fn reads_ansi_headers_with_inherited_declarations() {
        use Direction::*;
        let verilog = "/* c */ module counter #(parameter W = 8) (input clk, input [3:0] a, b,\n output reg [0:9] q // x\n, output logic y); endmodule";
        assert_eq!(
            parse_ports(verilog, "counter").unwrap(),
            [
                port("clk", Input, 1, false),
                port("a", Input, 4, false),
                port("b", Input, 4, false),
                port("q", Output, 10, false),
                port("y", Output, 1, false)
            ]
        );
    }

    #[test]
    fn ignores_function_arguments_and_strings() {
        let verilog = "module top(a, y); input a; output y;\n function f; input [99:0] a; f = 1; endfunction\n initial $display(\"input [200:0] y;\");\n endmodule";
        let ports = parse_ports(verilog, "top").unwrap();
        assert_eq!(ports.iter().map(|p| p.width).collect::<Vec<_>>(), [1, 1]);
    }

    #[test]
    fn refuses_ports_over_64_bits_naming_them() {
        let err = parse_ports("module top(input [64:0] wide_bus); endmodule", "top").unwrap_err();
        assert_eq!(
            err,
            PortError::TooWide {
                port: "wide_bus".into(),
                width: 65
            }
        );
        assert!(err.to_string().contains("`wide_bus` is 65 bits"), "{err}");
        let ok = parse_ports("module top(input [63:0] bus); endmodule", "top").unwrap();
        assert_eq!(ok[0].width, 64);
    }

    #[test]
    fn reports_unsupported_constructs() {
        let cases = [
            ("module top(a); inout a; endmodule", "inout"),
            ("module top(a); input a; endmodule module x; endmodule", ""),
            ("module top(a, b); input a; endmodule", "`b` is listed"),
            (
                "module top(input [W-1:0] a); endmodule",
                "range `[W-1:0]` is not two numbers",
            ),
            ("module top(input [W:0] a); endmodule", "bound `W` is not a number"),
            ("module top(input [7:0] a [4]); endmodule", "cannot read"),
            ("module top(.a(x)); endmodule", "port expression"),
            ("module top(input a) endmodule", "expected `;`"),
            ("module top(input a; endmodule", "unbalanced"),
            ("module top$x(input a); endmodule", "no `module top`"),
        ];
        for (verilog, expected) in cases {
            match parse_ports(verilog, "top") {
                Ok(ports) => assert_eq!(expected, "", "{verilog}: {ports:?}"),
                Err(err) => assert!(
                    err.to_string().contains(expected) && !expected.is_empty(),
                    "{verilog}: {err}"
                ),
            }
        }
    }

    #[test]
    fn a_module_without_ports_has_none() {
        assert_eq!(parse_ports("module top; endmodule", "top").unwrap(), []);
        assert_eq!(parse_ports("module top(); endmodule", "top").unwrap(), []);
    }
}
