pub mod inspect;
pub mod recipes;
