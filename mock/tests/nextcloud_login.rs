//! The mock's Nextcloud authentication surface as a client meets it over plain HTTP: OIDC
//! discovery at the oidc app's paths, RS256 tokens checked against the JWKS, the login and
//! consent pages with no `<form>` in their HTML (login → consent → code → tokens with PKCE,
//! id_token nonce and aud, refresh rotation), Login Flow v2 with its once-only URL and poll,
//! and app password revocation.

mod common;

use std::collections::HashMap;

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use common::*;
use mock::{LoginPages, MockConfig};
use serde_json::{Value, json};

fn config() -> MockConfig {
    MockConfig {
        users: users(),
        login_pages: LoginPages::Nextcloud,
        ..MockConfig::default()
    }
}

/// A browser stand-in: no redirects followed, one cookie jar (one origin).
struct Browser<'a> {
    h: &'a Harness,
    cookies: HashMap<String, String>,
}

struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
}

impl<'a> Browser<'a> {
    fn new(h: &'a Harness) -> Self {
        Self {
            h,
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Answer {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let resp = within(req.header("cookie", cookie.join("; ")).send())
            .await
            .expect("request");
        for v in resp.headers().get_all("set-cookie") {
            let pair = v.to_str().unwrap_or("").split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                self.cookies.insert(k.trim().into(), v.trim().into());
            }
        }
        let location = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(|l| match l.starts_with('/') {
                true => self.h.url(l),
                false => l.to_owned(),
            });
        Answer {
            status: resp.status().as_u16(),
            location,
            body: resp.text().await.unwrap_or_default(),
        }
    }

    async fn get(&mut self, url: &str) -> Answer {
        let req = self.h.http.get(url);
        self.send(req).await
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Answer {
        let req = self.h.http.post(url).form(form);
        self.send(req).await
    }
}

fn request_token(html: &str) -> String {
    let start = html.find("data-requesttoken=\"").expect("request token") + 19;
    html[start..start + html[start..].find('"').expect("end")].to_owned()
}

fn initial_state(html: &str, app: &str, key: &str) -> Value {
    let marker = format!("id=\"initial-state-{app}-{key}\" value=\"");
    let start = html.find(&marker).expect("initial state") + marker.len();
    let end = start + html[start..].find('"').expect("end");
    serde_json::from_slice(&STANDARD.decode(&html[start..end]).expect("base64")).expect("json")
}

fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Verifies an RS256 JWT against the JWKS key with its `kid` and returns its claims.
fn verify_with_jwks(token: &str, jwks: &Value) -> Value {
    let mut parts = token.split('.');
    let (h, c, s) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let header: Value = serde_json::from_slice(&B64.decode(h).expect("header")).expect("json");
    assert_eq!(header["alg"], "RS256");
    let key = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == header["kid"]))
        .expect("a JWKS key with the token's kid");
    assert_eq!(
        (key["kty"].as_str(), key["use"].as_str()),
        (Some("RSA"), Some("sig"))
    );
    let n = B64.decode(key["n"].as_str().unwrap_or("")).expect("n");
    let e = B64.decode(key["e"].as_str().unwrap_or("")).expect("e");
    RsaPublicKeyComponents { n: &n, e: &e }
        .verify(
            &RSA_PKCS1_2048_8192_SHA256,
            format!("{h}.{c}").as_bytes(),
            &B64.decode(s).expect("sig"),
        )
        .expect("the signature verifies with the JWKS key");
    serde_json::from_slice(&B64.decode(c).expect("claims")).expect("json")
}

