//! Parser API: accessors, build arguments, lossless and canonical rendering
//! on odd inputs, and no panics on arbitrary text.

use std::collections::BTreeMap;

use sreg_recipe::{Definition, ErrorKind, SectionKind, Severity};

const MULTI: &str = "Bootstrap: docker\nFrom: golang:1.22\nStage: build\n\n%post\n    go build\n\nBootstrap: docker\nFrom: alpine\n\n%files from build\n    /out/app /usr/bin/app\n\n%labels\n    Version 1.0\n\n%help\n    Runs app.\n";

#[test]
fn accessors() {
    let def = Definition::parse(MULTI).expect("parses");
    assert_eq!(def.stages().len(), 2);
    assert_eq!(def.stages()[0].name(), Some("build"));
    assert_eq!(def.stages()[0].from(), Some("golang:1.22"));
    assert_eq!(def.bootstrap(), "docker");
    assert_eq!(def.from(), Some("alpine"));
    let last = def.final_stage();
    assert_eq!(last.files()[0].from.as_deref(), Some("build"));
    assert!(last.host_files().is_empty());
    assert_eq!(last.labels()[0].name, "Version");
    assert_eq!(last.help().as_deref(), Some("    Runs app."));
    assert_eq!(last.sections_of(SectionKind::Files).count(), 1);
    assert_eq!(
        def.stages()[0].script(SectionKind::Post).as_deref(),
        Some("    go build\n\n")
    );
    assert_eq!(def.render(), MULTI);
}

#[test]
fn post_shell_and_app_sections() {
    let text = "Bootstrap: scratch\n%post -c /bin/bash\n  true\n%apprun tool\n  exec tool\n%appfiles tool\n  tool.bin /bin/tool\n";
    let def = Definition::parse(text).expect("parses");
    let st = def.final_stage();
    assert_eq!(st.sections()[0].shell(), Some("/bin/bash"));
    assert_eq!(st.apps(), vec!["tool".to_owned()]);
    assert_eq!(st.app_sections("tool").count(), 2);
    assert_eq!(st.host_files()[0].app.as_deref(), Some("tool"));
}

#[test]
fn build_args_substitution() {
    let text = "Bootstrap: docker\nFrom: ubuntu:{{ V }}\n%arguments\n  V=22.04\n  W={{ not_touched }}\n%post\n  echo {{W}} {{ V}}\n";
    let def = Definition::parse(text).expect("parses");
    let names: Vec<_> = def
        .build_args()
        .into_iter()
        .map(|r| (r.name, r.line, r.column))
        .collect();
    assert_eq!(
        names,
        vec![("V".into(), 2, 14), ("W".into(), 7, 8), ("V".into(), 7, 14)]
    );
    let defaults = def.with_build_args(&BTreeMap::new()).expect("defaults");
    assert_eq!(defaults.from(), Some("ubuntu:22.04"));
    assert!(defaults.render().contains("echo {{ not_touched }} 22.04"));

    let mut values = BTreeMap::new();
    values.insert("V".to_owned(), "24.04".to_owned());
    let over = def.with_build_args(&values).expect("override");
    assert_eq!(over.from(), Some("ubuntu:24.04"));
}

#[test]
fn undefined_build_arg_is_an_error_with_position() {
    let text = "Bootstrap: docker\nFrom: alpine\n%post\n  echo {{ MISSING }}\n";
    let def = Definition::parse(text).expect("parses");
    assert_eq!(def.warnings().len(), 1);
    assert_eq!(def.warnings()[0].severity, Severity::Warning);
    let err = def
        .with_build_args(&BTreeMap::new())
        .expect_err("undefined");
    assert_eq!((err.line, err.column), (4, 8));
    assert!(matches!(err.kind, ErrorKind::UndefinedBuildArg { ref name } if name == "MISSING"));
    assert_eq!(
        err.to_string(),
        "line 4, column 8: build argument `MISSING` is not defined: expected a default in this stage's %arguments or a value from the caller"
    );
}

