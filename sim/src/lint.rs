//! Verilator lint (`--lint-only -Wall`) with its warnings as structs.

use std::path::{Path, PathBuf};

use verilator_sys::{verilator_error_lines, VerilatorInstall};

use crate::SimError;

/// Where a warning points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    pub file: PathBuf,
    pub line: u32,
    pub column: u32,
}

/// One `%Warning-CODE: file:line:col: message` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintWarning {
    /// Verilator's warning code, e.g. "WIDTH" or "UNUSEDSIGNAL".
    pub code: String,
    /// `None` for the few warnings Verilator prints without a location.
    pub location: Option<SourceLocation>,
    pub message: String,
}

/// Lints `verilog` with top module `top` and returns every warning.
///
/// Warnings are results, not failures (`-Wno-fatal`); Verilog that Verilator
/// cannot elaborate is an error carrying Verilator's `%Error` lines.
pub fn lint(verilog: &Path, top: &str) -> Result<Vec<LintWarning>, SimError> {
    if !hdl::verilog::is_identifier(top) {
        return Err(SimError::InvalidTop(top.to_string()));
    }
    // Verilator searches include paths for names it cannot open; checking
    // first gives a plain "cannot read" instead of its search-path listing.
    std::fs::metadata(verilog).map_err(|source| SimError::InputMissing {
        path: verilog.to_path_buf(),
        source,
    })?;
    let install = VerilatorInstall::detect()?;
    let output = install
        .command()
        .args(["--lint-only", "-Wall", "-Wno-fatal", "--top-module", top])
        .arg(verilog)
        .output()
        .map_err(|source| SimError::Spawn {
            tool: "verilator".into(),
            source,
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(SimError::VerilogErrors {
            path: verilog.to_path_buf(),
            errors: verilator_error_lines(&stderr),
        });
    }
    Ok(stderr.lines().filter_map(parse_warning_line).collect())
}

/// Parses `%Warning-CODE: file:line:col: message` (or `%Warning-CODE:
/// message`); other lines, including a warning's indented context lines,
/// give `None`.
fn parse_warning_line(line: &str) -> Option<LintWarning> {
    let rest = line.strip_prefix("%Warning-")?;
    let (code, rest) = rest.split_once(": ")?;
    let (location, message) = match split_location(rest) {
        Some((location, message)) => (Some(location), message),
        None => (None, rest),
    };
    Some(LintWarning {
        code: code.to_string(),
        location,
        message: message.to_string(),
    })
}

/// Splits `file:line:col: message` at the first `:<digits>:<digits>: `, so
/// that colons inside the file name or the message do not confuse it.
fn split_location(text: &str) -> Option<(SourceLocation, &str)> {
    text.match_indices(':').find_map(|(colon, _)| {
        let after = &text[colon + 1..];
        let (line, after) = after.split_once(':')?;
        let (column, message) = after.split_once(": ")?;
        let location = SourceLocation {
            file: PathBuf::from(&text[..colon]),
            line: line.parse().ok()?,
            column: column.parse().ok()?,
        };
        (!text[..colon].is_empty()).then_some((location, message))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use verilator_sys::VerilatorError;

    fn verilator_present() -> bool {
        match VerilatorInstall::detect() {
            Ok(_) => true,
            Err(VerilatorError::NotOnPath) => {
                println!("SKIPPED: verilator not found on PATH; run scripts/setup.sh");
                false
            }
            Err(err) => panic!("{err}"),
        }
    }

    /// Writes `text` to `<module>.v`, so DECLFILENAME stays quiet.
    fn write_module(dir: &Path, module: &str, text: &str) -> PathBuf {
        let path = dir.join(format!("{module}.v"));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn clean_module_has_no_warnings() {
        if !verilator_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write_module(
            dir.path(),
            "clean",
            "module clean(input wire [7:0] a, output wire [7:0] y);\n  assign y = a;\nendmodule\n",
        );
        assert_eq!(lint(&path, "clean").unwrap(), []);
    }

    #[test]
    fn width_mismatch_gives_one_width_warning() {
        if !verilator_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        // A 4-bit value assigned to an 8-bit output; every bit of `a` is used,
        // so WIDTH is the only complaint.
        let path = write_module(
            dir.path(),
            "widen",
            "module widen(input wire [3:0] a, output wire [7:0] y);\n  assign y = a;\nendmodule\n",
        );
        let warnings = lint(&path, "widen").unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let warning = &warnings[0];
        assert_eq!(warning.code, "WIDTH");
        assert_eq!(
            warning.location,
            Some(SourceLocation {
                file: path.clone(),
                line: 2,
                column: 12
            })
        );
        assert!(warning.message.contains("expects 8 bits"), "{warning:?}");
    }

    #[test]
    fn undefined_signal_is_an_error_with_verilator_message() {
        if !verilator_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write_module(
            dir.path(),
            "broken",
            "module broken(input wire a, output wire y);\n  assign y = b;\nendmodule\n",
        );
        let err = lint(&path, "broken").unwrap_err();
        let SimError::VerilogErrors { errors, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("Can't find definition of variable: 'b'"), "{err}");
    }

    #[test]
    fn bad_arguments_are_rejected_before_running_verilator() {
        let err = lint(Path::new("/nonexistent/top.v"), "top").unwrap_err();
        assert!(matches!(err, SimError::InputMissing { .. }), "{err}");
        let err = lint(Path::new("top.v"), "top --exit").unwrap_err();
        assert!(matches!(err, SimError::InvalidTop(_)), "{err}");
    }

    #[test]
    fn parses_warning_lines() {
        let line = "%Warning-WIDTH: dir:with:colons/top.v:66:49: Operator AND expects 16 bits: really";
        let warning = parse_warning_line(line).unwrap();
        assert_eq!(warning.code, "WIDTH");
        let location = warning.location.unwrap();
        assert_eq!(location.file, PathBuf::from("dir:with:colons/top.v"));
        assert_eq!((location.line, location.column), (66, 49));
        assert_eq!(warning.message, "Operator AND expects 16 bits: really");

        let bare = parse_warning_line("%Warning-MULTITOP: Multiple top level modules").unwrap();
        assert_eq!((bare.code.as_str(), bare.location), ("MULTITOP", None));
        assert_eq!(bare.message, "Multiple top level modules");

        assert_eq!(parse_warning_line("                : ... In instance top"), None);
        assert_eq!(parse_warning_line("%Error: Exiting due to 1 error(s)"), None);
        assert_eq!(parse_warning_line("%Warning-WIDTH"), None);
    }
}
