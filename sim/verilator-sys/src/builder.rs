//! Builds a Verilog design into a shared library at run time: Verilator
//! translates it to C++, g++ compiles that with the shim (see [`crate::shim`])
//! and Verilator's runtime, and the library lands in the cache
//! (see [`crate::cache`]) under a hash of everything that went into it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cache::{default_cache_root, ensure_entry, hash_key, write_file, Entry};
use crate::header::port_members;
use crate::ports::{self, parse_ports, Port};
use crate::shim::{self, MODEL_PREFIX, SHIM_VERSION};
use crate::{verilator_error_lines, VerilatorError, VerilatorInstall};

/// File name of the model library inside its cache entry.
pub const LIBRARY_NAME: &str = "libdivqat_model.so";

/// The C++ compiler; the runtime build and the cache key assume g++.
const CXX: &str = "g++";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildOptions {
    /// Compile in VCD tracing (`verilator --trace`); a separate cache entry.
    pub trace: bool,
    /// Cache root; `None` means [`default_cache_root`].
    pub cache_dir: Option<PathBuf>,
}

/// A built (or found) model library.
#[derive(Debug, Clone)]
pub struct ModelBuild {
    /// The shared library to load.
    pub library: PathBuf,
    /// Its cache entry, with the Verilog, shim and build log beside it.
    pub dir: PathBuf,
    /// The cache key: a hash of the Verilog, top, tool versions and options.
    pub key: String,
    /// The top module's ports, in header order (the shim's port indices).
    pub ports: Vec<Port>,
    pub trace: bool,
    pub stats: BuildStats,
}

/// What a [`build_model`] call did, and how long it took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildStats {
    /// The library came from the cache: neither Verilator nor g++ ran.
    pub from_cache: bool,
    /// Time spent in Verilator (zero when cached).
    pub verilate: Duration,
    /// Time spent compiling and linking (zero when cached).
    pub compile: Duration,
    /// Runtime objects (verilated.cpp & co.) compiled by this call; they
    /// are compiled once per toolchain and flags, not per design.
    pub runtime_objects_compiled: usize,
    /// Wall time of the whole call.
    pub total: Duration,
}

/// Builds `verilog` with top module `top` into a shared library, or finds
/// it in the cache. See the crate documentation for the steps.
pub fn build_model(verilog: &str, top: &str, opts: &BuildOptions) -> Result<ModelBuild, VerilatorError> {
    let start = Instant::now();
    if !ports::is_identifier(top) {
        return Err(VerilatorError::InvalidTop(top.to_string()));
    }
    let ports = parse_ports(verilog, top)?;
    let tools = Toolchain::detect()?;
    let root = opts.cache_dir.clone().unwrap_or_else(default_cache_root);
    let recipe = Recipe::new(&tools, top, opts.trace);
    let key = recipe.model_key(verilog);
    let dir = root.join("models").join(&key);
    let mut stats = BuildStats::default();
    let entry = ensure_entry(&dir, |temp| {
        let job = Job {
            verilog,
            ports: &ports,
            recipe: &recipe,
            root: &root,
            dir: temp,
        };
        job.run(&mut stats)
    })?;
    stats.from_cache = entry == Entry::Found;
    stats.total = start.elapsed();
    Ok(ModelBuild {
        library: dir.join(LIBRARY_NAME),
        dir,
        key,
        ports,
        trace: opts.trace,
        stats,
    })
}

/// Verilator and g++, with the versions that go into cache keys.
#[derive(Debug, Clone)]
struct Toolchain {
    verilator: VerilatorInstall,
    cxx_version: String,
}

impl Toolchain {
    /// Detected once per process: each detection spawns three programs,
    /// which would dominate a cached build's time.
    fn detect() -> Result<Self, VerilatorError> {
        static DETECTED: Mutex<Option<Toolchain>> = Mutex::new(None);
        let mut detected = DETECTED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(tools) = detected.as_ref() {
            return Ok(tools.clone());
        }
        let tools = Toolchain {
            verilator: VerilatorInstall::detect()?,
            cxx_version: cxx_version()?,
        };
        *detected = Some(tools.clone());
        Ok(tools)
    }
}

/// First line of `g++ --version`.
fn cxx_version() -> Result<String, VerilatorError> {
    let output = Command::new(CXX)
        .arg("--version")
        .output()
        .map_err(|source| VerilatorError::CompilerMissing { cxx: CXX, source })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(stdout.lines().next().unwrap_or_default().to_string())
}

