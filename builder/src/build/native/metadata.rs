//! What a recipe says about its image, written into `/.singularity.d` the
//! way Apptainer lays it out: `runscript`, `startscript`, `test`,
//! `runscript.help`, `labels.json`, the definition (`Singularity`), the
//! `%environment` (`env/90-environment.sh`), and what an OCI source's
//! config gives (`env/10-docker2singularity.sh`, a runscript from its
//! ENTRYPOINT and CMD).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Serialize;
use sreg_recipe::{SectionKind, Stage};

use super::bootstrap::SourceConfig;
use super::paths::{inside, replace_file};

/// Where `%post` may write `NAME value` lines that become labels
/// (`$APPTAINER_LABELS`); read and removed when labels.json is written.
pub const BUILD_LABELS: &str = "/.build.labels";
/// Where `%post` may append environment for run time (`$APPTAINER_ENVIRONMENT`).
pub const POST_ENVIRONMENT: &str = "/.singularity.d/env/91-environment.sh";

/// Quotes `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// After the bootstrap: the OCI config's environment and, when the image
/// has no runscript of its own yet, one that runs its ENTRYPOINT and CMD.
pub fn write_source_config(rootfs: &Path, source: &SourceConfig) -> Result<()> {
    if !source.env.is_empty() {
        let mut script = String::from("#!/bin/sh\n# From the OCI image config (Env).\n");
        for entry in &source.env {
            let Some((name, value)) = entry.split_once('=') else {
                continue;
            };
            if !is_shell_name(name) {
                continue;
            }
            if name == "PATH" {
                script.push_str(&format!("export PATH={}\n", shell_quote(value)));
            } else {
                // Values set when the container starts win, as with Apptainer.
                script.push_str(&format!(
                    "export {name}=\"${{{name}:-{}}}\"\n",
                    double_quote_body(value)
                ));
            }
        }
        let path = inside(rootfs, ".singularity.d/env/10-docker2singularity.sh")?;
        replace_file(&path, script.as_bytes(), 0o755)?;
    }
    if !source.entrypoint.is_empty() || !source.cmd.is_empty() {
        let words = |v: &[String]| {
            v.iter()
                .map(|w| shell_quote(w))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let entry = words(&source.entrypoint);
        let cmd = words(&source.cmd);
        let cd = match &source.working_dir {
            Some(d) if !d.is_empty() => format!("cd {} || exit 1\n", shell_quote(d)),
            _ => String::new(),
        };
        let script = format!(
            "#!/bin/sh\n# From the OCI image config: ENTRYPOINT, then the arguments given, else CMD.\n\
             {cd}if [ $# -gt 0 ]; then\n    set -- {entry} \"$@\"\nelse\n    set -- {entry} {cmd}\nfi\nexec \"$@\"\n"
        );
        let path = inside(rootfs, ".singularity.d/runscript")?;
        replace_file(&path, script.as_bytes(), 0o755)?;
    }
    Ok(())
}

fn is_shell_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `s` made safe between double quotes.
fn double_quote_body(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The shebang and body of a `%runscript`/`%startscript`/`%test`: `-c
/// SHELL` on the section or a `#!` first line chooses the interpreter.
fn script_file(stage: &Stage, kind: SectionKind) -> Option<String> {
    let body = stage.script(kind)?;
    if body.trim().is_empty() {
        return None;
    }
    let shell = stage
        .sections_of(kind)
        .filter(|s| s.app().is_none())
        .find_map(|s| s.shell());
    let (shebang, rest) = match shell {
        Some(sh) => (format!("#!{sh}"), body.as_str()),
        None if body.trim_start().starts_with("#!") => {
            let body = body.trim_start();
            let (first, rest) = body.split_once('\n').unwrap_or((body, ""));
            (first.trim().to_string(), rest)
        }
        None => ("#!/bin/sh".to_string(), body.as_str()),
    };
    Some(format!("{shebang}\n\n{rest}\n"))
}

/// Everything the recipe's metadata sections say, written after `%post`.
pub struct Facts<'a> {
    pub stage: &'a Stage,
    pub source: &'a SourceConfig,
    /// The definition file as written.
    pub recipe_text: &'a str,
    /// GOARCH-style architecture of the image.
    pub arch: &'a str,
}

/// Writes the metadata files and returns labels.json's bytes (for the SIF).
pub fn write(rootfs: &Path, facts: &Facts<'_>) -> Result<Vec<u8>> {
    let stage = facts.stage;
    let sd = |rel: &str| inside(rootfs, format!(".singularity.d/{rel}"));
    if let Some(help) = stage.help().filter(|h| !h.is_empty()) {
        replace_file(
            &sd("runscript.help")?,
            format!("{help}\n").as_bytes(),
            0o644,
        )?;
    }
    let labels = labels_json(rootfs, facts)?;
    replace_file(&sd("labels.json")?, &labels, 0o644)?;
    write_definition(rootfs, facts.recipe_text)?;
    if let Some(env) = stage.script(SectionKind::Environment) {
        let path = sd("env/90-environment.sh")?;
        let mut text = fs::read_to_string(&path).unwrap_or_else(|_| "#!/bin/sh\n".into());
        text.push('\n');
        text.push_str(&env);
        text.push('\n');
        replace_file(&path, text.as_bytes(), 0o755)?;
    }
    for (kind, name) in [
        (SectionKind::Startscript, "startscript"),
        (SectionKind::Runscript, "runscript"),
        (SectionKind::Test, "test"),
    ] {
        if let Some(script) = script_file(stage, kind) {
            replace_file(&sd(name)?, script.as_bytes(), 0o755)?;
        }
    }
    Ok(labels)
}

/// `/.singularity.d/Singularity`; an earlier one (the base image's) moves
/// to `bootstrap_history/` as Apptainer keeps it.
fn write_definition(rootfs: &Path, text: &str) -> Result<()> {
    let def = inside(rootfs, ".singularity.d/Singularity")?;
    if fs::symlink_metadata(&def).is_ok() {
        let history = inside(rootfs, ".singularity.d/bootstrap_history")?;
        fs::create_dir_all(&history)
            .with_context(|| format!("cannot create {}", history.display()))?;
        let n = fs::read_dir(&history)?.count();
        fs::rename(&def, history.join(format!("Singularity{n}")))
            .with_context(|| format!("cannot move {} to its history", def.display()))?;
    }
    replace_file(&def, text.as_bytes(), 0o644)
}

/// labels.json: the base image's labels, the source's (OCI) labels,
/// Apptainer's build labels, what `%post` wrote to `$APPTAINER_LABELS`,
/// then the recipe's `%labels`, each later one winning.
fn labels_json(rootfs: &Path, facts: &Facts<'_>) -> Result<Vec<u8>> {
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    let existing = inside(rootfs, ".singularity.d/labels.json")?;
    if let Ok(text) = fs::read_to_string(&existing) {
        // A base image's labels that do not parse are dropped, not fatal.
        if let Ok(old) = serde_json::from_str::<BTreeMap<String, serde_json::Value>>(&text) {
            for (k, v) in old {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                labels.insert(k, v);
            }
        }
    }
    labels.extend(facts.source.labels.clone());
    build_labels(&mut labels, facts);
    let from_post = inside(rootfs, BUILD_LABELS)?;
    if let Ok(text) = fs::read_to_string(&from_post) {
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            labels.insert(k.to_string(), v.trim().to_string());
        }
        fs::remove_file(&from_post)
            .with_context(|| format!("cannot remove {}", from_post.display()))?;
    }
    for label in facts.stage.labels() {
        labels.insert(label.name, label.value);
    }
    // Tab-indented like Apptainer's, so both read alike.
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    labels.serialize(&mut ser)?;
    Ok(out)
}

