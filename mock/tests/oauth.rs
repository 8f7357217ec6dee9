//! Integration tests of the authorization server: refresh rotation and reuse detection, expiry,
//! revocation, refused token and authorization requests, confidential clients.

mod common;

use std::time::Duration;

use common::*;
use mock::{LoginPages, MockConfig};
use serde_json::{Value, json};

fn config() -> MockConfig {
    MockConfig {
        users: users(),
        // The mock's HTML forms, which these tests post.
        login_pages: LoginPages::Forms,
        consent: true,
        ..MockConfig::default()
    }
}

#[tokio::test]
async fn refresh_rotation_reuse_expiry_and_revocation() {
    let h = start(MockConfig {
        token_ttl: Duration::from_secs(1),
        ..config()
    })
    .await;
    let client_id = h
        .register_public(&["authorization_code", "refresh_token", "password"])
        .await;
    let first = h.password_token(&client_id, "alice", "alice-pw").await;
    let old_refresh = first["refresh_token"].as_str().expect("refresh").to_owned();
    let refresh = |token: String| {
        let h = &h;
        let client_id = client_id.clone();
        async move {
            h.token_request(&[
                ("grant_type", "refresh_token"),
                ("client_id", &client_id),
                ("refresh_token", &token),
            ])
            .await
        }
    };
    let (status, second) = refresh(old_refresh.clone()).await;
    assert_eq!(status, 200, "{second}");
    let new_refresh = second["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    assert_ne!(new_refresh, old_refresh);
    let (status, _) = h.raw_initialize(second["access_token"].as_str()).await;
    assert_eq!(status, 200);

    // Reusing the rotated-out token revokes the whole family, newest refresh token included.
    let (status, body) = refresh(old_refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, body) = refresh(new_refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, challenge) = h.raw_initialize(second["access_token"].as_str()).await;
    assert_eq!(status, 401);
    assert!(
        challenge
            .unwrap_or_default()
            .contains("error=\"invalid_token\"")
    );

    // Expiry.
    let fresh = h.password_token(&client_id, "alice", "alice-pw").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        h.raw_initialize(fresh["access_token"].as_str()).await.0,
        401
    );

    // Revocation of an access token, then of a refresh token.
    let (_, renewed) = refresh(
        fresh["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
    .await;
    let access = renewed["access_token"].as_str().unwrap_or_default();
    assert_eq!(h.raw_initialize(Some(access)).await.0, 200);
    let revoke = within(
        h.http
            .post(h.url("/revoke"))
            .form(&[("client_id", client_id.as_str()), ("token", access)])
            .send(),
    )
    .await
    .expect("revoke");
    assert_eq!(revoke.status(), 200);
    assert_eq!(h.raw_initialize(Some(access)).await.0, 401);
    let introspect: Value = within(
        h.http
            .post(h.url("/introspect"))
            .form(&[("client_id", client_id.as_str()), ("token", access)])
            .send(),
    )
    .await
    .expect("introspect")
    .json()
    .await
    .expect("json");
    assert_eq!(introspect["active"], false);
}

#[tokio::test]
async fn token_and_authorize_refusals() {
    let h = start(MockConfig {
        auto_approve: true,
        ..config()
    })
    .await;
    let client_id = h.register_public(&["authorization_code"]).await;
    let code_for = |p: &Pkce| {
        let (h, client_id, challenge) = (&h, client_id.clone(), p.challenge.clone());
        async move {
            let (status, location, _) = h
                .authorize(&[
                    ("response_type", "code"),
                    ("client_id", &client_id),
                    ("redirect_uri", REDIRECT_URI),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                    ("login_hint", "alice"),
                ])
                .await;
            assert_eq!(status, 302);
            let url = url::Url::parse(&location.unwrap_or_default()).expect("location");
            url.query_pairs()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned())
                .expect("code")
        }
    };
    // (case, mutate the token request) → expected error
    type Case = (&'static str, fn(&mut Vec<(String, String)>));
    let cases: [Case; 3] = [
        ("wrong verifier", |f| {
            f.push(("code_verifier".into(), "x".repeat(50)))
        }),
        ("wrong redirect_uri", |f| {
            f.push(("redirect_uri".into(), "http://127.0.0.1:9/other".into()))
        }),
        ("wrong client", |f| {
            f.push(("client_id".into(), "someone-else".into()))
        }),
    ];
    for (name, mutate) in cases {
        let p = pkce();
        let code = code_for(&p).await;
        let mut form: Vec<(String, String)> = vec![
            ("grant_type".into(), "authorization_code".into()),
            ("code".into(), code),
        ];
        mutate(&mut form);
        let defaults = [
            ("client_id", client_id.as_str()),
            ("code_verifier", &p.verifier),
            ("redirect_uri", REDIRECT_URI),
        ];
        for (k, v) in defaults {
            if !form.iter().any(|(fk, _)| fk == k) {
                form.push((k.into(), v.into()));
            }
        }
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (status, body) = h.token_request(&pairs).await;
        let expected = if name == "wrong client" {
            (401, "invalid_client")
        } else {
            (400, "invalid_grant")
        };
        assert_eq!(
            (status, body["error"].as_str().unwrap_or_default()),
            expected,
            "{name}: {body}"
        );
    }

    // A reused code is refused and what it bought is revoked.
    let p = pkce();
    let code = code_for(&p).await;
    let (status, first) = h.exchange(&client_id, &code, &p.verifier).await;
    assert_eq!(status, 200);
    let (status, again) = h.exchange(&client_id, &code, &p.verifier).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(
        h.raw_initialize(first["access_token"].as_str()).await.0,
        401
    );

    // Authorization-request errors come back on the redirect.
    let p = pkce();
    for (name, extra, expected) in [
        (
            "plain PKCE",
            ("code_challenge_method", "plain"),
            "invalid_request",
        ),
        (
            "resource not a URL",
            ("resource", "not a url"),
            "invalid_target",
        ),
        ("unknown scope", ("scope", "admin"), "invalid_scope"),
    ] {
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("state", "s"),
            ("code_challenge", p.challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("login_hint", "alice"),
        ];
        params.retain(|(k, _)| *k != extra.0);
        params.push(extra);
        let (status, location, _) = h.authorize(&params).await;
        assert_eq!(status, 302, "{name}");
        let location = location.unwrap_or_default();
        assert!(
            location.contains(&format!("error={expected}")) && location.contains("state=s"),
            "{name}: {location}"
        );
    }
    // Unknown client or redirect URI: an error page, no redirect.
    for (client, redirect) in [
        ("nobody", REDIRECT_URI),
        (client_id.as_str(), "http://evil.example/cb"),
    ] {
        let (status, location, _) = h
            .authorize(&[
                ("response_type", "code"),
                ("client_id", client),
                ("redirect_uri", redirect),
            ])
            .await;
        assert_eq!((status, location), (400, None));
    }
    // A resource that is not a URL, on the token endpoint.
    let (status, body) = h
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", "x"),
            ("resource", "not a url"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target"))
    );
}

#[tokio::test]
async fn confidential_clients_registration_errors_and_userinfo() {
    let h = start(config()).await;
    let registered: Value = within(
        h.http
            .post(h.url("/register"))
            .json(&json!({
                "redirect_uris": [REDIRECT_URI],
                "grant_types": ["client_credentials", "password"],
                "scope": "mcp:tools profile email",
            }))
            .send(),
    )
    .await
    .expect("register")
    .json()
    .await
    .expect("json");
    assert_eq!(
        registered["token_endpoint_auth_method"],
        "client_secret_basic"
    );
    let id = registered["client_id"].as_str().expect("id").to_owned();
    let secret = registered["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();

    let token = |form: Vec<(&'static str, String)>, basic: Option<(&str, &str)>| {
        let mut request = h.http.post(h.url("/token")).form(&form);
        if let Some((user, password)) = basic {
            request = request.basic_auth(user, Some(password));
        }
        async move {
            let response = within(request.send()).await.expect("token");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json"))
        }
    };
    let cc = || vec![("grant_type", "client_credentials".to_owned())];
    let (status, body) = token(cc(), Some((&id, &secret))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none());
    assert_eq!(body["scope"], "mcp:tools profile email");
    let mut post = cc();
    post.extend([("client_id", id.clone()), ("client_secret", secret.clone())]);
    assert_eq!(token(post, None).await.0, 200);
    let (status, body) = token(cc(), Some((&id, "wrong"))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, body) = token(cc(), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, body) = token(
        vec![("grant_type", "implicit".into())],
        Some((&id, &secret)),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let mut bad_scope = cc();
    bad_scope.push(("scope", "openid".into()));
    let (status, body) = token(bad_scope, Some((&id, &secret))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );

    // Public clients may not use client_credentials; password grant needs the right password.
    let public = h.register_public(&["client_credentials", "password"]).await;
    let (status, body) = h
        .token_request(&[("grant_type", "client_credentials"), ("client_id", &public)])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    let (status, body) = h
        .token_request(&[
            ("grant_type", "password"),
            ("client_id", &public),
            ("username", "alice"),
            ("password", "x"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, body) = h
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("client_id", &public),
            ("refresh_token", "nope"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // Introspection with client auth, userinfo with the bearer token.
    let alice = h.password_token(&public, "alice", "alice-pw").await;
    let access = alice["access_token"].as_str().unwrap_or_default();
    let introspected: Value = within(
        h.http
            .post(h.url("/introspect"))
            .basic_auth(&id, Some(&secret))
            .form(&[("token", access)])
            .send(),
    )
    .await
    .expect("introspect")
    .json()
    .await
    .expect("json");
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["aud"], json!([public, h.target.mcp_url]));
    assert_eq!(introspected["sub"], "alice");
    let info: Value = within(h.http.get(h.url("/userinfo")).bearer_auth(access).send())
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (info["sub"].as_str(), info["preferred_username"].as_str()),
        (Some("alice"), Some("alice"))
    );
    let jwks: Value = within(h.http.get(h.url("/jwks")).send())
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (
            jwks["keys"][0]["kty"].as_str(),
            jwks["keys"][0]["alg"].as_str()
        ),
        (Some("RSA"), Some("RS256"))
    );

    // Registration errors.
    for (body, expected) in [
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": ["not a url"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": [REDIRECT_URI], "grant_types": ["implicit"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
    ] {
        let response = within(h.http.post(h.url("/register")).json(&body).send())
            .await
            .expect("register");
        assert_eq!(response.status(), 400);
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["error"], expected, "{body}");
    }
}

#[tokio::test]
async fn token_auth_methods_switch_limits_metadata_registration_and_the_token_endpoint() {
    let h = start(MockConfig {
        token_auth_methods: vec![mock::TokenAuthMethod::ClientSecretPost],
        ..config()
    })
    .await;
    let metadata: Value = within(
        h.http
            .get(h.url("/.well-known/oauth-authorization-server"))
            .send(),
    )
    .await
    .expect("metadata")
    .json()
    .await
    .expect("json");
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        json!(["client_secret_post"])
    );
    assert!(
        metadata
            .get("client_id_metadata_document_supported")
            .is_none()
    );
    let register = |method: Option<&str>| {
        let mut body = json!({
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["client_credentials"],
        });
        if let Some(m) = method {
            body["token_endpoint_auth_method"] = json!(m);
        }
        let request = h.http.post(h.url("/register")).json(&body);
        async move {
            let response = within(request.send()).await.expect("register");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json"))
        }
    };
    for refused in ["none", "client_secret_basic"] {
        let (status, body) = register(Some(refused)).await;
        assert_eq!(status, 400, "{refused}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap_or_default()
                .contains("client_secret_post"),
            "{body}"
        );
    }
    // Without a method, DCR registers the one the server takes.
    let (status, registered) = register(None).await;
    assert_eq!(status, 201, "{registered}");
    assert_eq!(
        registered["token_endpoint_auth_method"],
        "client_secret_post"
    );
    let id = registered["client_id"].as_str().expect("id");
    let secret = registered["client_secret"].as_str().expect("secret");

    let (status, body) = h
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    let response = within(
        h.http
            .post(h.url("/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send(),
    )
    .await
    .expect("token");
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains("client_secret_basic"),
        "{body}"
    );
}