/// The exact commands of a build, minus file names: what the cache key
/// must cover besides the Verilog.
struct Recipe {
    tools: Toolchain,
    top: String,
    trace: bool,
    verilator_args: Vec<String>,
    cxx_flags: Vec<String>,
    /// Flags for Verilator's runtime objects: those of a build without
    /// tracing, so trace and plain builds share them. VM_TRACE only sets
    /// verilated.h's backward-compatibility macro WAVES, which the runtime
    /// sources do not read.
    runtime_flags: Vec<String>,
    link_flags: Vec<String>,
}

impl Recipe {
    fn new(tools: &Toolchain, top: &str, trace: bool) -> Self {
        let mut verilator_args: Vec<String> = [
            "--cc",
            "-O3",
            "--x-assign",
            "fast",
            "--x-initial",
            "fast",
            // Delays mean nothing to a model clocked through tick(); without
            // this a `#1` in hand-written Verilog would be an error.
            "--no-timing",
            "-Wno-fatal",
            "--prefix",
            MODEL_PREFIX,
            "--top-module",
            top,
        ]
        .map(String::from)
        .to_vec();
        if trace {
            verilator_args.push("--trace".into());
        }
        Recipe {
            tools: tools.clone(),
            top: top.to_string(),
            trace,
            verilator_args,
            cxx_flags: cxx_flags(&tools.verilator, trace),
            runtime_flags: cxx_flags(&tools.verilator, false),
            // --no-undefined: a missing runtime object fails the link, not the load.
            link_flags: ["-shared", "-Wl,--no-undefined", "-pthread", "-lpthread", "-latomic"]
                .map(String::from)
                .to_vec(),
        }
    }

    fn model_key(&self, verilog: &str) -> String {
        hash_key(&[
            ("shim", &SHIM_VERSION.to_string()),
            ("verilog", verilog),
            ("top", &self.top),
            ("verilator", &self.tools.verilator.version),
            ("include", &self.tools.verilator.include_dir.to_string_lossy()),
            ("cxx", &self.tools.cxx_version),
            ("verilator_args", &self.verilator_args.join(" ")),
            ("cxx_flags", &self.cxx_flags.join(" ")),
            ("runtime_flags", &self.runtime_flags.join(" ")),
            ("link_flags", &self.link_flags.join(" ")),
        ])
    }

    /// Verilator's runtime sources this build links.
    fn runtime_sources(&self) -> Vec<&'static str> {
        let mut sources = vec!["verilated.cpp", "verilated_threads.cpp"];
        if self.trace {
            sources.push("verilated_vcd_c.cpp");
        }
        sources
    }
}

/// verilated.mk's compile flags for this Verilator (CFG_CXXFLAGS_NO_UNUSED,
/// the VM_* switches), with -fPIC -O2 for a shared library.
fn cxx_flags(verilator: &VerilatorInstall, trace: bool) -> Vec<String> {
    let trace = u8::from(trace);
    let mut flags: Vec<String> = [
        "-std=gnu++17",
        "-fPIC",
        "-O2",
        "-faligned-new",
        "-fcf-protection=none",
        "-Wno-bool-operation",
        "-Wno-sign-compare",
        "-Wno-uninitialized",
        "-Wno-unused-but-set-variable",
        "-Wno-unused-parameter",
        "-Wno-unused-variable",
        "-Wno-shadow",
        "-DVM_COVERAGE=0",
        "-DVM_SC=0",
        "-DVM_TRACE_FST=0",
    ]
    .map(String::from)
    .to_vec();
    flags.push(format!("-DVM_TRACE={trace}"));
    flags.push(format!("-DVM_TRACE_VCD={trace}"));
    flags.push(format!("-I{}", verilator.include_dir.display()));
    flags.push(format!("-I{}", verilator.vltstd_dir().display()));
    flags
}

/// One model build in a temporary directory.
struct Job<'a> {
    verilog: &'a str,
    ports: &'a [Port],
    recipe: &'a Recipe,
    root: &'a Path,
    dir: &'a Path,
}

