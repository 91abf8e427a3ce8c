//! A Verilated model loaded from the shared library that
//! [`verilator_sys::build_model`] built, driven through its C shim.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void, CString};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use libloading::Library;
use verilator_sys::{build_model, BuildOptions, Direction, ModelBuild, Port, SHIM_VERSION};

use crate::SimError;

/// A port of one loaded design, from [`VerilatedModel::port`]. It is valid
/// for every model of that design and refused by models of other designs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortId {
    library: u64,
    index: u32,
}

/// One instance of a Verilated design. Not `Send`: Verilator models are
/// driven from one thread.
pub struct VerilatedModel {
    loaded: &'static Loaded,
    /// The shim's model; owned by this struct, freed in `Drop`.
    handle: NonNull<c_void>,
    /// Simulation time in half clock periods (one per [`Self::tick`] edge).
    time: u64,
    vcd_open: bool,
    build: ModelBuild,
}

impl VerilatedModel {
    /// Builds `verilog` (or finds it in the cache) and loads it.
    pub fn new(verilog: &str, top: &str, opts: &BuildOptions) -> Result<Self, SimError> {
        Self::load(&build_model(verilog, top, opts)?)
    }

    /// A fresh model from an existing build. Evaluates once with every
    /// input at 0, so that `initial` blocks have run and outputs hold their
    /// reset values before the first [`Self::tick`].
    pub fn load(build: &ModelBuild) -> Result<Self, SimError> {
        let loaded = load_library(build)?;
        // SAFETY: `new` takes no arguments; it returns NULL on failure.
        let raw = unsafe { (loaded.shim.new)() };
        let handle = NonNull::new(raw).ok_or_else(|| SimError::ModelCreate(build.library.clone()))?;
        let mut model = VerilatedModel {
            loaded,
            handle,
            time: 0,
            vcd_open: false,
            build: build.clone(),
        };
        model.eval();
        Ok(model)
    }

    /// The build this model came from (paths, cache key, build statistics).
    pub fn build(&self) -> &ModelBuild {
        &self.build
    }

    /// The top module's ports, in header order.
    pub fn ports(&self) -> &[Port] {
        &self.loaded.ports
    }

    /// The port called `name`.
    pub fn port(&self, name: &str) -> Result<PortId, SimError> {
        let index = self
            .ports()
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| SimError::UnknownPort {
                name: name.to_string(),
                available: self
                    .ports()
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        Ok(PortId {
            library: self.loaded.serial,
            index: index as u32,
        })
    }

    /// Writes input `port`; `value` must fit its width (no silent truncation).
    pub fn set(&mut self, port: PortId, value: u64) -> Result<(), SimError> {
        let info = self.input(port)?;
        if info.width < 64 && value >> info.width != 0 {
            return Err(SimError::ValueTooWide {
                port: info.name.clone(),
                width: info.width,
                value,
            });
        }
        self.write(port, value);
        Ok(())
    }

    /// Writes a two's-complement value into input `port`, which must hold it.
    pub fn set_signed(&mut self, port: PortId, value: i64) -> Result<(), SimError> {
        let info = self.input(port)?;
        let (min, max) = signed_range(info.width);
        if value < min || value > max {
            return Err(SimError::SignedOutOfRange {
                port: info.name.clone(),
                width: info.width,
                value,
            });
        }
        self.write(port, value as u64 & mask(info.width));
        Ok(())
    }

    /// The raw bits of `port` (input or output), zero-extended.
    pub fn get(&self, port: PortId) -> Result<u64, SimError> {
        self.info(port)?;
        // SAFETY: the handle is live until `Drop`; the index is in this
        // design's port table (checked by `info`).
        Ok(unsafe { (self.loaded.shim.get)(self.handle.as_ptr(), port.index) })
    }

    /// `port` read as a two's-complement number of its width.
    pub fn get_signed(&self, port: PortId) -> Result<i64, SimError> {
        let width = self.info(port)?.width;
        let bits = self.get(port)?;
        let shift = 64 - width;
        Ok(((bits << shift) as i64) >> shift)
    }

    /// Evaluates the model with the current inputs.
    pub fn eval(&mut self) {
        // SAFETY: the handle is live until `Drop`.
        unsafe { (self.loaded.shim.eval)(self.handle.as_ptr()) }
    }

    /// One clock cycle: `clock` low and evaluate, then high and evaluate.
    ///
    /// Evaluating with the clock low first matters: Verilator sees an edge
    /// only as a change between two evaluations, so a clock that is already
    /// high on a model's first evaluation gives no rising edge and the first
    /// cycle would be lost. Inputs set before `tick` are sampled at its edge.
    pub fn tick(&mut self, clock: PortId) -> Result<(), SimError> {
        let info = self.input(clock)?;
        if info.width != 1 {
            return Err(SimError::NotAClock {
                port: info.name.clone(),
                width: info.width,
            });
        }
        self.half_cycle(clock, 0);
        self.half_cycle(clock, 1);
        Ok(())
    }

    fn half_cycle(&mut self, clock: PortId, level: u64) {
        self.time += 1;
        // SAFETY: the handle is live until `Drop`.
        unsafe { (self.loaded.shim.set_time)(self.handle.as_ptr(), self.time) };
        self.write(clock, level);
        self.eval();
        if self.vcd_open {
            // SAFETY: the handle is live; the shim ignores a closed trace.
            unsafe { (self.loaded.shim.trace_dump)(self.handle.as_ptr(), self.time) };
        }
    }

    /// Simulation time: two units per [`Self::tick`].
    pub fn time(&self) -> u64 {
        self.time
    }

    /// Starts writing a VCD file that every later half cycle of
    /// [`Self::tick`] appends to; needs a build with `trace: true`.
    pub fn open_vcd(&mut self, path: &Path) -> Result<(), SimError> {
        if !self.loaded.trace {
            return Err(SimError::TraceNotBuilt);
        }
        let c_path =
            CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| SimError::VcdOpen(path.to_path_buf()))?;
        // SAFETY: the handle is live and `c_path` is a NUL-terminated string
        // that outlives the call (the shim copies it).
        let status = unsafe { (self.loaded.shim.trace_open)(self.handle.as_ptr(), c_path.as_ptr()) };
        if status != 0 {
            return Err(SimError::VcdOpen(path.to_path_buf()));
        }
        self.vcd_open = true;
        // The values before the first tick.
        // SAFETY: the handle is live and its trace open.
        unsafe { (self.loaded.shim.trace_dump)(self.handle.as_ptr(), self.time) };
        Ok(())
    }

