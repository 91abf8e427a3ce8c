//! Verilator models built at run time.
//!
//! [`VerilatorInstall`] finds Verilator (binary, version, C++ runtime
//! sources); [`build_model`] turns Verilog text into a shared library:
//!
//! 1. read the top module's ports from the Verilog ([`parse_ports`]; ports
//!    wider than 64 bits are refused before anything runs);
//! 2. hash the Verilog, top, tool versions, options and [`SHIM_VERSION`];
//!    if the cache holds that key, return it (no Verilator, no g++);
//! 3. otherwise, in a temporary directory: `verilator --cc -O3 ...`, check
//!    its port list against ours, generate the C shim ([`shim`]), compile
//!    the C++ as two combined units with g++ `-fPIC -O2`, compile
//!    Verilator's runtime once per toolchain into the cache, link one `.so`
//!    exporting only the shim, and rename the directory into the cache.
//!
//! Loading the library and calling the shim is the `sim` crate's job
//! (`sim::VerilatedModel`). The cache layout is described in [`cache`].

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

pub mod builder;
pub mod cache;
mod header;
pub mod ports;
pub mod shim;

pub use builder::{build_model, BuildOptions, BuildStats, ModelBuild, LIBRARY_NAME};
pub use cache::{default_cache_root, divqat_cache_dir, ensure_entry, hash_key, Entry, FillError};
pub use ports::{parse_ports, Direction, Port, PortError, MAX_PORT_BITS};
pub use shim::SHIM_VERSION;

/// Oldest supported major version: the run-time build relies on Verilator 5
/// (VerilatedContext-based models, `verilated_threads.cpp` in every build).
pub const MIN_MAJOR_VERSION: u32 = 5;

