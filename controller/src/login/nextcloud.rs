//! Nextcloud's login and the oidc app's consent as `--login direct` speaks them. Their HTML
//! holds no `<form>` (Vue renders it), so the pages are recognised by what Nextcloud's layouts
//! always carry and the endpoints are spoken as its scripts speak them:
//!
//! - every page: the CSRF request token in `<head data-requesttoken>` (layout.guest.php,
//!   layout.user.php);
//! - the login page (core LoginController::showLoginForm): initial states `core-login…`
//!   (`<input type=hidden id="initial-state-core-loginErrors" value=base64(JSON)>`), posted by
//!   LoginForm.vue to the page's own path with `user`, `password`, `requesttoken`,
//!   `timezone`, `timezone_offset` and `redirect_url`; a refusal is a 303 back to the login page
//!   whose `loginErrors` says why;
//! - the consent page (H2CK/oidc templates/consent.php): `<div id="oidc-consent"
//!   data-scopes data-client-name>`, granted by Consent.vue's `POST …/consent/grant` with the
//!   request token as the `requesttoken` header and `scopes` in the body.

use base64::Engine;
use common::Secret;

use super::form::{attr, each_tag};

/// Initial states of core's login page start with this id.
const LOGIN_STATE_PREFIX: &str = "initial-state-core-login";
/// What Nextcloud says when the request token or session did not pass its CSRF check.
const CSRF_MESSAGE: &str = "Please try again";

/// A page Nextcloud rendered (it has `<head data-requesttoken>`).
pub(crate) enum NcPage {
    Login(LoginPage),
    Consent(ConsentPage),
    /// Another of Nextcloud's pages (a two-factor challenge, an error page).
    Other,
}

/// A POST as Nextcloud's script sends it.
pub(crate) struct Submission {
    pub url: url::Url,
    pub fields: Vec<(String, String)>,
    /// For the `requesttoken` header (the consent's fetch sends it so; the login form posts it
    /// as a field).
    pub request_token_header: Option<Secret>,
}

pub(crate) struct LoginPage {
    request_token: Secret,
    /// `loginRedirectUrl`: where a successful login goes (the authorize URL).
    redirect_url: Option<String>,
    /// `loginErrors`: why the last attempt was refused.
    pub errors: Vec<String>,
}

pub(crate) struct ConsentPage {
    request_token: Secret,
    /// `data-scopes`: what the client asked for, all of which are granted.
    scopes: String,
    pub client_name: String,
}

/// What `html` is, if Nextcloud rendered it.
pub(crate) fn read(html: &str) -> Option<NcPage> {
    let mut token: Option<String> = None;
    let mut login_states: Vec<(String, String)> = Vec::new();
    let mut consent: Option<(String, String)> = None;
    each_tag(html, |name, attrs| {
        if name == "head"
            && token.is_none()
            && let Some(t) = attr(attrs, "data-requesttoken")
        {
            token = Some(t.to_owned());
        }
        let Some(id) = attr(attrs, "id") else { return };
        if name == "input"
            && let Some(key) = id.strip_prefix(LOGIN_STATE_PREFIX)
        {
            login_states.push((
                key.to_owned(),
                attr(attrs, "value").unwrap_or("").to_owned(),
            ));
        }
        if id == "oidc-consent" && consent.is_none() {
            consent = Some((
                attr(attrs, "data-scopes").unwrap_or("").to_owned(),
                attr(attrs, "data-client-name").unwrap_or("").to_owned(),
            ));
        }
    });
    let request_token = Secret::new(token?);
    if let Some((scopes, client_name)) = consent {
        return Some(NcPage::Consent(ConsentPage {
            request_token,
            scopes,
            client_name,
        }));
    }
    if login_states.is_empty() {
        return Some(NcPage::Other);
    }
    let state = |key: &str| {
        login_states
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| initial_state(v))
    };
    let redirect_url = state("RedirectUrl")
        .and_then(|v| v.as_str().map(str::to_owned))
        .filter(|r| !r.is_empty());
    let errors = match state("Errors") {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|m| m.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    Some(NcPage::Login(LoginPage {
        request_token,
        redirect_url,
        errors,
    }))
}