#[test]
fn stage_args_do_not_leak_between_stages() {
    let text =
        "Bootstrap: docker\nFrom: a\n%arguments\n  X=1\nBootstrap: docker\nFrom: b:{{ X }}\n";
    let def = Definition::parse(text).expect("parses");
    let err = def
        .with_build_args(&BTreeMap::new())
        .expect_err("X is stage 0's");
    assert_eq!(err.line, 6);
}

#[test]
fn bootstrap_at_line_start_splits_even_in_a_body() {
    let text = "Bootstrap: docker\nFrom: a\n%post\n  echo\nbootstrap: docker\nFrom: b\n";
    let def = Definition::parse(text).expect("parses");
    assert_eq!(def.stages().len(), 2);
    assert_eq!(def.from(), Some("b"));
}

#[test]
fn lint_reports_everything() {
    let text = "Bootstrap: nope\n%bogus\n%apprun\nFoo: bar\n";
    let all = Definition::lint(text);
    let lines: Vec<usize> = all.iter().map(|d| d.line).collect();
    assert_eq!(lines, vec![1, 2, 3]);
}

/// Texts with odd whitespace and endings: each must render back byte for
/// byte, and its canonical form must be stable.
#[test]
fn lossless_on_odd_inputs() {
    let base = "Bootstrap: docker\nFrom: alpine\n%post\n  echo hi\n%labels\n  A b\n";
    let variants = [
        base.to_owned(),
        base.replace('\n', "\r\n"),
        base.trim_end().to_owned(),
        base.replace("  ", "\t"),
        base.replace('\n', "   \n"),
        format!("\u{feff}{base}"),
        format!("\n\n# c\n\n{base}\n\n\n"),
        base.replace("%post\n", "%post   \r\n"),
        base.replace("From: alpine", "From:alpine\\\n  :edge"),
    ];
    for v in variants {
        let def = Definition::parse(&v).unwrap_or_else(|e| panic!("{v:?}: {e}"));
        assert_eq!(def.render(), v);
        let c = def.render_canonical();
        let again = Definition::parse(&c).unwrap_or_else(|e| panic!("{c:?}: {e}"));
        assert_eq!(again.render_canonical(), c, "{v:?}");
        assert_eq!(again.final_stage().labels()[0].value, "b");
    }
}

/// A small deterministic generator of hostile inputs: the parser must never
/// panic, and whatever parses must render back exactly.
#[test]
fn no_panics_on_generated_inputs() {
    let pieces = [
        "Bootstrap: docker",
        "Bootstrap: scratch",
        "%runscript",
        "bootstrap:",
        "From: x",
        "%post",
        "%files from a",
        "%apprun",
        "%appenv a b",
        "  %post",
        "%",
        "%%",
        "#",
        "Stage: a",
        "\\",
        "key: v \\",
        "{{ x }}",
        "{{",
        "}}",
        "\t",
        " ",
        "é",
        "\u{feff}",
        "\r",
        ":",
        "%labels",
        "a b c",
        "%arguments",
        "X=1",
        "=",
        "%files",
        "\"a b\" c",
        "'",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut parsed = 0;
    for _ in 0..20000 {
        // Half the inputs start well, so that many of them parse.
        let mut text = if seed % 2 == 0 {
            String::from("Bootstrap: scratch\n")
        } else {
            String::new()
        };
        let n = (seed % 12) as usize;
        for _ in 0..n {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            text.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            text.push_str(["\n", "\r\n", "", " "][(seed >> 8) as usize % 4]);
        }
        let _ = Definition::lint(&text);
        if let Ok(def) = Definition::parse(&text) {
            assert_eq!(def.render(), text);
            parsed += 1;
            let c = def.render_canonical();
            let again = Definition::parse(&c).unwrap_or_else(|e| panic!("{text:?} -> {c:?}: {e}"));
            assert_eq!(again.render_canonical(), c, "{text:?}");
            let _ = def.with_build_args(&BTreeMap::new());
            let _ = serde_json::to_string(&def);
        }
    }
    assert!(parsed > 100, "only {parsed} generated inputs parsed");
}
