//! SCIF apps (`%appinstall NAME`, `%apprun`, `%appenv`, `%applabels`,
//! `%appfiles`, `%apphelp`, `%apptest`), laid out as Apptainer does:
//!
//! ```text
//! /scif/apps/NAME/            the app's root (its %appinstall runs here)
//! /scif/apps/NAME/bin, lib    put on PATH and LD_LIBRARY_PATH by `--app NAME`
//! /scif/apps/NAME/scif/       runscript, test, runscript.help, labels.json,
//!                             env/01-base.sh (SCIF_* variables), env/90-environment.sh
//! /scif/data/NAME/input, output
//! /.singularity.d/env/94-appsbase.sh   SCIF_APP*_NAME variables of every app
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use sreg_recipe::{SectionKind, Stage};

use super::files::{self, Origin};
use super::paths::{ensure_dir, inside, replace_file};
use crate::build::log::BuildLog;

fn body(stage: &Stage, app: &str, kind: SectionKind) -> Option<String> {
    let mut out: Option<String> = None;
    for s in stage.app_sections(app).filter(|s| s.kind() == kind) {
        out.get_or_insert_with(String::new).push_str(&s.body());
    }
    out.filter(|b| !b.trim().is_empty())
}

/// The app's name as it goes into variable names.
fn var_name(app: &str) -> String {
    app.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Creates every app's folders and metadata and copies its `%appfiles`
/// (before `%post`, as Apptainer does).
pub fn write(log: &BuildLog, stage: &Stage, rootfs: &Path, context_dir: &Path) -> Result<()> {
    let apps = stage.apps();
    if apps.is_empty() {
        return Ok(());
    }
    let mut global = String::from("#!/bin/sh\n# SCIF apps of this image.\n");
    for app in &apps {
        let base = format!("/scif/apps/{app}");
        for dir in ["scif/env", "bin", "lib"] {
            ensure_dir(rootfs, &format!("{base}/{dir}"))?;
        }
        for dir in ["input", "output"] {
            ensure_dir(rootfs, &format!("/scif/data/{app}/{dir}"))?;
        }
        let meta = |rel: &str| inside(rootfs, format!("{base}/scif/{rel}"));
        let env01 = format!(
            "#!/bin/sh\nSCIF_APPNAME={app}\nSCIF_APPROOT=\"/scif/apps/{app}\"\n\
             SCIF_APPMETA=\"/scif/apps/{app}/scif\"\nSCIF_DATA=\"/scif/data\"\n\
             SCIF_APPDATA=\"/scif/data/{app}\"\nSCIF_APPINPUT=\"/scif/data/{app}/input\"\n\
             SCIF_APPOUTPUT=\"/scif/data/{app}/output\"\n\
             export SCIF_APPNAME SCIF_APPROOT SCIF_APPMETA SCIF_DATA SCIF_APPDATA SCIF_APPINPUT SCIF_APPOUTPUT\n"
        );
        replace_file(&meta("env/01-base.sh")?, env01.as_bytes(), 0o755)?;
        let v = var_name(app);
        global.push_str(&format!(
            "\nSCIF_APPDATA_{v}=/scif/data/{app}\nSCIF_APPMETA_{v}=/scif/apps/{app}/scif\n\
             SCIF_APPROOT_{v}=/scif/apps/{app}\nSCIF_APPBIN_{v}=/scif/apps/{app}/bin\n\
             SCIF_APPLIB_{v}=/scif/apps/{app}/lib\n\
             export SCIF_APPDATA_{v} SCIF_APPMETA_{v} SCIF_APPROOT_{v} SCIF_APPBIN_{v} SCIF_APPLIB_{v}\n"
        ));
        if let Some(env) = body(stage, app, SectionKind::AppEnv) {
            replace_file(&meta("env/90-environment.sh")?, env.as_bytes(), 0o755)?;
            global.push_str(&format!(
                "export SCIF_APPENV_{v}=\"/scif/apps/{app}/scif/env/90-environment.sh\"\n"
            ));
        }
        if let Some(run) = body(stage, app, SectionKind::AppRun) {
            let text = format!("#!/bin/sh\n\n{run}\n");
            replace_file(&meta("runscript")?, text.as_bytes(), 0o755)?;
            global.push_str(&format!(
                "export SCIF_APPRUN_{v}=\"/scif/apps/{app}/scif/runscript\"\n"
            ));
        }
        if let Some(test) = body(stage, app, SectionKind::AppTest) {
            let text = format!("#!/bin/sh\n\n{test}\n");
            replace_file(&meta("test")?, text.as_bytes(), 0o755)?;
        }
        if let Some(help) = body(stage, app, SectionKind::AppHelp) {
            replace_file(&meta("runscript.help")?, help.as_bytes(), 0o644)?;
        }
        let mut labels = BTreeMap::from([("SCIF_APP_NAME".to_string(), app.clone())]);
        for s in stage
            .app_sections(app)
            .filter(|s| s.kind() == SectionKind::AppLabels)
        {
            for l in s.labels() {
                labels.insert(l.name, l.value);
            }
        }
        let mut json = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        labels.serialize(&mut serde_json::Serializer::with_formatter(&mut json, fmt))?;
        replace_file(&meta("labels.json")?, &json, 0o644)?;
        global.push_str(&format!(
            "export SCIF_APPLABELS_{v}=\"/scif/apps/{app}/scif/labels.json\"\n"
        ));
        for s in stage
            .app_sections(app)
            .filter(|s| s.kind() == SectionKind::AppFiles)
        {
            for entry in s.files() {
                files::copy_entry(log, &Origin::Host(context_dir), &entry, rootfs, &base)?;
            }
        }
    }
    let path = inside(rootfs, ".singularity.d/env/94-appsbase.sh")?;
    replace_file(&path, global.as_bytes(), 0o755)
}

/// What `%appinstall` sections add to the end of `%post`: each runs in its
/// app's folder with the app's base environment.
pub fn install_script(stage: &Stage) -> String {
    let mut out = String::new();
    for app in stage.apps() {
        if let Some(install) = body(stage, &app, SectionKind::AppInstall) {
            out.push_str(&format!(
                "\n# %appinstall {app}\ncd /\n. /scif/apps/{app}/scif/env/01-base.sh\ncd /scif/apps/{app}\n{install}\ncd /\n"
            ));
        }
    }
    out
}