#[tokio::test]
async fn discovery_names_the_oidc_app_paths_and_short_aliases_still_answer() {
    let h = start(config()).await;
    let d: Value = within(
        h.http
            .get(h.url("/.well-known/openid-configuration"))
            .send(),
    )
    .await
    .expect("discovery")
    .json()
    .await
    .expect("json");
    let i = &h.target.issuer;
    for (field, path) in [
        ("authorization_endpoint", "/index.php/apps/oidc/authorize"),
        ("token_endpoint", "/index.php/apps/oidc/token"),
        ("userinfo_endpoint", "/index.php/apps/oidc/userinfo"),
        ("jwks_uri", "/index.php/apps/oidc/jwks"),
        ("registration_endpoint", "/index.php/apps/oidc/register"),
        ("introspection_endpoint", "/index.php/apps/oidc/introspect"),
    ] {
        assert_eq!(d[field], format!("{i}{path}"), "{field}");
    }
    assert_eq!(d["issuer"], i.as_str());
    assert_eq!(d["id_token_signing_alg_values_supported"], json!(["RS256"]));
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    for path in [
        "/jwks",
        "/index.php/apps/oidc/jwks",
        "/.well-known/oauth-authorization-server",
    ] {
        let status = within(h.http.get(h.url(path)).send())
            .await
            .expect(path)
            .status();
        assert_eq!(status, 200, "{path}");
    }
}

/// What the real nextcloud-mcp-server sends to the registration endpoint.
async fn register_like_the_real_server(h: &Harness) -> (String, String) {
    let response = within(
        h.http
            .post(h.url("/index.php/apps/oidc/register"))
            .json(&json!({
                "client_name": "Nextcloud MCP Server (Bearer)",
                "redirect_uris": [REDIRECT_URI],
                "token_endpoint_auth_method": "client_secret_post",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "scope": "openid profile email offline_access notes.read notes.write files.read",
                "token_type": "Bearer",
                "resource_url": "http://127.0.0.1:9/mcp",
            }))
            .send(),
    )
    .await
    .expect("register");
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    (
        body["client_id"].as_str().expect("id").to_owned(),
        body["client_secret"].as_str().expect("secret").to_owned(),
    )
}