#[derive(Debug, Error)]
pub enum VerilatorError {
    #[error("verilator not found on PATH; run scripts/setup.sh")]
    NotOnPath,
    #[error("cannot run {bin}: {source}")]
    Spawn { bin: PathBuf, source: std::io::Error },
    #[error("`{command}` failed ({status}): {last_line}")]
    CommandFailed {
        command: String,
        status: String,
        last_line: String,
    },
    #[error("unexpected `verilator --version` output {0:?}; expected \"Verilator <major>.<minor> ...\"")]
    UnparsableVersion(String),
    #[error(
        "Verilator {found} is too old; divqat needs Verilator {MIN_MAJOR_VERSION} or newer (run scripts/setup.sh)"
    )]
    TooOld { found: String },
    #[error("Verilator include directory {0} lacks verilated.cpp; is VERILATOR_ROOT right?")]
    IncludeDirIncomplete(PathBuf),
    #[error("invalid top module name {0:?}: expected a Verilog identifier ([A-Za-z_][A-Za-z0-9_$]*)")]
    InvalidTop(String),
    #[error(transparent)]
    Ports(#[from] PortError),
    #[error("verilator rejected the design: {}{}", first(errors), more(errors))]
    Verilate { errors: Vec<String> },
    #[error("the ports read from the Verilog ({parsed}) differ from Verilator's ({verilator}); the port parser misread this design")]
    PortMismatch { parsed: String, verilator: String },
    #[error("cannot run {cxx} (the C++ compiler; run scripts/setup.sh): {source}")]
    CompilerMissing { cxx: &'static str, source: std::io::Error },
    #[error("g++ failed {step}: {}{}; build kept in {}", first(errors), more(errors), build_dir.display())]
    Compile {
        step: String,
        errors: Vec<String>,
        build_dir: PathBuf,
    },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl VerilatorError {
    /// Whether a failed build's directory should stay for inspection: only
    /// compiler failures, whose cause may be in the generated C++.
    pub fn keeps_build_dir(&self) -> bool {
        matches!(self, VerilatorError::Compile { .. })
    }
}

fn first(lines: &[String]) -> &str {
    lines.first().map_or("(no message)", String::as_str)
}

fn more(lines: &[String]) -> String {
    match lines.len() {
        0 | 1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    }
}

/// Verilator's `%Error` lines, less its closing "Exiting due to N error(s)";
/// the last lines of `stderr` when it printed none (killed, or a format
/// this does not know).
pub fn verilator_error_lines(stderr: &str) -> Vec<String> {
    let errors: Vec<String> = stderr
        .lines()
        .filter(|line| line.starts_with("%Error") && !line.contains("Exiting due to"))
        .map(str::to_string)
        .collect();
    if errors.is_empty() {
        stderr.lines().rev().take(3).map(str::to_string).collect()
    } else {
        errors
    }
}

/// A usable Verilator installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerilatorInstall {
    /// Absolute path of the `verilator` program.
    pub bin: PathBuf,
    /// Version number as Verilator prints it, e.g. "5.006".
    pub version: String,
    /// `$VERILATOR_ROOT/include`: verilated.h, verilated.cpp, ...
    pub include_dir: PathBuf,
}

impl VerilatorInstall {
    /// Finds `verilator` on `PATH` and checks it (see [`Self::from_binary`]).
    pub fn detect() -> Result<Self, VerilatorError> {
        let path_var = std::env::var_os("PATH").unwrap_or_default();
        let bin = find_on_path("verilator", &path_var).ok_or(VerilatorError::NotOnPath)?;
        Self::from_binary(&bin)
    }

    /// Checks the Verilator program at `bin`: its version must be at least
    /// [`MIN_MAJOR_VERSION`] and its include directory must hold the runtime
    /// sources.
    pub fn from_binary(bin: &Path) -> Result<Self, VerilatorError> {
        let version_line = run(bin, &["--version"])?;
        let version = parse_version(&version_line)?;
        let root = run(bin, &["--getenv", "VERILATOR_ROOT"])?;
        let include_dir = PathBuf::from(root.trim()).join("include");
        if !include_dir.join("verilated.cpp").is_file() {
            return Err(VerilatorError::IncludeDirIncomplete(include_dir));
        }
        Ok(Self {
            bin: bin.to_path_buf(),
            version,
            include_dir,
        })
    }

    /// `include/vltstd`: the standard headers (svdpi.h, vpi_user.h) that
    /// Verilator's runtime includes.
    pub fn vltstd_dir(&self) -> PathBuf {
        self.include_dir.join("vltstd")
    }

    /// A `verilator` command for this installation.
    pub fn command(&self) -> Command {
        Command::new(&self.bin)
    }
}

/// First executable file called `name` in the directories of `path_var`.
fn find_on_path(name: &str, path_var: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path_var)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `bin args`, returning stdout; a failure carries stderr's last line.
fn run(bin: &Path, args: &[&str]) -> Result<String, VerilatorError> {
    let output = Command::new(bin)
        .args(args)
        .output()
        .map_err(|source| VerilatorError::Spawn {
            bin: bin.to_path_buf(),
            source,
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(VerilatorError::CommandFailed {
            command: format!("{} {}", bin.display(), args.join(" ")),
            status: output.status.to_string(),
            last_line: stderr
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("(no output)")
                .to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// "Verilator 5.006 2023-01-22 rev (Debian 5.006-3)" -> "5.006", checked
/// against [`MIN_MAJOR_VERSION`].
fn parse_version(output: &str) -> Result<String, VerilatorError> {
    let unparsable = || VerilatorError::UnparsableVersion(output.trim().to_string());
    let version = output
        .trim()
        .strip_prefix("Verilator ")
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(unparsable)?;
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .ok_or_else(unparsable)?;
    if major < MIN_MAJOR_VERSION {
        return Err(VerilatorError::TooOld {
            found: version.to_string(),
        });
    }
    Ok(version.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::{Mutex, MutexGuard};

    /// Tests that write a script and run it hold this lock, as do all tests
    /// that start processes: a fork in another test thread while a script's
    /// file is still open for writing makes exec fail with ETXTBSY.
    static SPAWN_LOCK: Mutex<()> = Mutex::new(());

    pub(crate) fn spawn_lock() -> MutexGuard<'static, ()> {
        SPAWN_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes an executable shell script standing in for `verilator`.
    fn fake_verilator(dir: &Path, version_line: &str, root: &Path) -> PathBuf {
        let path = dir.join("verilator");
        let script = format!(
            "#!/bin/sh\ncase \"$1\" in\n  --version) echo '{version_line}' ;;\n  --getenv) echo '{}' ;;\n  *) exit 1 ;;\nesac\n",
            root.display()
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn detects_the_installed_verilator() {
        let _lock = spawn_lock();
        let install = match VerilatorInstall::detect() {
            Ok(install) => install,
            Err(VerilatorError::NotOnPath) => {
                println!("SKIPPED: verilator not found on PATH; run scripts/setup.sh");
                return;
            }
            Err(err) => panic!("{err}"),
        };
        assert!(install.bin.is_absolute(), "{install:?}");
        assert!(install.version.starts_with("5."), "{install:?}");
        assert!(install.include_dir.join("verilated.h").is_file(), "{install:?}");
        assert!(install.vltstd_dir().join("svdpi.h").is_file(), "{install:?}");
    }

    #[test]
    fn missing_from_path_names_the_setup_script() {
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(find_on_path("verilator", empty.path().as_os_str()), None);
        assert_eq!(
            VerilatorError::NotOnPath.to_string(),
            "verilator not found on PATH; run scripts/setup.sh"
        );
    }

    #[test]
    fn finds_an_executable_on_a_given_path() {
        let _lock = spawn_lock();
        let dir = tempfile::tempdir().unwrap();
        let fake = fake_verilator(dir.path(), "Verilator 5.006", dir.path());
        let path_var = std::env::join_paths(["/nonexistent".as_ref(), dir.path()]).unwrap();
        assert_eq!(find_on_path("verilator", &path_var), Some(fake));
    }

    #[test]
    fn rejects_verilator_4() {
        let _lock = spawn_lock();
        let dir = tempfile::tempdir().unwrap();
        let fake = fake_verilator(dir.path(), "Verilator 4.228 2022-01-17 rev v4.228", dir.path());
        let err = VerilatorInstall::from_binary(&fake).unwrap_err();
        assert!(
            matches!(&err, VerilatorError::TooOld { found } if found == "4.228"),
            "{err}"
        );
    }

    #[test]
    fn rejects_an_include_dir_without_runtime_sources() {
        let _lock = spawn_lock();
        let dir = tempfile::tempdir().unwrap();
        let fake = fake_verilator(dir.path(), "Verilator 5.006 2023-01-22", dir.path());
        let err = VerilatorInstall::from_binary(&fake).unwrap_err();
        assert!(matches!(err, VerilatorError::IncludeDirIncomplete(_)), "{err}");
        std::fs::create_dir(dir.path().join("include")).unwrap();
        std::fs::write(dir.path().join("include/verilated.cpp"), "").unwrap();
        let install = VerilatorInstall::from_binary(&fake).unwrap();
        assert_eq!(install.version, "5.006");
        assert_eq!(install.include_dir, dir.path().join("include"));
    }

    #[test]
    fn reports_a_failing_binary() {
        let _lock = spawn_lock();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("verilator");
        std::fs::write(&path, "#!/bin/sh\necho 'broken install' >&2\nexit 3\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = VerilatorInstall::from_binary(&path).unwrap_err();
        assert!(err.to_string().ends_with("broken install"), "{err}");
    }

    #[test]
    fn parses_version_lines() {
        assert_eq!(
            parse_version("Verilator 5.006 2023-01-22 rev (Debian 5.006-3)\n").unwrap(),
            "5.006"
        );
        assert_eq!(parse_version("Verilator 5.020").unwrap(), "5.020");
        assert!(matches!(
            parse_version("verilator?"),
            Err(VerilatorError::UnparsableVersion(_))
        ));
        assert!(matches!(
            parse_version("Verilator x.1"),
            Err(VerilatorError::UnparsableVersion(_))
        ));
    }
}
