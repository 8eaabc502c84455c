//! Stylesheet and scripts, built into the binary (sites are often offline:
//! nothing comes from a CDN). Each is served under a name that carries a
//! hash of its content, so that browsers may cache it for a year and still
//! get a new one after an upgrade.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::PageError;

struct Asset {
    /// The name templates ask for, e.g. `style.css`.
    name: &'static str,
    /// The name it is served under, e.g. `style.1a2b3c4d5e6f.css`.
    served: String,
    content_type: &'static str,
    body: &'static [u8],
}

const FILES: &[(&str, &str, &[u8])] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/app.js"),
    ),
];

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(name, content_type, body)| {
            let digest = hex::encode(Sha256::digest(body));
            let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
            Asset {
                name,
                served: format!("{stem}.{}.{ext}", &digest[..12]),
                content_type,
                body,
            }
        })
        .collect()
});

/// The URL of an asset by its plain name (unknown names give a URL that
/// answers 404, never a panic while rendering).
pub fn url(name: &str) -> String {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => format!("/static/{}", a.served),
        None => format!("/static/{name}"),
    }
}

/// `GET /static/{file}`
pub async fn serve(Path(file): Path<String>) -> Result<Response, PageError> {
    let asset = ASSETS
        .iter()
        .find(|a| a.served == file)
        .ok_or_else(PageError::not_found)?;
    Ok((
        [
            (CONTENT_TYPE, asset.content_type),
            (CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        asset.body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_names_carry_a_content_hash() {
        let u = url("style.css");
        assert!(
            u.starts_with("/static/style.") && u.ends_with(".css"),
            "{u}"
        );
        assert_eq!(u.len(), "/static/style.".len() + 12 + ".css".len());
        assert_eq!(url("nope.js"), "/static/nope.js");
    }
}
