//! Model extraction against a deployed victim (issue 6): the victim behind an oracle
//! that counts queries and applies post-hoc defenses, and the attacks that try to
//! steal it.
//!
//! - [`oracle`]: a victim model served by any backend (float checkpoint, fake-quant,
//!   integer reference, functional model, RTL simulation) returning probability
//!   vectors; the query-counting, budget-enforcing [`oracle::Oracle`]; the utility cost
//!   of a defense ([`oracle::defense_utility`]).
//! - [`defense`]: the defenses (rounding, top-k, label-only, Gaussian noise, reverse
//!   sigmoid, adaptive misinformation, prediction poisoning / MAD), parsed from
//!   `name:key=value,...` specs and composed into a [`defense::DefenseChain`]
//!   (docs/defenses.md gives every formula with its citation).
//! - [`misinformation`]: the misinformation model of adaptive misinformation.
//! - [`poisoning`]: the gradient-redirection heuristic of MAD.
//! - [`queries`]: the query sets (animal-mnist, fashion-mnist-train, digits, cifar10:DIR)
//!   converted to the victim's input shape.
//! - [`surrogate`]: the attacker's model (any zoo architecture) trained on the answers.
//! - [`knockoff`]: the attack driver and KnockoffNets (random and adaptive); [`jbda`]:
//!   Jacobian-based dataset augmentation.
//! - [`metrics`]: victim, defended and surrogate accuracy, fidelity, L1, queries.
//! - [`experiment`]: one attack from its spec (`divqat attack`) and resumable grids
//!   (`divqat experiment`) with CSV/JSON results and [`plot`]s (SVG); [`compare`]: the
//!   grid's victims against a baseline victim, per setting and at equal L1.

pub mod compare;
pub mod defense;
pub mod experiment;
pub mod jbda;
pub mod knockoff;
pub mod metrics;
pub mod misinformation;
pub mod oracle;
pub mod plot;
pub mod poisoning;
pub mod queries;
pub mod surrogate;
