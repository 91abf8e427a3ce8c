//! Lets binaries and test executables of this crate find libtorch at run time.
//!
//! torch-sys (`links = "tch"`) prints `cargo:libtorch_lib=<dir>`, which cargo hands
//! to direct dependents as `DEP_TCH_LIBTORCH_LIB`. torch-sys itself cannot add an
//! rpath to final executables, so without this they fail with exit 127
//! ("libtorch_cpu.so: cannot open shared object file").

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
