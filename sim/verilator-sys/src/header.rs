//! The ports as Verilator declared them in the model header
//! (`VL_IN8(&clock,0,0);`, `VL_OUT(&acc,31,0);`, ...): the C++ member name
//! of each port, and a cross-check of the port list read from the Verilog.

use crate::ports::{Direction, Port};
use crate::VerilatorError;

/// One `VL_IN*` / `VL_OUT*` / `VL_INOUT*` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HeaderPort {
    /// The C++ member, e.g. `a___05Fb` for Verilog `a__b`.
    member: String,
    direction: &'static str,
    width: u64,
}

/// The C++ member of each of `ports` (same order), after checking that the
/// header declares exactly these ports with these directions and widths.
pub fn port_members(ports: &[Port], header: &str) -> Result<Vec<String>, VerilatorError> {
    let declared: Vec<HeaderPort> = header.lines().filter_map(header_port).collect();
    let members: Option<Vec<String>> = ports
        .iter()
        .map(|port| {
            declared
                .iter()
                .find(|d| {
                    verilog_name(&d.member) == port.name
                        && d.direction == direction(port)
                        && d.width == u64::from(port.width)
                })
                .map(|d| d.member.clone())
        })
        .collect();
    match members {
        Some(members) if members.len() == declared.len() => Ok(members),
        _ => Err(VerilatorError::PortMismatch {
            parsed: describe(ports.iter().map(|p| (p.name.clone(), direction(p), u64::from(p.width)))),
            verilator: describe(declared.iter().map(|d| (verilog_name(&d.member), d.direction, d.width))),
        }),
    }
}

fn direction(port: &Port) -> &'static str {
    match port.direction {
        Direction::Input => "input",
        Direction::Output => "output",
    }
}

/// "input a [8], output y [1]", sorted.
fn describe(ports: impl Iterator<Item = (String, &'static str, u64)>) -> String {
    let mut items: Vec<String> = ports
        .map(|(name, dir, width)| format!("{dir} {name} [{width}]"))
        .collect();
    items.sort();
    items.join(", ")
}

/// `VL_IN8(&clock,0,0);` -> clock, input, 1 bit.
fn header_port(line: &str) -> Option<HeaderPort> {
    let rest = line.trim().strip_prefix("VL_")?;
    let (kind, args) = rest.split_once('(')?;
    let direction = if kind.starts_with("INOUT") {
        "inout"
    } else if kind.starts_with("IN") {
        "input"
    } else if kind.starts_with("OUT") {
        "output"
    } else {
        return None;
    };
    let mut args = args.trim_end_matches(");").split(',');
    let member = args.next()?.trim().strip_prefix('&')?.to_string();
    let msb: i64 = args.next()?.trim().parse().ok()?;
    let lsb: i64 = args.next()?.trim().parse().ok()?;
    Some(HeaderPort {
        member,
        direction,
        width: msb.abs_diff(lsb) + 1,
    })
}

/// Undoes Verilator's C++ name encoding: a `__SYM__` prefix on names that
/// are C++ keywords, and `__0XX` (two hex digits) for a character that
/// cannot stand as is: `$` -> `__024`, the second `_` of `__` -> `__05F`.
fn verilog_name(member: &str) -> String {
    let encoded = member.strip_prefix("__SYM__").unwrap_or(member);
    let mut name = String::new();
    let mut rest = encoded;
    while !rest.is_empty() {
        let escaped = rest
            .strip_prefix("__0")
            .and_then(|tail| Some((u8::from_str_radix(tail.get(..2)?, 16).ok()?, &tail[2..])));
        match escaped {
            Some((byte, tail)) => {
                name.push(char::from(byte));
                rest = tail;
            }
            None => {
                let c = rest.chars().next().unwrap_or_default();
                name.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str, direction: Direction, width: u32) -> Port {
        Port::new(name, direction, width, false)
    }

    #[test]
    fn decodes_verilator_member_names() {
        assert_eq!(verilog_name("x__024y"), "x$y");
        assert_eq!(verilog_name("a___05Fb"), "a__b");
        assert_eq!(verilog_name("__SYM__delete"), "delete");
        assert_eq!(verilog_name("_q_"), "_q_");
        assert_eq!(verilog_name("a__0"), "a__0");
    }

    #[test]
    fn maps_ports_to_members_in_port_order() {
        let header = "  VL_IN8(&clock,0,0);\n    VL_OUT(&acc,31,0);\n  VL_IN64(&a__024b,63,0);\n  VL_OUT8(&__SYM__auto,0,0);\n  void eval();\n";
        let ports = [
            port("acc", Direction::Output, 32),
            port("clock", Direction::Input, 1),
            port("a$b", Direction::Input, 64),
            port("auto", Direction::Output, 1),
        ];
        assert_eq!(
            port_members(&ports, header).unwrap(),
            ["acc", "clock", "a__024b", "__SYM__auto"]
        );
    }

    #[test]
    fn reports_any_difference() {
        let header = "VL_IN8(&clock,0,0);\nVL_OUT(&acc,31,0);\n";
        let missing = [port("clock", Direction::Input, 1)];
        let err = port_members(&missing, header).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the ports read from the Verilog (input clock [1]) differ from Verilator's (input clock [1], output acc [32]); the port parser misread this design"
        );
        let narrow = [port("clock", Direction::Input, 1), port("acc", Direction::Output, 16)];
        assert!(port_members(&narrow, header).is_err());
    }
}
