//! The page templates (handlebars, built into the binary). Strict mode makes
//! a misspelt field an error instead of an empty string; HTML escaping stays
//! on, and no template uses the raw `{{{ }}}` form, so every user-written
//! text (names, labels, help) is shown as text.

use std::sync::LazyLock;

use handlebars::{Handlebars, handlebars_helper};
use serde::Serialize;

use super::assets;

const TEMPLATES: &[(&str, &str)] = &[
    ("layout", include_str!("../../templates/layout.hbs")),
    ("error", include_str!("../../templates/error.hbs")),
    ("home", include_str!("../../templates/home.hbs")),
    ("login", include_str!("../../templates/login.hbs")),
    ("register", include_str!("../../templates/register.hbs")),
    (
        "collections",
        include_str!("../../templates/collections.hbs"),
    ),
    ("collection", include_str!("../../templates/collection.hbs")),
];

handlebars_helper!(asset: |name: str| assets::url(name));
handlebars_helper!(bytes: |n: i64| human_bytes(n));
handlebars_helper!(date: |ms: i64| date_of(ms));

fn build() -> Result<Handlebars<'static>, handlebars::TemplateError> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.set_prevent_indent(true);
    hb.register_helper("asset", Box::new(asset));
    hb.register_helper("bytes", Box::new(bytes));
    hb.register_helper("date", Box::new(date));
    for (name, text) in TEMPLATES {
        hb.register_partial(name, *text)?;
        hb.register_template_string(name, *text)?;
    }
    Ok(hb)
}

static REGISTRY: LazyLock<Handlebars<'static>> = LazyLock::new(|| {
    // The templates are part of the binary; the unit test below makes sure
    // they compile, so this cannot fail in a tested build.
    build().unwrap_or_else(|e| panic!("page templates do not compile: {e}"))
});

pub fn render(name: &str, data: &impl Serialize) -> Result<String, handlebars::RenderError> {
    REGISTRY.render(name, data)
}

/// Bytes in binary units, as people read sizes of images.
pub fn human_bytes(n: i64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n.max(0) as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Unix milliseconds as a UTC date and time to the minute.
pub fn date_of(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    // 2026-01-02T03:04:05Z -> 2026-01-02 03:04 UTC
    format!("{} {} UTC", &s[..10], &s[11..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_compile_and_none_uses_raw_output() {
        build().unwrap();
        for (name, text) in TEMPLATES {
            assert!(
                !text.contains("{{{"),
                "{name} must not print unescaped HTML"
            );
        }
    }

    #[test]
    fn strict_mode_refuses_missing_fields_and_text_is_escaped() {
        let mut hb = build().unwrap();
        hb.register_template_string("t", "<p>{{x}}</p>").unwrap();
        assert!(hb.render("t", &serde_json::json!({})).is_err());
        let out = hb
            .render("t", &serde_json::json!({"x": "<script>alert(1)</script>"}))
            .unwrap();
        assert_eq!(out, "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>");
    }

    #[test]
    fn sizes_and_dates_read_well() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(date_of(0), "1970-01-01 00:00 UTC");
    }
}
