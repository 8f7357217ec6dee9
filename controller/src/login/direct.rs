//! `--login direct`: authorization code + PKCE (S256) by plain HTTP. Follows
//! the redirects by hand across origins (cookies kept per origin), posts the IdP's
//! login form and presses its consent button (whatever it says, or the one
//! `--login-consent-selector` names); on Nextcloud's pages, which hold no form,
//! speaks its login and the oidc app's consent endpoints as its scripts do
//! (`nextcloud`). Reads the code from the redirect to `REDIRECT_URI` without
//! following it. Errors name the page they stopped on and what was looked for there.

use base64::Engine;
use sha2::{Digest, Sha256};

use super::cookies::CookieJar;
use super::form::{Form, parse_page};
use super::nextcloud::{self, NcPage};
use super::{Authenticator, LoginError, REDIRECT_URI, TokenSet};
use crate::provision::{TestUser, random_secret};
use common::Secret;

/// Most redirects and form posts in one login before giving up: an MCP server's own
/// authorize, Nextcloud's authorize, login page, login post, authorize, consent page, grant,
/// authorize, the MCP server's callback and the redirect to us are ten.
const MAX_HOPS: usize = 16;
/// Largest page read (Nextcloud's login page is some 30 KiB).
const MAX_PAGE_BYTES: usize = 2 << 20;

pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

enum Next {
    Get(url::Url),
    /// A form post; with a request token for the `requesttoken` header (Nextcloud's scripts
    /// send it so).
    Post(url::Url, Vec<(String, String)>, Option<Secret>),
}

/// One authorization request: its URL and the secrets to finish it with.
pub(crate) struct AuthorizeRequest {
    pub url: url::Url,
    pub state: Secret,
    pub verifier: Secret,
    pub redirect_uri: String,
}

impl AuthorizeRequest {
    /// A code request with PKCE S256, `state` and the resource indicator
    /// (RFC 8707), redirecting to `redirect_uri`.
    pub fn new(auth: &Authenticator, redirect_uri: &str) -> AuthorizeRequest {
        let verifier = random_secret(64);
        let state = random_secret(32);
        let mut url = auth.endpoints.authorization_endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", auth.client_id())
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("code_challenge", &pkce_challenge(verifier.expose()))
                .append_pair("code_challenge_method", "S256")
                .append_pair("state", state.expose())
                .append_pair("resource", &auth.endpoints.resource);
            if let Some(scope) = auth.scope() {
                q.append_pair("scope", scope);
            }
        }
        AuthorizeRequest {
            url,
            state,
            verifier,
            redirect_uri: redirect_uri.to_owned(),
        }
    }

    /// Trades the code for tokens with the PKCE verifier.
    pub async fn exchange(
        &self,
        auth: &Authenticator,
        user: &str,
        code: &str,
    ) -> Result<TokenSet, LoginError> {
        let form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", self.redirect_uri.clone()),
            ("code_verifier", self.verifier.expose().to_owned()),
            ("resource", auth.endpoints.resource.clone()),
        ];
        auth.token_request(user, "code exchange", form).await
    }
}

