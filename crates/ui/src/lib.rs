//! Loupe's web UI: hand-written ES modules and CSS (no build step, no Node.js), embedded in the binary and
//! served by [`router`], which the cloud API's port mounts beside `/api/v1` (and so the TLS proxy serves it).
//!
//! Every page is the same `index.html`; the modules in `assets/` draw the page for the path (`/login`,
//! `/password`, `/live/<script>`, `/editor`, `/admin/<page>`, `/settings`, `/invite`) from the REST API, sending the session
//! token in an `Authorization` header from JavaScript. No cookie is ever set, so a cross-site request carries no
//! credential (no CSRF), and the token lives in the tab's `sessionStorage`. Captured traffic is attacker-written:
//! the modules only ever put data into the page as text (`textContent`, attribute values), never as HTML, and
//! every answer carries a Content-Security-Policy that allows scripts and styles from this origin only (no
//! inline script, no inline style attribute, no `eval`), so a payload that slipped through would still not run.
//!
//! Owns the assets, their content types, caching (ETag) and compression, and the security headers of UI
//! responses. Must not touch the API: it knows no route of it, holds no state, and depends on no Loupe crate.

use std::io::Write as _;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The policy of every UI answer: this origin's scripts, styles, images and API only, and no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The paths that answer with the page shell (`index.html`); the modules draw each one.
pub const PAGES: &[&str] = &[
    "/",
    "/login",
    "/password",
    "/live",
    "/live/{*script}",
    "/editor",
    "/admin",
    "/admin/{page}",
    "/invite",
    "/settings",
];

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset { name: $name, content_type: $type, body: include_bytes!(concat!("../assets/", $name)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file under `/ui/`. `index.html` is also the answer of every page path.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("table.js", JS),
    asset!("chart.js", JS),
    asset!("widgets.js", JS),
    asset!("pages/login.js", JS),
    asset!("pages/live.js", JS),
    asset!("pages/editor.js", JS),
    asset!("pages/admin.js", JS),
    asset!("pages/cron.js", JS),
    asset!("pages/settings.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
];

/// An asset as served: its gzip form and its ETag, computed once.
struct Prepared {
    gzip: Vec<u8>,
    etag: HeaderValue,
}

fn prepared() -> &'static [Prepared] {
    static PREPARED: OnceLock<Vec<Prepared>> = OnceLock::new();
    PREPARED.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                // Writing to a Vec cannot fail; an empty gzip body would only lose compression, not content,
                // because `serve` falls back to the plain body when the gzip form is empty.
                let gzip = encoder.write_all(a.body).and_then(|()| encoder.finish()).unwrap_or_default();
                let etag = HeaderValue::from_str(&format!("\"{:016x}\"", fnv1a(a.body)))
                    .unwrap_or(HeaderValue::from_static("\"0\""));
                Prepared { gzip, etag }
            })
            .collect()
    })
}

/// A content hash for ETags (not for security: an ETag only saves a download).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The UI's routes: the page paths ([`PAGES`]) and the assets under `/ui/`, each answer with the security
/// headers. Merge it into a router that has no route of its own on these paths.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new();
    for page in PAGES {
        router = router.route(page, get(|headers: HeaderMap| async move { serve(0, &headers) }));
    }
    router.route("/ui/{*name}", get(asset)).layer(axum::middleware::map_response(secure))
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == name) {
        Some(index) => serve(index, &headers),
        None => (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "not found\n")
            .into_response(),
    }
}

/// One asset: 304 when the browser has it, gzipped when the browser accepts it. Browsers revalidate on each
/// load (`no-cache`), which costs a 304 per file and never serves a stale module after an upgrade.
fn serve(index: usize, request: &HeaderMap) -> Response {
    let (asset, prepared) = (&ASSETS[index], &prepared()[index]);
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::ETAG, prepared.etag.clone());
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if request.get(header::IF_NONE_MATCH) == Some(&prepared.etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let gzip_ok = request
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.split(';').next().is_some_and(|e| e.trim() == "gzip")));
    if gzip_ok && !prepared.gzip.is_empty() {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        return (headers, prepared.gzip.clone()).into_response();
    }
    (headers, asset.body).into_response()
}