fn build_labels(labels: &mut BTreeMap<String, String>, facts: &Facts<'_>) {
    let now = build_time();
    let mut put = |k: &str, v: String| {
        labels.insert(k.to_string(), v);
    };
    put("org.label-schema.schema-version", "1.0".into());
    put("org.label-schema.build-date", apptainer_date(now));
    put(
        "org.opencontainers.image.created",
        humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_secs(now))
            .to_string(),
    );
    put(
        "org.label-schema.usage.sreg.version",
        env!("CARGO_PKG_VERSION").into(),
    );
    put("org.label-schema.build-arch", facts.arch.into());
    put("org.opencontainers.image.architecture", facts.arch.into());
    if facts.stage.help().is_some_and(|h| !h.is_empty()) {
        put(
            "org.label-schema.usage",
            "/.singularity.d/runscript.help".into(),
        );
        put(
            "org.label-schema.usage.singularity.runscript.help",
            "/.singularity.d/runscript.help".into(),
        );
    }
    for field in facts.stage.header().fields() {
        put(
            &format!(
                "org.label-schema.usage.singularity.deffile.{}",
                field.name()
            ),
            field.value.clone(),
        );
    }
    if let Some(resolved) = &facts.source.resolved {
        put("org.opencontainers.image.base.name", resolved.clone());
    }
}

/// Seconds since 1970: `SOURCE_DATE_EPOCH` when set (reproducible builds), else now.
fn build_time() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        })
}

/// Apptainer's build-date form, in UTC: `Tuesday_5_March_2024_9:7:3_UTC`.
fn apptainer_date(secs: u64) -> String {
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{}_{d}_{}_{y}_{}:{}:{}_UTC",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Year, month (1-12), day (1-31) of a day count since 1970-01-01
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_apptainers_form() {
        assert_eq!(apptainer_date(0), "Thursday_1_January_1970_0:0:0_UTC");
        // 2024-03-05T09:07:03Z
        assert_eq!(
            apptainer_date(1_709_629_623),
            "Tuesday_5_March_2024_9:7:3_UTC"
        );
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn quoting_survives_the_shell() {
        let v = "it's $HOME \"x\" `y`";
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "printf %s {}; printf '|'; X=\"{}\"; printf %s \"$X\"",
                shell_quote(v),
                double_quote_body(v)
            ))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{v}|{v}"));
    }
}