    /// Flushes and closes the VCD file (also done on drop).
    pub fn close_vcd(&mut self) {
        // SAFETY: the handle is live; closing a closed trace does nothing.
        unsafe { (self.loaded.shim.trace_close)(self.handle.as_ptr()) };
        self.vcd_open = false;
    }

    fn info(&self, port: PortId) -> Result<&Port, SimError> {
        if port.library != self.loaded.serial {
            return Err(SimError::ForeignPort);
        }
        self.ports().get(port.index as usize).ok_or(SimError::ForeignPort)
    }

    fn input(&self, port: PortId) -> Result<&Port, SimError> {
        let info = self.info(port)?;
        match info.direction {
            Direction::Input => Ok(info),
            Direction::Output => Err(SimError::NotAnInput(info.name.clone())),
        }
    }

    /// Callers have checked that `port` is an input of this design.
    fn write(&mut self, port: PortId, value: u64) {
        // SAFETY: the handle is live until `Drop`; the index is an input of
        // this design, so the shim's switch has a case for it.
        unsafe { (self.loaded.shim.set)(self.handle.as_ptr(), port.index, value) };
    }
}

impl Drop for VerilatedModel {
    fn drop(&mut self) {
        // SAFETY: the handle came from `new` and is freed exactly once, here;
        // the library stays loaded (see `load_library`).
        unsafe { (self.loaded.shim.delete)(self.handle.as_ptr()) }
    }
}

/// Clock cycles per second of `model` over `cycles` ticks of `clock`.
pub fn clock_rate(model: &mut VerilatedModel, clock: PortId, cycles: u64) -> Result<f64, SimError> {
    if cycles == 0 {
        return Err(SimError::NoCycles);
    }
    let start = Instant::now();
    for _ in 0..cycles {
        model.tick(clock)?;
    }
    Ok(cycles as f64 / start.elapsed().as_secs_f64())
}

fn mask(width: u32) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1 << width) - 1
    }
}

fn signed_range(width: u32) -> (i64, i64) {
    let max = (mask(width) >> 1) as i64;
    (-max - 1, max)
}

/// The shim's C functions (see `verilator_sys::shim` for their contract).
struct Shim {
    new: unsafe extern "C" fn() -> *mut c_void,
    delete: unsafe extern "C" fn(*mut c_void),
    eval: unsafe extern "C" fn(*mut c_void),
    set_time: unsafe extern "C" fn(*mut c_void, u64),
    set: unsafe extern "C" fn(*mut c_void, u32, u64) -> c_int,
    get: unsafe extern "C" fn(*mut c_void, u32) -> u64,
    trace_open: unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int,
    trace_dump: unsafe extern "C" fn(*mut c_void, u64),
    trace_close: unsafe extern "C" fn(*mut c_void),
}

