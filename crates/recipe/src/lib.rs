//! Singularity/Apptainer definition files: parse, render, discover.