pub async fn login(auth: &Authenticator, user: &TestUser) -> Result<TokenSet, LoginError> {
    let name = user.name.to_string();
    let flow = |message: String| LoginError::Flow {
        user: name.clone(),
        message,
    };
    let request = AuthorizeRequest::new(auth, REDIRECT_URI);
    let authorize = request.url.clone();
    let redirect = url::Url::parse(REDIRECT_URI).map_err(|e| flow(e.to_string()))?;
    let fields = auth.form_fields();
    let mut jar = CookieJar::default();
    let mut next = Next::Get(authorize);
    let mut posted_credentials = false;
    let mut pressed_consent: Option<String> = None;
    for _ in 0..MAX_HOPS {
        let (url, req) = match next {
            Next::Get(url) => (url.clone(), auth.http().get(url)),
            Next::Post(url, form, token) => {
                let req = auth.http().post(url.clone()).form(&form);
                let req = match token {
                    Some(t) => req.header("requesttoken", t.expose()),
                    None => req,
                };
                (url, req)
            }
        };
        let req = match jar.header_for(&url) {
            Some(c) => req.header(reqwest::header::COOKIE, c),
            None => req,
        };
        let resp = req
            .header("Accept", "text/html,application/xhtml+xml")
            .send()
            .await
            .map_err(|e| flow(format!("{}: {}", strip_query(&url), without_url(e))))?;
        jar.absorb(&url, resp.headers());
        let status = resp.status();
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    flow(format!(
                        "HTTP {status} without Location from {}",
                        strip_query(&url)
                    ))
                })?;
            let target = url.join(location).map_err(|e| {
                // Without the query: it can carry the code, the state or a password.
                let shown = location.split('?').next().unwrap_or_default();
                flow(format!("bad Location {shown:?}: {e}"))
            })?;
            // Without the query: it carries the code and state.
            tracing::debug!(user = %name, %status, from = %strip_query(&url), to = %strip_query(&target), "login redirect");
            if same_endpoint(&target, &redirect) {
                let code = check_redirect(
                    &target,
                    request.state.expose(),
                    &auth.endpoints.issuer,
                    &name,
                )?;
                return request.exchange(auth, &name, &code).await;
            }
            next = Next::Get(target);
            continue;
        }
        let here = strip_query(&url);
        if !status.is_success() {
            let body = read_page(resp, &here).await.unwrap_or_default();
            let page = parse_page(&body);
            if posted_credentials && page.forms.iter().any(|f| f.has_field(&fields.password)) {
                return Err(LoginError::OAuth {
                    user: name.clone(),
                    stage: "login form",
                    error: "credentials_rejected".into(),
                    description: Some(format!(
                        "{here} showed its login form again (HTTP {status}) after the credentials were posted"
                    )),
                });
            }
            let title = page.title;
            return Err(flow(format!(
                "HTTP {status} from {here}{}{}",
                oauth_error_in(&body)
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default(),
                if title.is_empty() {
                    String::new()
                } else {
                    format!(" (page {title:?})")
                }
            )));
        }
        let body = read_page(resp, &here).await.map_err(&flow)?;
        let page = parse_page(&body);
        if let Some(form) = page.forms.iter().find(|f| f.has_field(&fields.password)) {
            if posted_credentials {
                return Err(LoginError::OAuth {
                    user: name.clone(),
                    stage: "login form",
                    error: "credentials_rejected".into(),
                    description: Some(format!(
                        "{here} showed its login form again after the credentials were posted"
                    )),
                });
            }
            if !form.has_field(&fields.user) {
                return Err(flow(format!(
                    "the login form at {here} has no field {:?} (set --login-user-field): {}",
                    fields.user,
                    page.describe()
                )));
            }
            posted_credentials = true;
            let mut values = form.fields();
            set_field(&mut values, &fields.user, user.name.as_str());
            set_field(&mut values, &fields.password, user.password.expose());
            if let Some(b) = form.buttons.first()
                && let (Some(n), Some(v)) = (&b.name, &b.value)
            {
                values.push((n.clone(), v.clone()));
            }
            next = submit(&url, form, values).map_err(flow)?;
            continue;
        }
        let nc_page = nextcloud::read(&body);
        match &nc_page {
            Some(NcPage::Login(login)) => {
                if posted_credentials {
                    return Err(LoginError::OAuth {
                        user: name.clone(),
                        stage: "login form",
                        error: "credentials_rejected".into(),
                        description: Some(login.refusal(&here, &name)),
                    });
                }
                posted_credentials = true;
                tracing::debug!(user = %name, page = %here, "Nextcloud login page: posting the credentials");
                let post = login.submission(&url, user.name.as_str(), &user.password);
                next = Next::Post(post.url, post.fields, post.request_token_header);
                continue;
            }
            Some(NcPage::Consent(consent)) => {
                if pressed_consent.is_some() {
                    return Err(flow(format!(
                        "the oidc app's consent page came back at {here} after consent was granted"
                    )));
                }
                pressed_consent = Some("grant".into());
                tracing::debug!(user = %name, page = %here, client = %consent.client_name, "Nextcloud consent page: granting");
                let post = consent.grant(&url).map_err(&flow)?;
                next = Next::Post(post.url, post.fields, post.request_token_header);
                continue;
            }
            Some(NcPage::Other) | None => {}
        }
        if let Some((form, button)) = page.consent_choice(fields.consent.as_ref()) {
            if let Some(pressed) = &pressed_consent {
                return Err(flow(format!(
                    "the consent page came back at {here} after pressing {pressed:?}: {}",
                    page.describe()
                )));
            }
            pressed_consent = Some(button.label.clone());
            let mut values = form.fields();
            if let (Some(n), Some(v)) = (&button.name, &button.value) {
                values.push((n.clone(), v.clone()));
            }
            next = submit(&url, form, values).map_err(flow)?;
            continue;
        }
        let consent = match &fields.consent {
            Some(c) => format!("a button matching --login-consent-selector {:?}", c.as_str()),
            None => "a consent form's submit button (one that does not read like Deny or Cancel; or set --login-consent-selector)".into(),
        };
        let nextcloud = match nc_page {
            Some(_) => {
                "; it is one of Nextcloud's pages (data-requesttoken) but neither its login page (initial state core-login…) nor the oidc app's consent (#oidc-consent)"
            }
            None => "",
        };
        return Err(flow(format!(
            "{here} answered a {}{}: looked for a login form with a field {:?} (see --login-password-field), Nextcloud's login or consent page, or {consent}{nextcloud}",
            page.describe(),
            if posted_credentials {
                " after the credentials were posted"
            } else {
                ""
            },
            fields.password,
        )));
    }
    Err(flow(format!(
        "no authorization code after {MAX_HOPS} redirects and forms"
    )))
}