impl Job<'_> {
    fn run(&self, stats: &mut BuildStats) -> Result<(), VerilatorError> {
        let started = Instant::now();
        let members = self.verilate()?;
        stats.verilate = started.elapsed();
        let started = Instant::now();
        write_file(
            &self.dir.join("shim.cpp"),
            &shim::shim_source(self.ports, &members, self.recipe.trace),
        )?;
        let units = self.write_unity_files()?;
        let (runtime, compiled) = self.compile(&units)?;
        stats.runtime_objects_compiled = compiled;
        self.link(&units, &runtime)?;
        stats.compile = started.elapsed();
        for unit in &units {
            // The objects are only needed for the link; the library stays.
            let _ = std::fs::remove_file(unit.with_extension("o"));
        }
        Ok(())
    }

    /// Runs Verilator into `obj/`; returns each port's C++ member name,
    /// having checked Verilator's port list against ours.
    fn verilate(&self) -> Result<Vec<String>, VerilatorError> {
        let source = self.dir.join("top.v");
        write_file(&source, self.verilog)?;
        let mut command = self.recipe.tools.verilator.command();
        command
            .args(&self.recipe.verilator_args)
            .arg("--Mdir")
            .arg(self.dir.join("obj"))
            .arg(&source);
        let output = command.output().map_err(|source| VerilatorError::Spawn {
            bin: self.recipe.tools.verilator.bin.clone(),
            source,
        })?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        write_file(&self.dir.join("build.log"), &stderr)?;
        if !output.status.success() {
            return Err(VerilatorError::Verilate {
                errors: verilator_error_lines(&stderr),
            });
        }
        let header = self.dir.join(format!("obj/{MODEL_PREFIX}.h"));
        let header = std::fs::read_to_string(&header).map_err(|source| VerilatorError::Io {
            action: "read",
            path: header,
            source,
        })?;
        port_members(self.ports, &header)
    }

    /// Two combined translation units instead of one per generated file:
    /// each unit spends ~0.6 s just parsing verilated.h, and two let the two
    /// halves compile in parallel. The `__Slow` (construction) and symbol
    /// table code goes with the shim, the per-cycle code into the other.
    fn write_unity_files(&self) -> Result<Vec<PathBuf>, VerilatorError> {
        let obj = self.dir.join("obj");
        let read_dir = std::fs::read_dir(&obj).map_err(|source| VerilatorError::Io {
            action: "list",
            path: obj.clone(),
            source,
        })?;
        let mut sources: Vec<PathBuf> = read_dir
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "cpp"))
            .collect();
        sources.sort();
        let (mut slow, fast): (Vec<_>, Vec<_>) = sources.into_iter().partition(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            name.contains("__Slow") || name.contains("__Syms")
        });
        slow.push(self.dir.join("shim.cpp"));
        let mut units = Vec::new();
        for (name, files) in [("unity_slow.cpp", slow), ("unity_fast.cpp", fast)] {
            if files.is_empty() {
                continue;
            }
            let text: String = files
                .iter()
                .map(|f| format!("#include \"{}\"\n", f.display()))
                .collect();
            let path = self.dir.join(name);
            write_file(&path, &text)?;
            units.push(path);
        }
        Ok(units)
    }

    /// Compiles the unity files and any missing runtime objects, all in
    /// parallel; returns the runtime objects and how many were compiled.
    fn compile(&self, units: &[PathBuf]) -> Result<(Vec<PathBuf>, usize), VerilatorError> {
        let sources = self.recipe.runtime_sources();
        std::thread::scope(|scope| {
            let runtime: Vec<_> = sources
                .iter()
                .map(|source| scope.spawn(move || self.runtime_object(source)))
                .collect();
            let compiles: Vec<_> = units
                .iter()
                .map(|unit| scope.spawn(move || self.compile_unit(unit)))
                .collect();
            let mut objects = Vec::new();
            let mut compiled = 0;
            for handle in runtime {
                let (object, entry) = join(handle)?;
                compiled += usize::from(entry == Entry::Built);
                objects.push(object);
            }
            for handle in compiles {
                join(handle)?;
            }
            Ok((objects, compiled))
        })
    }

    fn compile_unit(&self, unit: &Path) -> Result<(), VerilatorError> {
        let mut command = Command::new(CXX);
        command
            .args(&self.recipe.cxx_flags)
            .arg(format!("-I{}", self.dir.join("obj").display()))
            .arg("-c")
            .arg(unit)
            .arg("-o")
            .arg(unit.with_extension("o"));
        run_cxx(command, self.dir)
    }

    /// `runtime/<stem>-<key>/<stem>.o`, compiled if missing. Its key covers
    /// what the object depends on: Verilator, g++ and the flags.
    fn runtime_object(&self, source: &str) -> Result<(PathBuf, Entry), VerilatorError> {
        let recipe = self.recipe;
        let include_dir = &recipe.tools.verilator.include_dir;
        let key = hash_key(&[
            ("source", source),
            ("verilator", &recipe.tools.verilator.version),
            ("include", &include_dir.to_string_lossy()),
            ("cxx", &recipe.tools.cxx_version),
            ("cxx_flags", &recipe.runtime_flags.join(" ")),
        ]);
        let stem = source.trim_end_matches(".cpp");
        let entry_dir = self.root.join("runtime").join(format!("{stem}-{key}"));
        let object = format!("{stem}.o");
        let entry = ensure_entry(&entry_dir, |temp| {
            let mut command = Command::new(CXX);
            command
                .args(&recipe.runtime_flags)
                .arg("-c")
                .arg(include_dir.join(source))
                .arg("-o")
                .arg(temp.join(&object));
            run_cxx(command, temp)
        })?;
        Ok((entry_dir.join(object), entry))
    }

    /// Links the library, exporting only the shim (see
    /// [`shim::version_script`] for why that matters).
    fn link(&self, units: &[PathBuf], runtime: &[PathBuf]) -> Result<(), VerilatorError> {
        let script = self.dir.join("exports.map");
        write_file(&script, &shim::version_script())?;
        let mut command = Command::new(CXX);
        command
            .arg("-o")
            .arg(self.dir.join(LIBRARY_NAME))
            .args(units.iter().map(|unit| unit.with_extension("o")))
            .args(runtime)
            .arg(format!("-Wl,--version-script={}", script.display()))
            .args(&self.recipe.link_flags);
        run_cxx(command, self.dir)
    }
}

