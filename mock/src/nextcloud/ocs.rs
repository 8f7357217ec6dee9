//! The OCS envelope `{"ocs":{"meta":{status,statuscode,message},"data":…}}` as Nextcloud
//! answers it: JSON when asked (`format=json` or `Accept: application/json`), XML otherwise;
//! v2 mirrors the status onto HTTP and says 200 on success, v1 answers HTTP 200 with 100 on
//! success and the failure code in `statuscode` (401 stays 401, with 997, on both).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{CHALLENGE, Unauthenticated};

/// OCS's code for "not logged in".
const UNAUTHENTICATED: u16 = 997;

/// How the caller wants OCS answers: which API version and which format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ocs {
    pub v1: bool,
    pub json: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Ocs {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let path = parts.uri.path();
        let v1 = if path.starts_with("/ocs/v1.php/") {
            true
        } else if path.starts_with("/ocs/v2.php/") {
            false
        } else {
            return Err(StatusCode::NOT_FOUND);
        };
        let format = parts.uri.query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "format")
                .map(|(_, v)| v.into_owned())
        });
        let accepts_json = parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json"));
        let json = match format.as_deref() {
            Some("json") => true,
            Some("xml") => false,
            _ => accepts_json,
        };
        Ok(Self { v1, json })
    }
}

impl Ocs {
    pub fn ok(self, data: Value) -> Response {
        let code = if self.v1 { 100 } else { 200 };
        self.respond(StatusCode::OK, code, "OK", data)
    }

    /// A failure with Nextcloud's message; `data` is empty as when a controller throws.
    pub fn fail(self, status: StatusCode, message: &str) -> Response {
        let http = if self.v1 { StatusCode::OK } else { status };
        self.respond(http, status.as_u16(), message, json!([]))
    }

    pub fn unauthenticated(self) -> Response {
        let mut response = self.respond(
            StatusCode::UNAUTHORIZED,
            UNAUTHENTICATED,
            "Current user is not logged in",
            json!([]),
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(CHALLENGE),
        );
        response
    }

    /// `Ok(user)` or the envelope's 401.
    pub fn caller(
        self,
        caller: Result<super::auth::Caller, Unauthenticated>,
    ) -> Result<String, Box<Response>> {
        caller
            .map(|c| c.user)
            .map_err(|_| Box::new(self.unauthenticated()))
    }

    fn respond(self, http: StatusCode, code: u16, message: &str, data: Value) -> Response {
        let status = if http.is_success() { "ok" } else { "failure" };
        if self.json {
            let body = json!({ "ocs": {
                "meta": { "status": status, "statuscode": code, "message": message },
                "data": data,
            }});
            return (http, axum::Json(body)).into_response();
        }
        let mut xml = String::from("<?xml version=\"1.0\"?>\n<ocs>\n <meta>\n");
        xml.push_str(&format!("  <status>{status}</status>\n"));
        xml.push_str(&format!("  <statuscode>{code}</statuscode>\n"));
        xml.push_str(&format!("  <message>{}</message>\n", escape(message)));
        xml.push_str(" </meta>\n");
        write_xml(&mut xml, "data", &data, 1);
        xml.push_str("</ocs>\n");
        (
            http,
            [(header::CONTENT_TYPE, "text/xml; charset=UTF-8")],
            xml,
        )
            .into_response()
    }
}

/// XML text with `&`, `<`, `>`, `"` and `'` escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// OCS's XML rendering of a JSON value: list items are `<element>`, true is `1`, false and
/// null are empty.
fn write_xml(out: &mut String, name: &str, value: &Value, depth: usize) {
    let pad = " ".repeat(depth);
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push_str(&format!("{pad}<{name}>\n"));
            for (k, v) in map {
                let valid = k
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
                write_xml(out, if valid { k } else { "element" }, v, depth + 1);
            }
            out.push_str(&format!("{pad}</{name}>\n"));
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str(&format!("{pad}<{name}>\n"));
            for v in items {
                write_xml(out, "element", v, depth + 1);
            }
            out.push_str(&format!("{pad}</{name}>\n"));
        }
        Value::Object(_) | Value::Array(_) | Value::Null | Value::Bool(false) => {
            out.push_str(&format!("{pad}<{name}/>\n"));
        }
        Value::Bool(true) => out.push_str(&format!("{pad}<{name}>1</{name}>\n")),
        Value::Number(n) => out.push_str(&format!("{pad}<{name}>{n}</{name}>\n")),
        Value::String(s) => out.push_str(&format!("{pad}<{name}>{}</{name}>\n", escape(s))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_rendering() {
        let mut out = String::new();
        write_xml(
            &mut out,
            "data",
            &json!({"id": "7", "ok": true, "no": false, "list": [1, "a<b"], "9": null}),
            0,
        );
        assert_eq!(
            out,
            "<data>\n <9/>\n".replace("<9/>", "<element/>")
                + " <id>7</id>\n <list>\n  <element>1</element>\n  <element>a&lt;b</element>\n </list>\n <no/>\n <ok>1</ok>\n</data>\n"
        );
    }
}
