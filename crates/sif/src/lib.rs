//! The Singularity Image Format (SIF): read, verify, write.
