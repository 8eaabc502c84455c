//! The `inspect-metadata.json` object Apptainer puts in every SIF it builds
//! (a JSON.Generic object): what `apptainer inspect` prints, read from the
//! finished root filesystem so it says exactly what the image holds.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

/// Its object name in the SIF, as Apptainer names it.
pub const OBJECT_NAME: &str = "inspect-metadata.json";

#[derive(Serialize, Default)]
struct Attributes {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    apps: BTreeMap<String, AppAttributes>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    environment: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    runscript: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    test: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    helpfile: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    deffile: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    startscript: String,
}

#[derive(Serialize, Default)]
struct AppAttributes {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    environment: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    runscript: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    test: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    helpfile: String,
}

fn read(rootfs: &Path, rel: &str) -> String {
    fs::read_to_string(rootfs.join(rel)).unwrap_or_default()
}

fn labels(rootfs: &Path, rel: &str) -> BTreeMap<String, String> {
    let text = read(rootfs, rel);
    let parsed: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&text).unwrap_or_default();
    parsed
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect()
}

/// The environment files `apptainer inspect --environment` shows.
fn environment(rootfs: &Path, dir: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(entries) = fs::read_dir(rootfs.join(dir)) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with("-environment.sh") || name.starts_with("10-docker") {
            out.insert(
                format!("/{dir}/{name}"),
                read(rootfs, &format!("{dir}/{name}")),
            );
        }
    }
    out
}

/// The JSON text of the object, for the image in `rootfs` with `apps`.
pub fn metadata(rootfs: &Path, apps: &[String]) -> Result<Vec<u8>> {
    let sd = ".singularity.d";
    let mut attrs = Attributes {
        environment: environment(rootfs, &format!("{sd}/env")),
        labels: labels(rootfs, &format!("{sd}/labels.json")),
        runscript: read(rootfs, &format!("{sd}/runscript")),
        test: read(rootfs, &format!("{sd}/test")),
        helpfile: read(rootfs, &format!("{sd}/runscript.help")),
        deffile: read(rootfs, &format!("{sd}/Singularity")),
        startscript: read(rootfs, &format!("{sd}/startscript")),
        ..Attributes::default()
    };
    for app in apps {
        let meta = format!("scif/apps/{app}/scif");
        attrs.apps.insert(
            app.clone(),
            AppAttributes {
                environment: environment(rootfs, &format!("{meta}/env")),
                labels: labels(rootfs, &format!("{meta}/labels.json")),
                runscript: read(rootfs, &format!("{meta}/runscript")),
                test: read(rootfs, &format!("{meta}/test")),
                helpfile: read(rootfs, &format!("{meta}/runscript.help")),
            },
        );
    }
    let doc = serde_json::json!({ "data": { "attributes": attrs }, "type": "container" });
    Ok(serde_json::to_vec(&doc)?)
}