#[tokio::test]
async fn login_consent_code_and_tokens_through_pages_without_forms() {
    let h = start(config()).await;
    let (client_id, secret) = register_like_the_real_server(&h).await;
    let p = pkce();
    let resource = "http://127.0.0.1:9/mcp";
    let mut authorize = url::Url::parse(&h.url("/index.php/apps/oidc/authorize")).expect("url");
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("scope", "openid profile notes.read")
        .append_pair("state", "st")
        .append_pair("nonce", "n-123")
        .append_pair("prompt", "consent")
        .append_pair("resource", resource)
        .append_pair("code_challenge", &p.challenge)
        .append_pair("code_challenge_method", "S256");
    let mut b = Browser::new(&h);

    // Not logged in: to the login page, which holds no form but the request token.
    let a = b.get(authorize.as_str()).await;
    assert_eq!(a.status, 303);
    let login_page = a.location.expect("to login");
    assert!(
        login_page.contains("/index.php/login?redirect_url="),
        "{login_page}"
    );
    let redirect_url = query_param(&login_page, "redirect_url").expect("redirect_url");
    let page = b.get(&login_page).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("<form"), "{}", page.body);
    assert_eq!(
        initial_state(&page.body, "core", "loginRedirectUrl"),
        json!(redirect_url)
    );
    let token = request_token(&page.body);

    // A wrong password comes back to the login page with the message.
    let login = h.url("/index.php/login");
    let fields = |pw: &'static str, token: &str| {
        vec![
            ("user", "alice".to_owned()),
            ("password", pw.to_owned()),
            ("requesttoken", token.to_owned()),
            ("redirect_url", redirect_url.clone()),
            ("timezone", "UTC".to_owned()),
            ("timezone_offset", "0".to_owned()),
        ]
    };
    let form = fields("wrong", &token);
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = b.post(&login, &pairs).await;
    assert_eq!(a.status, 303);
    let again = a.location.expect("back to login");
    assert!(again.contains("direct=1"), "{again}");
    let page = b.get(&again).await;
    assert_eq!(
        initial_state(&page.body, "core", "loginErrors"),
        json!(["Wrong login or password."])
    );

    // The right one: 303 to the authorize URL, then to the oidc app's consent page.
    let form = fields("alice-pw", &request_token(&page.body));
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = b.post(&login, &pairs).await;
    assert_eq!(a.status, 303);
    assert_eq!(a.location.as_deref(), Some(h.url(&redirect_url).as_str()));
    let a = b.get(&h.url(&redirect_url)).await;
    assert_eq!(
        (a.status, a.location.as_deref()),
        (303, Some(h.url("/index.php/apps/oidc/consent").as_str()))
    );
    let consent = b.get(&h.url("/index.php/apps/oidc/consent")).await;
    assert_eq!(consent.status, 200);
    assert!(!consent.body.contains("<form"));
    assert!(
        consent
            .body
            .contains("data-scopes=\"openid profile notes.read\""),
        "{}",
        consent.body
    );
    let token = request_token(&consent.body);
    let refused = b
        .post(
            &h.url("/index.php/apps/oidc/consent/grant"),
            &[("scopes", "openid")],
        )
        .await;
    assert_eq!(refused.status, 412, "no request token, no consent");
    let a = b
        .post(
            &h.url("/index.php/apps/oidc/consent/grant"),
            &[
                ("requesttoken", &token),
                ("scopes", "openid profile notes.read"),
            ],
        )
        .await;
    assert_eq!(a.status, 303);
    let back = a.location.expect("back to authorize");
    let a = b.get(&back).await;
    assert_eq!(a.status, 302);
    let callback = a.location.expect("to the client");
    assert!(callback.starts_with(REDIRECT_URI), "{callback}");
    assert_eq!(query_param(&callback, "state").as_deref(), Some("st"));
    let code = query_param(&callback, "code").expect("code");

    // The code with PKCE and client_secret_post: RS256 access and ID tokens.
    let (status, tokens) = h
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &p.verifier),
            ("client_id", &client_id),
            ("client_secret", &secret),
        ])
        .await;
    assert_eq!(status, 200, "{tokens}");
    let jwks: Value = within(h.http.get(h.url("/index.php/apps/oidc/jwks")).send())
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let access = verify_with_jwks(tokens["access_token"].as_str().expect("access"), &jwks);
    assert_eq!(access["aud"], json!([client_id, resource]));
    assert_eq!(
        (access["iss"].as_str(), access["sub"].as_str()),
        (Some(h.target.issuer.as_str()), Some("alice"))
    );
    assert_eq!(access["scope"], "openid profile notes.read");
    assert_eq!(access["client_id"], client_id.as_str());
    let id = verify_with_jwks(tokens["id_token"].as_str().expect("id_token"), &jwks);
    assert_eq!(
        (id["aud"].as_str(), id["nonce"].as_str()),
        (Some(client_id.as_str()), Some("n-123"))
    );
    assert_eq!(
        (id["iss"].as_str(), id["sub"].as_str()),
        (Some(h.target.issuer.as_str()), Some("alice"))
    );
    assert!(id["exp"].as_u64() > id["iat"].as_u64());

    // Consent is remembered: the same request again goes straight to the client.
    let a = b.get(authorize.as_str()).await;
    assert_eq!(a.status, 302, "{:?}", a.location);

    // Refresh rotates, and the rotated-out token no longer works.
    let old = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let refresh = |token: String| {
        let (h, client_id, secret) = (&h, client_id.clone(), secret.clone());
        async move {
            h.token_request(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &token),
                ("client_id", &client_id),
                ("client_secret", &secret),
            ])
            .await
        }
    };
    let (status, renewed) = refresh(old.clone()).await;
    assert_eq!(status, 200, "{renewed}");
    assert_ne!(renewed["refresh_token"].as_str(), Some(old.as_str()));
    verify_with_jwks(
        renewed["id_token"].as_str().expect("id_token on refresh"),
        &jwks,
    );
    assert_eq!(refresh(old).await.0, 400);
}