async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// What a first load of the live view fetches: the shell, the style, the router and the live view's modules.
/// The other pages' modules, and the widgets beyond tables and time series (`widgets.js`), load only when
/// needed.
pub const LIVE_VIEW_FIRST_LOAD: &[&str] =
    &["index.html", "style.css", "app.js", "api.js", "dom.js", "pages/live.js", "table.js", "chart.js"];

/// The size of what a first load of the live view fetches ([`LIVE_VIEW_FIRST_LOAD`]), plain and gzipped (the
/// tests report and bound it).
pub fn first_load_bytes() -> (usize, usize) {
    assets_bytes(|name| LIVE_VIEW_FIRST_LOAD.contains(&name))
}

/// The size of every asset, plain and gzipped.
pub fn all_assets_bytes() -> (usize, usize) {
    assets_bytes(|_| true)
}

fn assets_bytes(pick: impl Fn(&str) -> bool) -> (usize, usize) {
    ASSETS
        .iter()
        .zip(prepared())
        .filter(|(a, _)| pick(a.name))
        .fold((0, 0), |(plain, gz), (a, p)| (plain + a.body.len(), gz + p.gzip.len()))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;

    async fn get(path: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = Request::get(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        router::<()>().oneshot(request.body(Body::empty()).expect("request")).await.expect("answer")
    }

    async fn body(response: Response) -> Vec<u8> {
        axum::body::to_bytes(response.into_body(), 1 << 22).await.expect("body").to_vec()
    }

    #[tokio::test]
    async fn every_page_is_the_shell_with_a_strict_policy() {
        for path in [
            "/",
            "/login",
            "/password",
            "/live/px/http_data",
            "/editor",
            "/admin/api-keys",
            "/admin/cron-scripts",
            "/settings",
            "/invite",
        ] {
            let response = get(path, &[]).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(response.headers()[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
            assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
            assert_eq!(response.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
            assert_eq!(body(response).await, ASSETS[0].body);
        }
        assert_eq!(get("/ui/nope.js", &[]).await.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn assets_are_gzipped_for_browsers_that_accept_it_and_revalidated_by_etag() {
        let plain = get("/ui/app.js", &[]).await;
        assert_eq!(plain.headers()[header::CONTENT_TYPE], JS);
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        let etag = plain.headers()[header::ETAG].to_str().expect("etag").to_owned();
        assert_eq!(body(plain).await, include_bytes!("../assets/app.js"));

        let gz = get("/ui/app.js", &[("accept-encoding", "br;q=1, gzip;q=0.8")]).await;
        assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
        let compressed = body(gz).await;
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&compressed[..]), &mut unzipped).expect("gunzip");
        assert_eq!(unzipped, include_bytes!("../assets/app.js"));

        let again = get("/ui/app.js", &[("if-none-match", &etag)]).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(body(again).await.is_empty());
    }

    #[test]
    fn no_asset_has_inline_script_or_style() {
        for asset in ASSETS {
            let text = String::from_utf8_lossy(asset.body);
            // The policy would block them anyway; this keeps the shell honest so nothing breaks under it.
            assert!(!text.contains("innerHTML") && !text.contains("outerHTML"), "{}", asset.name);
            assert!(!text.contains("insertAdjacentHTML") && !text.contains("document.write"), "{}", asset.name);
            if asset.name.ends_with(".html") {
                assert!(
                    !text.contains("style=") && !text.contains("<style") && !text.contains(" on"),
                    "{}",
                    asset.name
                );
                assert_eq!(text.matches("<script").count(), 1, "one module, by src");
                assert!(text.contains(r#"<script type="module" src="/ui/app.js"></script>"#));
            }
        }
    }

    #[test]
    fn the_first_load_stays_far_below_a_megabyte() {
        for name in LIVE_VIEW_FIRST_LOAD {
            assert!(ASSETS.iter().any(|a| a.name == *name), "{name}");
        }
        let (plain, gzip) = first_load_bytes();
        assert!(gzip < plain && gzip < 40_000, "plain {plain} B, gzip {gzip} B");
        let (all_plain, all_gzip) = all_assets_bytes();
        assert!(all_gzip > gzip && all_plain > plain && all_gzip < 100_000, "all: {all_plain} B, {all_gzip} B gzipped");
    }
}