fn join<T>(handle: std::thread::ScopedJoinHandle<'_, Result<T, VerilatorError>>) -> Result<T, VerilatorError> {
    handle
        .join()
        .unwrap_or_else(|_| Err(VerilatorError::Internal("a compile thread panicked")))
}

/// Runs a g++ command; failure reports its error lines and keeps `build_dir`.
fn run_cxx(mut command: Command, build_dir: &Path) -> Result<(), VerilatorError> {
    let step = describe(&command);
    // Plain ASCII quotes in messages, whatever the user's locale.
    command.env("LC_ALL", "C");
    let output = command
        .output()
        .map_err(|source| VerilatorError::CompilerMissing { cxx: CXX, source })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let _ = std::fs::write(build_dir.join("cxx-error.log"), stderr.as_bytes());
    Err(VerilatorError::Compile {
        step,
        errors: cxx_error_lines(&stderr),
        build_dir: build_dir.to_path_buf(),
    })
}

/// "compiling unity_fast.cpp" / "linking libdivqat_model.so".
fn describe(command: &Command) -> String {
    let args: Vec<_> = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    let name = |path: &str| {
        Path::new(path)
            .file_name()
            .map_or(path.to_string(), |n| n.to_string_lossy().into_owned())
    };
    match args.iter().position(|a| a == "-c") {
        Some(i) => format!("compiling {}", name(args.get(i + 1).map_or("", String::as_str))),
        None => format!("linking {LIBRARY_NAME}"),
    }
}

/// g++'s `error:` lines, or the last lines when it printed none.
fn cxx_error_lines(stderr: &str) -> Vec<String> {
    let errors: Vec<String> = stderr
        .lines()
        .filter(|l| l.contains("error"))
        .take(5)
        .map(String::from)
        .collect();
    if errors.is_empty() {
        stderr.lines().rev().take(3).map(String::from).collect()
    } else {
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compile_error_names_the_step_and_keeps_the_directory() {
        let _lock = crate::tests::spawn_lock();
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("broken.cpp");
        write_file(&source, "int f() { return undeclared; }\n").unwrap();
        let mut command = Command::new(CXX);
        command
            .arg("-c")
            .arg(&source)
            .arg("-o")
            .arg(dir.path().join("broken.o"));
        let err = match run_cxx(command, dir.path()) {
            Err(err) => err,
            Ok(()) => panic!("compiled"),
        };
        let message = err.to_string();
        assert!(message.starts_with("g++ failed compiling broken.cpp: "), "{message}");
        assert!(message.contains("'undeclared' was not declared"), "{message}");
        assert!(
            message.ends_with(&format!("; build kept in {}", dir.path().display())),
            "{message}"
        );
        assert!(err.keeps_build_dir());
        assert!(dir.path().join("cxx-error.log").is_file());
    }

    #[test]
    fn describes_compile_steps() {
        let mut command = Command::new(CXX);
        command.args(["-O2", "-c", "/tmp/x/unity_fast.cpp", "-o", "y.o"]);
        assert_eq!(describe(&command), "compiling unity_fast.cpp");
        assert_eq!(describe(&Command::new(CXX)), "linking libdivqat_model.so");
    }

    #[test]
    fn picks_cxx_error_lines() {
        let stderr = "In file included from x.cpp:1:\nshim.cpp:3:1: error: 'foo' was not declared\nnote: here\n";
        assert_eq!(cxx_error_lines(stderr), ["shim.cpp:3:1: error: 'foo' was not declared"]);
        assert_eq!(cxx_error_lines("ld: oops\n"), ["ld: oops"]);
    }
}
