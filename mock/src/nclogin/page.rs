//! Pages shaped as Nextcloud serves them: the CSRF token in `<head data-requesttoken>`, the
//! page's data as initial state (`<input type="hidden" id="initial-state-APP-KEY" value=
//! base64(JSON)>`, as `IInitialStateService` renders it) and an empty mount point that script
//! fills. The HTML as served holds no `<form>`: a small inline script (standing in for
//! Nextcloud's Vue bundles) builds the visible form, so a browser can fill and submit it while
//! an HTTP client must speak the endpoints as Nextcloud's own script does.

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// One guest page: `states` are (app, key, value) initial states; `mount` the element script
/// renders into; `script` the inline script that renders it.
pub struct Page<'a> {
    pub status: StatusCode,
    pub title: &'a str,
    pub request_token: &'a str,
    pub states: Vec<(&'a str, &'a str, Value)>,
    pub mount: &'a str,
    pub script: &'a str,
}

impl Page<'_> {
    pub fn render(self) -> Response {
        let states: String = self
            .states
            .iter()
            .map(|(app, key, value)| {
                format!(
                    "<input type=\"hidden\" id=\"initial-state-{}-{}\" value=\"{}\">\n",
                    escape(app),
                    escape(key),
                    B64.encode(value.to_string())
                )
            })
            .collect();
        let html = format!(
            "<!DOCTYPE html>\n<html class=\"ng-csp\" data-placeholder-focus=\"false\" lang=\"en\" \
             data-locale=\"en\" translate=\"no\">\n<head data-requesttoken=\"{token}\">\n\
             <meta charset=\"utf-8\">\n<title>{title} - Nextcloud</title>\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1.0\">\n\
             </head>\n<body id=\"body-login\">\n{states}<div class=\"wrapper\">\
             <main id=\"content\" class=\"app-core\">\n{mount}\n</main></div>\n\
             <script>\n{common}\n{script}\n</script>\n</body>\n</html>\n",
            token = escape(self.request_token),
            title = escape(self.title),
            mount = self.mount,
            common = COMMON_SCRIPT,
            script = self.script,
        );
        (
            self.status,
            [
                (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
                (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
            ],
            Html(html),
        )
            .into_response()
    }
}

/// Helpers every page's script uses: `state(app, key)` reads an initial state,
/// `requestToken()` the head's token, `el(tag, attrs, children)` makes an element.
const COMMON_SCRIPT: &str = r#"function state(app, key) {
  var e = document.getElementById('initial-state-' + app + '-' + key);
  return e ? JSON.parse(atob(e.value)) : null;
}
function requestToken() { return document.head.dataset.requesttoken; }
function el(tag, attrs, children) {
  var e = document.createElement(tag);
  Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
  (children || []).forEach(function (c) { e.append(c); });
  return e;
}
function hidden(name, value) { return el('input', {type: 'hidden', name: name, value: value}); }"#;

/// A page with only a message (Nextcloud's 403/400 guest templates).
pub fn message(status: StatusCode, title: &str, message: &str, request_token: &str) -> Response {
    Page {
        status,
        title,
        request_token,
        states: Vec::new(),
        mount: &format!(
            "<div class=\"guest-box\"><h2>{}</h2><p>{}</p></div>",
            escape(title),
            escape(message)
        ),
        script: "",
    }
    .render()
}

/// A 303 See Other, Nextcloud's `RedirectResponse`.
pub fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, location.to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_html() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