/// A loaded library with its resolved shim and checked port table.
struct Loaded {
    shim: Shim,
    ports: Vec<Port>,
    trace: bool,
    /// Distinguishes this design's [`PortId`]s from other designs'.
    serial: u64,
}

/// Loads `build.library` once per process and keeps it loaded for good.
///
/// Never unloading is deliberate: Verilator's runtime registers exit
/// handlers and thread-local destructors that would call into unmapped code
/// after a `dlclose`, and a library is a few hundred KB.
fn load_library(build: &ModelBuild) -> Result<&'static Loaded, SimError> {
    static LOADED: Mutex<BTreeMap<PathBuf, &'static Loaded>> = Mutex::new(BTreeMap::new());
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    let mut loaded = LOADED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(existing) = loaded.get(&build.library) {
        return Ok(existing);
    }
    let load_error = |reason: String| SimError::Load {
        path: build.library.clone(),
        reason,
    };
    // SAFETY: loading runs the library's initializers. Libraries in the cache
    // are built by `build_model` from Verilator's C++ and our shim, whose
    // initializers only set up Verilator's own statics.
    let library = unsafe { Library::new(&build.library) }.map_err(|e| load_error(e.to_string()))?;
    let library: &'static Library = Box::leak(Box::new(library));
    let shim = resolve_shim(library).map_err(load_error)?;
    check_port_table(library, &build.ports).map_err(load_error)?;
    let entry = Box::leak(Box::new(Loaded {
        shim,
        ports: build.ports.clone(),
        trace: build.trace,
        serial: SERIAL.fetch_add(1, Ordering::Relaxed),
    }));
    loaded.insert(build.library.clone(), entry);
    Ok(entry)
}

/// Looks up `name` as a `T`, copied out: the library is never unloaded.
///
/// # Safety
/// `T` must be the function-pointer type of the C function `name`.
unsafe fn symbol<T: Copy>(library: &'static Library, name: &str) -> Result<T, String> {
    // SAFETY: forwarded to the caller.
    unsafe { library.get::<T>(name) }
        .map(|s| *s)
        .map_err(|e| format!("missing {name}: {e}"))
}

fn resolve_shim(library: &'static Library) -> Result<Shim, String> {
    // SAFETY: each type below is the signature of the C function of that
    // name in the shim source (verilator_sys::shim), which is a crate
    // version-locked to this one; the shim version is checked first.
    unsafe {
        let version: unsafe extern "C" fn() -> u32 = symbol(library, "divqat_shim_version")?;
        let found = version();
        if found != SHIM_VERSION {
            return Err(format!("shim version {found}, expected {SHIM_VERSION}"));
        }
        Ok(Shim {
            new: symbol(library, "divqat_new")?,
            delete: symbol(library, "divqat_delete")?,
            eval: symbol(library, "divqat_eval")?,
            set_time: symbol(library, "divqat_set_time")?,
            set: symbol(library, "divqat_set")?,
            get: symbol(library, "divqat_get")?,
            trace_open: symbol(library, "divqat_trace_open")?,
            trace_dump: symbol(library, "divqat_trace_dump")?,
            trace_close: symbol(library, "divqat_trace_close")?,
        })
    }
}

/// The library's own port table must match the build's: both index the
/// same switch, so a mismatch would read and write the wrong ports.
fn check_port_table(library: &'static Library, ports: &[Port]) -> Result<(), String> {
    // SAFETY: signatures as in the shim source; indices below the library's
    // own count; names are static NUL-terminated strings in the library.
    let table = unsafe {
        let count: unsafe extern "C" fn() -> u32 = symbol(library, "divqat_port_count")?;
        let name: unsafe extern "C" fn(u32) -> *const c_char = symbol(library, "divqat_port_name")?;
        let width: unsafe extern "C" fn(u32) -> u32 = symbol(library, "divqat_port_width")?;
        let is_input: unsafe extern "C" fn(u32) -> c_int = symbol(library, "divqat_port_is_input")?;
        (0..count())
            .map(|i| {
                let text = std::ffi::CStr::from_ptr(name(i)).to_string_lossy().into_owned();
                (text, width(i), is_input(i) != 0)
            })
            .collect::<Vec<_>>()
    };
    let expected: Vec<_> = ports
        .iter()
        .map(|p| (p.name.clone(), p.width, p.direction == Direction::Input))
        .collect();
    if table == expected {
        Ok(())
    } else {
        Err(format!("port table {table:?} differs from the build's {expected:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_ranges_and_masks() {
        assert_eq!(signed_range(8), (-128, 127));
        assert_eq!(signed_range(1), (-1, 0));
        assert_eq!(signed_range(64), (i64::MIN, i64::MAX));
        assert_eq!(mask(64), u64::MAX);
        assert_eq!(mask(12), 0xfff);
    }
}
