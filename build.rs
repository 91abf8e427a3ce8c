//! With the `train` feature, the `divqat` binary and its tests link libtorch
//! (through the trainer crate). torch-sys (`links = "tch"`) exports its lib dir
//! as `DEP_TCH_LIBTORCH_LIB` to direct dependents only, hence the optional
//! torch-sys dependency; embedding it as rpath lets the executables find
//! libtorch_cpu.so without LD_LIBRARY_PATH.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
