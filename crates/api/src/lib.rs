//! Wire types of the APIs sreg speaks.
