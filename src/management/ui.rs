//! The management web UI: static pages, scripts and styles built into the binary and served
//! beside the API on the management listener (`/`, as RabbitMQ's `rabbitmq_management`).
//! The browser is the only client of these routes; everything the pages show or change goes
//! through the public `/api` routes with the signed-in user's basic auth, so the UI can do
//! nothing `rabbitmqadmin` cannot. It never touches broker state and needs no network or
//! Node toolchain to build or run. The charts use uPlot (MIT, `ui/vendor/`), vendored
//! from the npm registry because a line chart with axes, legend and cursor is what it does.

use axum::extract::{Path, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One built-in file: its path under `/`, media type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!("ui/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("js/main.js", JS),
    asset!("js/api.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/chart.js", JS),
    asset!("js/overview.js", JS),
    asset!("js/queues.js", JS),
    asset!("js/exchanges.js", JS),
    asset!("js/bindings.js", JS),
    asset!("js/messages.js", JS),
    asset!("js/connections.js", JS),
    asset!("js/admin.js", JS),
    asset!("vendor/uPlot.iife.min.js", JS),
    asset!("vendor/uPlot.min.css", "text/css; charset=utf-8"),
];

/// Pages may load only the broker's own scripts and talk only to the broker's own API.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     frame-ancestors 'none'; form-action 'self'; base-uri 'self'";

fn serve_asset(path: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            // the assets change with the binary; revalidating costs one small request
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        ],
        asset.body,
    )
        .into_response()
}

async fn index() -> Response {
    serve_asset("index.html")
}

async fn file(Path(path): Path<String>) -> Response {
    serve_asset(&path)
}

async fn script(Path(name): Path<String>) -> Response {
    serve_asset(&format!("js/{name}"))
}

async fn vendored(Path(name): Path<String>) -> Response {
    serve_asset(&format!("vendor/{name}"))
}

pub fn routes() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/{file}", get(file))
        .route("/js/{file}", get(script))
        .route("/vendor/{file}", get(vendored))
}

/// Scripts mark their requests with `X-Requested-With: XMLHttpRequest`; for them a 401
/// carries no `WWW-Authenticate`, so a wrong password shows the UI's own message instead
/// of the browser's login box. Other clients (curl, rabbitmqadmin) still get the
/// challenge, as from RabbitMQ.
pub async fn no_browser_challenge(request: Request, next: Next) -> Response {
    let from_script = request
        .headers()
        .get("x-requested-with")
        .is_some_and(|v| v == HeaderValue::from_static("XMLHttpRequest"));
    let mut response = next.run(request).await;
    if from_script {
        response.headers_mut().remove(header::WWW_AUTHENTICATE);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_the_pages_import_is_built_in() {
        let built_in: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        for asset in ASSETS.iter().filter(|a| a.path.starts_with("js/")) {
            let text = std::str::from_utf8(asset.body).expect("scripts are UTF-8");
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let Some(start) = line.find("'./") else {
                    continue;
                };
                let rest = &line[start + 3..];
                let name = &rest[..rest.find('\'').expect("quoted import")];
                assert!(
                    built_in.contains(&format!("js/{name}").as_str()),
                    "{} imports {name}, which is not built in",
                    asset.path
                );
            }
        }
        let index = std::str::from_utf8(ASSETS[0].body).expect("utf-8");
        for reference in [
            "style.css",
            "favicon.svg",
            "js/main.js",
            "vendor/uPlot.iife.min.js",
        ] {
            assert!(index.contains(reference), "index.html loads {reference}");
        }
    }

    #[test]
    fn unknown_paths_are_not_found() {
        assert_eq!(serve_asset("js/nope.js").status(), StatusCode::NOT_FOUND);
        assert_eq!(serve_asset("../Cargo.toml").status(), StatusCode::NOT_FOUND);
        assert_eq!(serve_asset("index.html").status(), StatusCode::OK);
    }
}