/// An initial state's value: base64 of JSON.
pub(crate) fn initial_state(value: &str) -> Option<serde_json::Value> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl LoginPage {
    /// Where LoginForm.vue posts (`generateUrl('login')`: the login page's own path) and what.
    pub fn submission(&self, page: &url::Url, user: &str, password: &Secret) -> Submission {
        let mut action = page.clone();
        action.set_query(None);
        action.set_fragment(None);
        // Without the state, the page's own `redirect_url` (how the authorize step sent us).
        let redirect_url = self.redirect_url.clone().or_else(|| {
            page.query_pairs()
                .find(|(k, _)| k == "redirect_url")
                .map(|(_, v)| v.into_owned())
        });
        let mut fields: Vec<(String, String)> = [
            ("user", user),
            ("password", password.expose()),
            ("requesttoken", self.request_token.expose()),
            ("timezone", "UTC"),
            ("timezone_offset", "0"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        if let Some(r) = redirect_url {
            fields.push(("redirect_url".into(), r));
        }
        Submission {
            url: action,
            fields,
            request_token_header: None,
        }
    }

    /// Why the login page came back after the credentials were posted, for an error.
    pub fn refusal(&self, here: &str, user: &str) -> String {
        if self.errors.iter().any(|e| e.trim() == CSRF_MESSAGE) {
            return format!(
                "Nextcloud login at {here} refused the login of user {user} as a failed CSRF check ({CSRF_MESSAGE:?}): \
                 the request token or the session cookie was not accepted"
            );
        }
        let said = match self.errors.as_slice() {
            [] => String::new(),
            errors => format!(": {:?}", errors.join(" ")),
        };
        format!("Nextcloud login at {here} refused the password for user {user}{said}")
    }
}

impl ConsentPage {
    /// Consent.vue's grant of every requested scope, the request token in the header.
    pub fn grant(&self, page: &url::Url) -> Result<Submission, String> {
        let mut base = page.clone();
        base.set_query(None);
        base.set_fragment(None);
        // `…/apps/oidc/consent` → `…/apps/oidc/consent/grant`.
        let url = if base.path().ends_with("/consent") {
            base.join("consent/grant")
        } else {
            base.join("/index.php/apps/oidc/consent/grant")
        }
        .map_err(|e| format!("no consent grant URL next to {base}: {e}"))?;
        Ok(Submission {
            url,
            fields: vec![("scopes".to_owned(), self.scopes.clone())],
            request_token_header: Some(self.request_token.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(key: &str, value: serde_json::Value) -> String {
        format!(
            r#"<input type="hidden" id="initial-state-core-{key}" value="{}">"#,
            base64::engine::general_purpose::STANDARD.encode(value.to_string())
        )
    }

    fn page(head: &str, body: &str) -> String {
        format!(
            "<!DOCTYPE html><html><head {head}>\n<title>Login – Nextcloud</title>\
             <script>var x = '<div id=\"oidc-consent\">';</script></head>\
             <body id=\"body-login\"><!-- <input id=\"initial-state-core-loginErrors\"> -->{body}\
             <div id=\"login\"></div></body></html>"
        )
    }

    #[test]
    fn recognises_nextcloud_pages() {
        let login = page(
            r#"data-requesttoken="tok+/=""#,
            &(state(
                "loginErrors",
                serde_json::json!(["Wrong login or password."]),
            ) + &state(
                "loginRedirectUrl",
                serde_json::json!("/index.php/apps/oidc/authorize?a=1"),
            ) + &state("loginUsername", serde_json::json!("alice"))),
        );
        let Some(NcPage::Login(l)) = read(&login) else {
            panic!("not a login page")
        };
        assert_eq!(l.request_token.expose(), "tok+/=");
        assert_eq!(l.errors, ["Wrong login or password."]);
        let here: url::Url =
            "http://nc.test/index.php/login?redirect_url=%2Fother&user=alice&direct=1"
                .parse()
                .unwrap();
        let Submission { url, fields, .. } = l.submission(&here, "alice", &Secret::new("pw"));
        assert_eq!(url.as_str(), "http://nc.test/index.php/login");
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            get("redirect_url"),
            Some("/index.php/apps/oidc/authorize?a=1")
        );
        assert_eq!(get("requesttoken"), Some("tok+/="));
        assert_eq!((get("user"), get("password")), (Some("alice"), Some("pw")));
        let refusal = l.refusal("http://nc.test/index.php/login", "alice");
        assert_eq!(
            refusal,
            r#"Nextcloud login at http://nc.test/index.php/login refused the password for user alice: "Wrong login or password.""#
        );

        // Without the redirect state, the page's own redirect_url is posted.
        let Some(NcPage::Login(l)) = read(&page(
            r#"data-requesttoken="t""#,
            &state("loginUsername", "".into()),
        )) else {
            panic!("not a login page")
        };
        let fields = l.submission(&here, "alice", &Secret::new("pw")).fields;
        assert!(fields.contains(&("redirect_url".into(), "/other".into())));

        let consent = page(
            r#"data-user="alice" data-requesttoken="ct""#,
            r#"<div id="oidc-consent" data-client-name="MCP &amp; co" data-scopes="openid notes.read" data-client-id="x"></div>"#,
        );
        let Some(NcPage::Consent(c)) = read(&consent) else {
            panic!("not a consent page")
        };
        assert_eq!(c.client_name, "MCP & co");
        let Submission {
            url,
            fields: body,
            request_token_header: token,
        } = c
            .grant(
                &"http://nc.test/index.php/apps/oidc/consent"
                    .parse()
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://nc.test/index.php/apps/oidc/consent/grant"
        );
        assert_eq!(token.map(|t| t.expose().to_owned()).as_deref(), Some("ct"));
        assert_eq!(
            body,
            [("scopes".to_owned(), "openid notes.read".to_owned())]
        );

        assert!(matches!(
            read(&page(
                r#"data-requesttoken="t""#,
                "<h2>Access forbidden</h2>"
            )),
            Some(NcPage::Other)
        ));
        assert!(read(&page("", &state("loginErrors", serde_json::json!([])))).is_none());
        assert!(read("<form><input name=password type=password></form>").is_none());
    }

    #[test]
    fn a_failed_csrf_check_is_told_apart_from_a_wrong_password() {
        let l = LoginPage {
            request_token: Secret::new("t"),
            redirect_url: None,
            errors: vec![CSRF_MESSAGE.into()],
        };
        let e = l.refusal("http://nc/index.php/login", "bob");
        assert!(e.contains("CSRF") && e.contains("bob"), "{e}");
    }
}
