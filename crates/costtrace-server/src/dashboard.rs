//! The dashboard: a static single page (HTML, CSS, JS and the vendored uPlot
//! chart library) compiled into the binary and served at `/` and
//! `/assets/…`.
//!
//! The page reads the same JSON API as every other client, with the same
//! `Authorization: Bearer KEY`, so a tenant key sees exactly what the API shows
//! it. The assets themselves carry no data and need no key. Nothing is fetched
//! from anywhere but this server: the Content-Security-Policy allows only
//! `'self'`.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::ApiError;

/// uPlot's version; part of its asset URLs so they can be cached for a year.
#[cfg(test)]
pub(crate) const UPLOT_VERSION: &str = "1.6.32";

/// Only this server: no inline script or style, no other origin, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// How long a browser may reuse an asset without asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caching {
    /// Our own files change with every release: revalidate by ETag.
    Revalidate,
    /// Vendored files sit under a versioned URL: never change.
    Immutable,
}

#[derive(Debug)]
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    caching: Caching,
}

/// One asset: URL path under `/assets/`, file under `assets/`, type, caching.
macro_rules! asset {
    ($path:literal, $file:literal, $type:expr, $caching:ident) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("../assets/", $file)),
            caching: Caching::$caching,
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const ASSETS: &[Asset] = &[
    asset!("app.js", "app.js", JS, Revalidate),
    asset!("js/api.js", "js/api.js", JS, Revalidate),
    asset!("js/charts.js", "js/charts.js", JS, Revalidate),
    asset!("js/costs.js", "js/costs.js", JS, Revalidate),
    asset!("js/dom.js", "js/dom.js", JS, Revalidate),
    asset!("js/overview.js", "js/overview.js", JS, Revalidate),
    asset!("js/requests.js", "js/requests.js", JS, Revalidate),
    asset!("js/shell.js", "js/shell.js", JS, Revalidate),
    asset!("js/tables.js", "js/tables.js", JS, Revalidate),
    asset!("app.css", "app.css", CSS, Revalidate),
    asset!("favicon.svg", "favicon.svg", "image/svg+xml", Revalidate),
    asset!(
        "vendor/uplot-1.6.32/uPlot.iife.min.js",
        "vendor/uplot/uPlot.iife.min.js",
        JS,
        Immutable
    ),
    asset!(
        "vendor/uplot-1.6.32/uPlot.min.css",
        "vendor/uplot/uPlot.min.css",
        CSS,
        Immutable
    ),
    asset!(
        "vendor/uplot-1.6.32/LICENSE",
        "vendor/uplot/LICENSE",
        "text/plain; charset=utf-8",
        Immutable
    ),
];

const INDEX: Asset = asset!(
    "index.html",
    "index.html",
    "text/html; charset=utf-8",
    Revalidate
);

/// Strong ETags of the revalidated assets, computed once.
fn etag(asset: &Asset) -> &'static str {
    static TAGS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .chain(std::iter::once(&INDEX))
            .map(|a| {
                let digest = Sha256::digest(a.body);
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                (a.path, format!("\"{hex}\""))
            })
            .collect()
    });
    tags.iter()
        .find(|(p, _)| *p == asset.path)
        .map_or("", |(_, t)| t.as_str())
}

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    match asset.caching {
        Caching::Immutable => {
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
        }
        Caching::Revalidate => {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            let tag = etag(asset);
            if let Ok(v) = HeaderValue::from_str(tag) {
                headers.insert(header::ETAG, v);
            }
            let matches = request
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
            if matches {
                return (StatusCode::NOT_MODIFIED, headers).into_response();
            }
        }
    }
    (headers, asset.body).into_response()
}

/// `GET /`: the page; everything after `#` is routed in the browser.
pub(crate) async fn index(request: HeaderMap) -> Response {
    serve(&INDEX, &request)
}

/// `GET /assets/{*path}`
pub(crate) async fn asset(Path(path): Path<String>, request: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.path == path) {
        Some(a) => serve(a, &request),
        None => ApiError::NotFound(format!("Asset {path} not found")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_links_the_versioned_vendor_assets() {
        let html = std::str::from_utf8(INDEX.body).unwrap_or_default();
        for a in ASSETS.iter().filter(|a| a.caching == Caching::Immutable) {
            assert!(
                a.path.contains(&format!("uplot-{UPLOT_VERSION}/")),
                "{} is cached for a year: its URL must carry the version",
                a.path
            );
        }
        assert!(html.contains(&format!(
            "/assets/vendor/uplot-{UPLOT_VERSION}/uPlot.iife.min.js"
        )));
        assert!(html.contains(&format!(
            "/assets/vendor/uplot-{UPLOT_VERSION}/uPlot.min.css"
        )));
        assert!(html.contains("/assets/app.js") && html.contains("/assets/app.css"));
    }

    #[test]
    fn every_imported_module_is_served() {
        for a in ASSETS
            .iter()
            .filter(|a| a.content_type == JS && a.caching == Caching::Revalidate)
        {
            let text = std::str::from_utf8(a.body).unwrap_or_default();
            let dir = a.path.rsplit_once('/').map_or("", |(d, _)| d);
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let Some((_, spec)) = line.split_once(" from '") else {
                    continue;
                };
                let rel = spec.trim_end_matches("';").trim_start_matches("./");
                let path = if dir.is_empty() {
                    rel.to_owned()
                } else {
                    format!("{dir}/{rel}")
                };
                assert!(
                    ASSETS.iter().any(|b| b.path == path),
                    "{} imports {rel}, which is not in ASSETS",
                    a.path
                );
            }
        }
    }

    #[test]
    fn etags_differ_per_asset() {
        let a = etag(&ASSETS[0]);
        let b = etag(&ASSETS[1]);
        assert!(a.starts_with('"') && a.len() == 26, "{a}");
        assert_ne!(a, b);
    }
}
