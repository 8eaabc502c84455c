//! `sreg inspect FILE.sif [--json]`.
//!
//! Reads only the header, the descriptor table and the small metadata objects
//! (definition file, labels), so it takes the same time whatever the size of
//! the image's partitions.

use std::fs::File;
use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use indicatif::HumanBytes;
use serde::Serialize;
use sreg_sif::{Descriptor, Header, Sif};

use crate::cli::InspectArgs;

/// Version of the JSON document; bumped only on incompatible changes.
const SCHEMA: &str = "sreg.inspect/v1";

#[derive(Serialize)]
struct Report<'a> {
    schema: &'static str,
    path: String,
    file_size: u64,
    header: &'a Header,
    /// The used descriptors, in table order.
    objects: Vec<&'a Descriptor>,
    definition_file: Option<String>,
    labels: Option<serde_json::Value>,
    /// Structural problems found by the verifier, plus metadata that could not be read.
    problems: Vec<String>,
}

pub fn run(args: &InspectArgs) -> Result<()> {
    let path = &args.file;
    let mut sif: Sif<File> = Sif::open(path)
        .with_context(|| format!("{} is not a readable SIF file", path.display()))?;

    let mut problems: Vec<String> = sif.problems().iter().map(ToString::to_string).collect();
    let definition_file = sif.definition_file().unwrap_or_else(|e| {
        problems.push(format!("definition file: {e}"));
        None
    });
    let labels = sif.labels().unwrap_or_else(|e| {
        problems.push(format!("labels: {e}"));
        None
    });

    let report = Report {
        schema: SCHEMA,
        path: path.display().to_string(),
        file_size: sif.file_len(),
        header: sif.header(),
        objects: sif.descriptors().iter().filter(|d| d.is_used()).collect(),
        definition_file,
        labels,
        problems,
    };

    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_text(&mut out, &report)?;
    }
    out.flush()?;

    if !report.problems.is_empty() {
        bail!(
            "{}: {} structural problem(s) found",
            path.display(),
            report.problems.len()
        );
    }
    Ok(())
}

fn write_text(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    let h = r.header;
    writeln!(out, "File:        {} ({})", r.path, HumanBytes(r.file_size))?;
    writeln!(out, "ID:          {}", h.id.hyphenated())?;
    writeln!(out, "Version:     {}", h.version_text())?;
    writeln!(out, "Arch:        {}", h.arch.name())?;
    writeln!(out, "Created:     {}", time(h.created_at))?;
    writeln!(out, "Modified:    {}", time(h.modified_at))?;
    let launch = h.launch_script_text();
    if !launch.is_empty() {
        writeln!(out, "Launch:      {}", launch.trim_end())?;
    }
    writeln!(
        out,
        "Descriptors: {} used of {}, table at {}, data at {} ({})",
        r.objects.len(),
        h.descriptors_total,
        h.descriptors_offset,
        h.data_offset,
        HumanBytes(h.data_size.max(0) as u64)
    )?;

    writeln!(out, "\nObjects:")?;
    writeln!(
        out,
        "  {:>4} {:>6} {:>8} {:<14} {:>12} {:>12}  DETAILS",
        "ID", "GROUP", "LINK", "KIND", "OFFSET", "SIZE"
    )?;
    for d in &r.objects {
        let group = d.group_id().map_or("-".into(), |g| g.to_string());
        let link = match d.link() {
            Some(l) => serde_json::to_value(l)
                .ok()
                .and_then(|v| Some(format!("{}:{}", v["type"].as_str()?, v["id"])))
                .unwrap_or_default(),
            None => "-".into(),
        };
        writeln!(
            out,
            "  {:>4} {:>6} {:>8} {:<14} {:>12} {:>12}  {}",
            d.id(),
            group,
            link,
            d.data_type().name(),
            d.offset(),
            d.size(),
            details(d)
        )?;
    }

    if let Some(labels) = r.labels.as_ref().and_then(|l| l.as_object()) {
        writeln!(out, "\nLabels:")?;
        for (k, v) in labels {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            writeln!(out, "  {k}: {v}")?;
        }
    }
    if let Some(def) = &r.definition_file {
        writeln!(out, "\nDefinition file:")?;
        for line in def.lines() {
            writeln!(out, "  {line}")?;
        }
    }
    if !r.problems.is_empty() {
        writeln!(out, "\nProblems:")?;
        for p in &r.problems {
            writeln!(out, "  - {p}")?;
        }
    }
    Ok(())
}

/// The kind-specific fields of a descriptor, as one short line.
fn details(d: &Descriptor) -> String {
    let mut parts = Vec::new();
    if let Some(p) = d.partition() {
        parts.push(format!(
            "{} {} {}",
            p.fs_type.name(),
            p.part_type.name(),
            p.arch.name()
        ));
    }
    if let Some(s) = d.signature() {
        parts.push(format!("hash {}", s.hash_type.name()));
        if let Some(fp) = s.fingerprint_hex() {
            parts.push(format!("entity {fp}"));
        }
    }
    if let Some(m) = d.crypto_message() {
        parts.push(format!(
            "format {} message {}",
            m.format.name(),
            m.message.name()
        ));
    }
    if let Some(s) = d.sbom() {
        parts.push(format!("format {}", s.format.name()));
    }
    if let Some(o) = d.oci_blob() {
        parts.push(format!("digest {}", o.digest));
    }
    let name = d.name();
    if !name.is_empty() {
        parts.push(format!("name {name:?}"));
    }
    parts.join(", ")
}

fn time(unix: i64) -> String {
    match u64::try_from(unix) {
        Ok(secs) => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
        }
        Err(_) => format!("{unix} (invalid)"),
    }
}