/// The body of a page, at most `MAX_PAGE_BYTES` of it.
async fn read_page(mut resp: reqwest::Response, here: &str) -> Result<String, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(without_url)? {
        if body.len() + chunk.len() > MAX_PAGE_BYTES {
            return Err(format!(
                "{here} answered a page larger than {MAX_PAGE_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn set_field(values: &mut Vec<(String, String)>, name: &str, value: &str) {
    match values.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = value.to_owned(),
        None => values.push((name.to_owned(), value.to_owned())),
    }
}

fn submit(page: &url::Url, form: &Form, values: Vec<(String, String)>) -> Result<Next, String> {
    let action = match form.action.as_deref() {
        Some(a) if !a.is_empty() => page
            .join(a)
            .map_err(|e| format!("bad form action {a:?}: {e}"))?,
        _ => page.clone(),
    };
    if form.method == "get" {
        let mut u = action;
        u.query_pairs_mut().clear().extend_pairs(values);
        Ok(Next::Get(u))
    } else {
        Ok(Next::Post(action, values, None))
    }
}

fn same_endpoint(a: &url::Url, b: &url::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path() == b.path()
}

/// `check_callback` over the query of the redirect URL.
fn check_redirect(
    target: &url::Url,
    state: &str,
    issuer: &str,
    user: &str,
) -> Result<String, LoginError> {
    let get = |k: &str| {
        target
            .query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    check_callback(get, state, issuer, user)
}

/// Checks an authorization response's `state` (and `iss`, RFC 9207) and
/// returns the code; `get` reads one of its parameters.
pub(crate) fn check_callback(
    get: impl Fn(&str) -> Option<String>,
    state: &str,
    issuer: &str,
    user: &str,
) -> Result<String, LoginError> {
    if let Some(error) = get("error") {
        return Err(LoginError::OAuth {
            user: user.to_owned(),
            stage: "authorization",
            error,
            description: get("error_description"),
        });
    }
    let flow = |message: &str| LoginError::Flow {
        user: user.to_owned(),
        message: message.to_owned(),
    };
    if get("state").as_deref() != Some(state) {
        return Err(flow(
            "the authorization response's state does not match the request (CSRF?)",
        ));
    }
    if let Some(iss) = get("iss")
        && iss.trim_end_matches('/') != issuer.trim_end_matches('/')
    {
        return Err(flow(&format!(
            "the authorization response's iss {iss:?} is not the issuer {issuer:?} (mix-up attack?)"
        )));
    }
    get("code").ok_or_else(|| flow("the redirect carries no code"))
}

/// A reqwest error and its causes without the request URL, which after a
/// login form sent by GET carries the user's password in its query.
fn without_url(e: reqwest::Error) -> String {
    super::discovery::error_chain(&e.without_url())
}

fn strip_query(u: &url::Url) -> String {
    let mut u = u.clone();
    u.set_query(None);
    u.to_string()
}

/// An OAuth `error` in a JSON or text body, for the error message.
fn oauth_error_in(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let e = v.get("error")?.as_str()?.to_owned();
    Some(match v.get("error_description").and_then(|d| d.as_str()) {
        Some(d) => format!("{e} ({d})"),
        None => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_request_does_not_echo_the_password_in_its_url() {
        // A port that was just free: the request fails, and reqwest names
        // the URL in its error.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/login?user=u&password=hunter2-secret");
        let e = reqwest::Client::new().get(url).send().await.unwrap_err();
        assert!(
            super::super::discovery::error_chain(&e).contains("hunter2-secret"),
            "the test needs an error that carries the URL"
        );
        let shown = without_url(e);
        assert!(!shown.contains("hunter2-secret"), "{shown}");
    }

    #[test]
    fn pkce_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn callback_checks_state_and_iss() {
        let u = |q: &str| url::Url::parse(&format!("{REDIRECT_URI}?{q}")).unwrap();
        assert_eq!(
            check_redirect(&u("code=c&state=s&iss=http://as"), "s", "http://as/", "u").unwrap(),
            "c"
        );
        assert!(check_redirect(&u("code=c&state=x"), "s", "http://as", "u").is_err());
        assert!(
            check_redirect(&u("code=c&state=s&iss=http://evil"), "s", "http://as", "u").is_err()
        );
        let e =
            check_redirect(&u("error=access_denied&state=s"), "s", "http://as", "u").unwrap_err();
        assert!(e.to_string().contains("access_denied"), "{e}");
    }
}