#[tokio::test]
async fn login_flow_v2_grants_an_app_password_once_and_it_can_be_revoked() {
    let h = start(config()).await;
    let init: Value = within(
        h.http
            .post(h.url("/index.php/login/v2"))
            .header("user-agent", "nextcloud-mcp-server")
            .send(),
    )
    .await
    .expect("init")
    .json()
    .await
    .expect("json");
    let poll_url = init["poll"]["endpoint"]
        .as_str()
        .expect("endpoint")
        .to_owned();
    assert_eq!(poll_url, h.url("/index.php/login/v2/poll"));
    let poll_token = init["poll"]["token"].as_str().expect("token").to_owned();
    let login_url = init["login"].as_str().expect("login").to_owned();
    assert!(login_url.starts_with(&h.url("/index.php/login/v2/flow/")));
    let poll = || async {
        within(
            h.http
                .post(&poll_url)
                .form(&[("token", poll_token.as_str())])
                .send(),
        )
        .await
        .expect("poll")
    };
    assert_eq!(poll().await.status(), 404, "pending");

    let mut b = Browser::new(&h);
    let a = b.get(&login_url).await;
    assert_eq!(a.status, 303);
    let picker = b.get(&a.location.expect("to the picker")).await;
    assert_eq!(picker.status, 200);
    assert!(!picker.body.contains("<form"));
    let auth = initial_state(&picker.body, "core", "loginFlowAuth");
    assert_eq!(auth["client"], "nextcloud-mcp-server");
    let grant_url = auth["loginRedirectUrl"]
        .as_str()
        .expect("grant url")
        .to_owned();
    // The login URL works once.
    assert_eq!(Browser::new(&h).get(&login_url).await.status, 403);

    // The grant page sends a visitor without a session to the login page.
    let a = b.get(&grant_url).await;
    assert_eq!(a.status, 303);
    let login_page = a.location.expect("to login");
    let redirect_url = query_param(&login_page, "redirect_url").expect("redirect_url");
    let page = b.get(&login_page).await;
    let token = request_token(&page.body);
    let a = b
        .post(
            &h.url("/index.php/login"),
            &[
                ("user", "bob"),
                ("password", "bob-pw"),
                ("requesttoken", &token),
                ("redirect_url", &redirect_url),
                ("timezone", "UTC"),
                ("timezone_offset", "0"),
            ],
        )
        .await;
    assert_eq!(a.status, 303);
    let grant = b.get(&a.location.expect("back to grant")).await;
    assert_eq!(grant.status, 200);
    assert!(!grant.body.contains("<form"));
    let g = initial_state(&grant.body, "core", "loginFlowGrant");
    assert_eq!(g["userId"], "bob");
    let done = b
        .post(
            g["actionUrl"].as_str().expect("action"),
            &[
                ("stateToken", g["stateToken"].as_str().unwrap_or("")),
                ("requesttoken", &request_token(&grant.body)),
            ],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);

    let first = poll().await;
    assert_eq!(first.status(), 200);
    let creds: Value = first.json().await.expect("json");
    assert_eq!(
        (creds["server"].as_str(), creds["loginName"].as_str()),
        (Some(h.target.issuer.as_str()), Some("bob"))
    );
    let app_password = creds["appPassword"]
        .as_str()
        .expect("app password")
        .to_owned();
    assert_eq!(app_password.len(), 72);
    assert_eq!(
        poll().await.status(),
        404,
        "the credentials are handed out once"
    );

    // DELETE /ocs/v2.php/core/apppassword with the app password revokes it, once.
    let hr = &h;
    let delete = |pw: String| async move {
        within(
            hr.http
                .delete(hr.url("/ocs/v2.php/core/apppassword?format=json"))
                .basic_auth("bob", Some(pw))
                .header("OCS-APIRequest", "true")
                .send(),
        )
        .await
        .expect("delete")
    };
    let first = delete("bob-pw".into()).await;
    assert_eq!(
        first.status(),
        403,
        "the login password is not an app password"
    );
    let revoked = delete(app_password.clone()).await;
    assert_eq!(revoked.status(), 200);
    let body: Value = revoked.json().await.expect("json");
    assert_eq!(body["ocs"]["meta"]["statuscode"], 200);
    assert_eq!(
        delete(app_password).await.status(),
        401,
        "gone after revocation"
    );
}
