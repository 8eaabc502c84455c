//! Wire types of the APIs sreg speaks, and what every side of them shares:
//! image references and the rules for names and tags.

pub mod reference;

pub use reference::{Reference, ReferenceError};
