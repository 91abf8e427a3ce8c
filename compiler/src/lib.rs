//! The integer model of divqat and everything that needs no hardware: the integer
//! arithmetic (defined once, see `docs/integer-semantics.md`), the model file format,
//! validation, the reference interpreter and the backend interface.

pub mod arith;
pub mod backend;
pub mod builder;
pub mod cycles;
pub mod format;
pub mod functional;
pub mod hw;
pub mod ir;
pub mod isa;
pub mod lower;
pub mod reference;
pub mod synthetic;
pub mod validate;
pub mod zoo;

pub use backend::{Backend, BackendError, Inference};
pub use format::{load, save, ModelFileError};
pub use ir::Model;
pub use reference::Reference;
pub use validate::ModelError;
