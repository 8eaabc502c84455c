pub mod agent;
pub mod inspect;
pub mod login;
pub mod pull;
pub mod push;
pub mod recipes;
pub mod search;
pub mod watch;
