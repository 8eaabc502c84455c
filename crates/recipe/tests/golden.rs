//! Golden tests: every `golden/*.def` parses to its `*.json`, renders back
//! byte for byte, and renders canonically to a stable text; every
//! `golden/errors/*.def` fails with the message in its `*.err`.
//! `UPDATE_GOLDEN=1 cargo test -p sreg-recipe --test golden` rewrites the
//! expected files (review the diff before committing).

use std::fs;
use std::path::{Path, PathBuf};

use sreg_recipe::Definition;

fn update() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some()
}

fn defs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("golden directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "def"))
        .collect();
    v.sort();
    v
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn check_expected(path: &Path, actual: &str, failures: &mut Vec<String>) {
    if update() {
        fs::write(path, actual).expect("write golden");
        return;
    }
    match fs::read_to_string(path) {
        Ok(expected) if expected == actual => {}
        Ok(_) => failures.push(format!("{} differs:\n{actual}", path.display())),
        Err(_) => failures.push(format!("{} is missing:\n{actual}", path.display())),
    }
}

/// The structure that canonical rendering must keep.
fn shape(def: &Definition) -> serde_json::Value {
    let mut v = serde_json::to_value(def).expect("json");
    // Line numbers and comments move in canonical output, bodies lose
    // surrounding blank lines and trailing blanks.
    fn scrub(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("line");
                m.remove("column");
                m.remove("warnings");
                if let Some(serde_json::Value::String(k)) = m.get_mut("key") {
                    *k = k.to_ascii_lowercase();
                }
                if let Some(serde_json::Value::String(b)) = m.get_mut("body") {
                    let lines: Vec<&str> = b.lines().map(str::trim_end).collect();
                    *b = lines.join("\n").trim_matches('\n').to_owned();
                }
                m.values_mut().for_each(scrub);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(scrub),
            _ => {}
        }
    }
    scrub(&mut v);
    v
}

#[test]
fn golden_definitions() {
    let dir = golden_dir();
    let files = defs(&dir);
    assert!(
        files.len() >= 30,
        "expected at least 30 golden recipes, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for def_path in files {
        let text = fs::read_to_string(&def_path).expect("read");
        let name = def_path.display().to_string();
        let def = match Definition::parse(&text) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        if def.render() != text {
            failures.push(format!("{name}: lossless render differs"));
        }
        let json = serde_json::to_string_pretty(&def).expect("json") + "\n";
        check_expected(&def_path.with_extension("json"), &json, &mut failures);

        let canonical = def.render_canonical();
        check_expected(
            &def_path.with_extension("canonical"),
            &canonical,
            &mut failures,
        );
        match Definition::parse(&canonical) {
            Ok(again) => {
                if again.render_canonical() != canonical {
                    failures.push(format!("{name}: canonical rendering is not stable"));
                }
                if again.render() != canonical {
                    failures.push(format!("{name}: canonical text does not round-trip"));
                }
                if shape(&again) != shape(&def) {
                    failures.push(format!(
                        "{name}: canonical text parses to another structure:\n{}\n---\n{}",
                        shape(&again),
                        shape(&def)
                    ));
                }
            }
            Err(e) => failures.push(format!("{name}: canonical text does not parse: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn golden_errors() {
    let dir = golden_dir().join("errors");
    let files = defs(&dir);
    assert!(files.len() >= 15);
    let mut failures = Vec::new();
    for def_path in files {
        let text = fs::read_to_string(&def_path).expect("read");
        let actual = match Definition::parse(&text) {
            Ok(_) => "parsed without error\n".to_owned(),
            Err(e) => {
                let lint: Vec<String> = Definition::lint(&text)
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                format!("{e}\n\nlint:\n{}\n", lint.join("\n"))
            }
        };
        check_expected(&def_path.with_extension("err"), &actual, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
