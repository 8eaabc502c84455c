//! OCI images for the `docker`, `oci`, `oci-archive` and `docker-archive`
//! sources: pulled from a registry ([`pull`]) or read from disk
//! ([`layout`]), then unpacked ([`image`]) by applying their layers
//! ([`layers`]).

pub mod image;
pub mod layers;
pub mod layout;
pub mod pull;
#[cfg(test)]
pub mod test_job;
