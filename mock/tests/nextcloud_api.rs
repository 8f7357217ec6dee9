//! Nextcloud's own HTTP surface of the mock, as the real nextcloud-mcp-server's client uses it:
//! status, OCS capabilities and user, the Notes API, OCS shares and WebDAV, with Basic and
//! Bearer authentication.

mod common;

use common::{Harness, start, within};
use mock::MockConfig;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

const NOTES: &str = "/index.php/apps/notes/api/v1/notes";
const SHARES: &str = "/ocs/v2.php/apps/files_sharing/api/v1/shares";

async fn mock() -> Harness {
    start(MockConfig {
        users: ["alice", "bob", "carol"]
            .map(|u| (u.to_owned(), format!("{u}-pw")))
            .to_vec(),
        ..MockConfig::default()
    })
    .await
}

/// A request as `user` with Basic auth and the `OCS-APIRequest` header the real client sends.
fn req(h: &Harness, user: &str, method: &str, path: &str) -> RequestBuilder {
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    h.http
        .request(method, h.url(path))
        .basic_auth(user, Some(format!("{user}-pw")))
        .header("OCS-APIRequest", "true")
}

async fn send(request: RequestBuilder) -> Response {
    within(request.send()).await.expect("request")
}

async fn json_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = within(response.text()).await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[tokio::test]
async fn status_capabilities_and_user_with_basic_and_bearer() {
    let h = mock().await;
    let (status, body) = json_of(send(h.http.get(h.url("/status.php"))).await).await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["installed"].clone(), body["maintenance"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(body["productname"], "Nextcloud");

    // Public, JSON on request, XML by default.
    let caps = h.url("/ocs/v2.php/cloud/capabilities");
    let (status, body) =
        json_of(send(h.http.get(&caps).header("Accept", "application/json")).await).await;
    assert_eq!(status, 200);
    assert_eq!(body["ocs"]["meta"]["statuscode"], 200);
    let notes = &body["ocs"]["data"]["capabilities"]["notes"];
    assert!(
        notes["api_version"]
            .as_array()
            .expect("list")
            .contains(&json!("1.3")),
        "{notes}"
    );
    assert!(notes["version"].is_string());
    let xml = within(send(h.http.get(&caps)).await.text())
        .await
        .expect("xml");
    assert!(
        xml.contains("<statuscode>200</statuscode>") && xml.contains("<api_version>"),
        "{xml}"
    );
    let (_, body) = json_of(
        send(
            h.http
                .get(h.url("/ocs/v1.php/cloud/capabilities?format=json")),
        )
        .await,
    )
    .await;
    assert_eq!(body["ocs"]["meta"]["statuscode"], 100);

    let user = "/ocs/v2.php/cloud/user?format=json";
    let (status, body) = json_of(send(req(&h, "alice", "GET", user)).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ocs"]["data"]["id"], "alice");
    assert_eq!(body["ocs"]["data"]["display-name"], "alice");
    assert_eq!(body["ocs"]["data"]["email"], "alice@benchmark.local");

    // Wrong or no credentials: 401 in the envelope (997) with a Basic challenge, v1 and v2.
    for path in [user, "/ocs/v1.php/cloud/user?format=json"] {
        let response = send(h.http.get(h.url(path)).basic_auth("alice", Some("nope"))).await;
        assert_eq!(
            header(&response, "www-authenticate").as_deref(),
            Some("Basic realm=\"Nextcloud\", charset=\"UTF-8\"")
        );
        let (status, body) = json_of(response).await;
        assert_eq!(
            (status.as_u16(), body["ocs"]["meta"]["statuscode"].clone()),
            (401, json!(997)),
            "{path}"
        );
    }
    let (status, _) = json_of(send(h.http.get(h.url(user))).await).await;
    assert_eq!(status, 401);
    let (status, _) =
        json_of(send(h.http.get(&caps).basic_auth("alice", Some("nope"))).await).await;
    assert_eq!(
        status, 401,
        "credentials sent to a public endpoint must hold"
    );

    // An app password (Login Flow v2's grant) works as the Basic password on every API.
    let app_password = h
        .target
        .issue_app_password("alice", "nextcloud-mcp-server")
        .expect("alice exists");
    let ap = app_password.expose().to_owned();
    let (status, body) =
        json_of(send(h.http.get(h.url(user)).basic_auth("alice", Some(&ap))).await).await;
    assert_eq!(
        (status.as_u16(), body["ocs"]["data"]["id"].clone()),
        (200, json!("alice"))
    );
    let r = send(h.http.get(h.url(NOTES)).basic_auth("alice", Some(&ap))).await;
    assert_eq!(r.status(), 200);
    let r = send(h.http.get(h.url(NOTES)).basic_auth("bob", Some(&ap))).await;
    assert_eq!(r.status(), 401, "an app password is its user's only");
    let r = send(
        h.http
            .request(
                Method::from_bytes(b"PROPFIND").expect("m"),
                h.url("/remote.php/dav/files/alice/"),
            )
            .basic_auth("alice", Some(&ap)),
    )
    .await;
    assert_eq!(r.status(), 207);

    // An access token of ours is accepted as Bearer on every API.
    let client = h.register_public(&["password"]).await;
    let token = h.password_token(&client, "bob", "bob-pw").await;
    let token = token["access_token"].as_str().expect("access_token");
    let (status, body) = json_of(send(h.http.get(h.url(user)).bearer_auth(token)).await).await;
    assert_eq!(
        (status.as_u16(), body["ocs"]["data"]["id"].clone()),
        (200, json!("bob"))
    );
    let response = send(
        h.http
            .request(
                Method::from_bytes(b"PROPFIND").expect("m"),
                h.url("/remote.php/dav/"),
            )
            .bearer_auth(token),
    )
    .await;
    assert_eq!(response.status(), 207);
    let (status, _) =
        json_of(send(h.http.get(h.url(NOTES)).bearer_auth("not-a-token")).await).await;
    assert_eq!(status, 401);

    // Whatever the audience: the real server checks ownership with a token minted for itself.
    let (status, other) = h
        .token_request(&[
            ("grant_type", "password"),
            ("client_id", &client),
            ("username", "carol"),
            ("password", "carol-pw"),
            ("resource", "http://127.0.0.1:9/mcp"),
        ])
        .await;
    assert_eq!(status, 200, "{other}");
    let other = other["access_token"].as_str().expect("access_token");
    let (status, body) = json_of(send(h.http.get(h.url(user)).bearer_auth(other)).await).await;
    assert_eq!(
        (status.as_u16(), body["ocs"]["data"]["id"].clone()),
        (200, json!("carol"))
    );

    let (status, _) = h.raw_initialize(Some(other)).await;
    assert_eq!(
        status, 401,
        "the mock's own MCP endpoint refuses a token for another audience"
    );

    // Revoked tokens stop working at once.
    let r = send(
        h.http
            .post(h.url("/mock/revoke-access-tokens"))
            .basic_auth("admin", Some("admin")),
    )
    .await;
    assert_eq!(r.status(), 200);
    let (status, _) = json_of(send(h.http.get(h.url(user)).bearer_auth(other)).await).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn notes_crud_with_etags_and_own_folder_ids() {
    let h = mock().await;
    let (status, note) = json_of(
        send(
            req(&h, "alice", "POST", NOTES)
                .json(&json!({"title": "Plan", "content": "one", "category": "work"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{note}");
    for key in [
        "id", "etag", "readonly", "content", "title", "category", "favorite", "modified",
    ] {
        assert!(note.get(key).is_some(), "{key} missing in {note}");
    }
    assert_eq!(
        (
            note["title"].clone(),
            note["category"].clone(),
            note["content"].clone()
        ),
        (json!("Plan"), json!("work"), json!("one"))
    );
    let id = note["id"].as_u64().expect("id");
    let etag = note["etag"].as_str().expect("etag").to_owned();

    let response = send(req(&h, "alice", "GET", &format!("{NOTES}/{id}"))).await;
    assert_eq!(header(&response, "etag"), Some(format!("\"{etag}\"")));
    assert!(header(&response, "x-notes-api-versions").is_some());
    let (status, got) = json_of(response).await;
    assert_eq!(
        (status.as_u16(), got["content"].clone()),
        (200, json!("one"))
    );

    // The note is `/Notes/work/Plan.md` in alice's files.
    let response = send(req(
        &h,
        "alice",
        "GET",
        "/remote.php/dav/files/alice/Notes/work/Plan.md",
    ))
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(within(response.text()).await.expect("body"), "one");

    // A stale If-Match is 412 carrying the current note; the right one updates.
    let url = format!("{NOTES}/{id}");
    let (status, body) = json_of(
        send(
            req(&h, "alice", "PUT", &url)
                .header("If-Match", "\"stale\"")
                .json(&json!({"content": "two"})),
        )
        .await,
    )
    .await;
    assert_eq!((status.as_u16(), body["etag"].clone()), (412, json!(etag)));
    let (status, updated) = json_of(
        send(
            req(&h, "alice", "PUT", &url)
                .header("If-Match", format!("\"{etag}\""))
                .json(&json!({"content": "two"})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status.as_u16(), updated["content"].clone()),
        (200, json!("two"))
    );
    assert_ne!(updated["etag"], json!(etag));
    let (status, _) = json_of(
        send(
            req(&h, "alice", "PUT", &url)
                .header("If-Match", format!("\"{etag}\""))
                .json(&json!({"content": "three"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 412, "the old etag is stale now");
    let (status, updated) =
        json_of(send(req(&h, "alice", "PUT", &url).json(&json!({"title": "Plan B"}))).await).await;
    assert_eq!(
        (
            status.as_u16(),
            updated["title"].clone(),
            updated["content"].clone()
        ),
        (200, json!("Plan B"), json!("two"))
    );

    // Ids resolve only in the caller's own Notes folder.
    let (status, body) = json_of(send(req(&h, "bob", "GET", &url)).await).await;
    assert_eq!(
        (status.as_u16(), body),
        (404, json!({"errorType": "Exception"}))
    );
    let (status, _) = json_of(send(req(&h, "bob", "DELETE", &url)).await).await;
    assert_eq!(status, 404);

    let (status, body) = json_of(send(req(&h, "alice", "DELETE", &url)).await).await;
    assert_eq!((status.as_u16(), body), (200, json!([])));
    let (status, _) = json_of(send(req(&h, "alice", "GET", &url)).await).await;
    assert_eq!(status, 404);

    // Without credentials: 401 with the Basic challenge; the path without /index.php works.
    let response = send(h.http.get(h.url("/apps/notes/api/v1/notes"))).await;
    assert_eq!(response.status(), 401);
    assert!(
        header(&response, "www-authenticate")
            .is_some_and(|c| c.starts_with("Basic realm=\"Nextcloud\""))
    );
    let (status, list) =
        json_of(send(req(&h, "alice", "GET", "/apps/notes/api/v1/notes")).await).await;
    assert_eq!((status.as_u16(), list), (200, json!([])));
}

#[tokio::test]
async fn notes_listing_in_chunks_follows_the_cursor() {
    let h = mock().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let (_, note) = json_of(
            send(
                req(&h, "carol", "POST", NOTES)
                    .json(&json!({"title": format!("n{i}"), "content": "x"})),
            )
            .await,
        )
        .await;
        ids.push(note["id"].as_u64().expect("id"));
    }
    let mut full = Vec::new();
    let mut cursor: Option<String> = None;
    let mut n_chunks = 0;
    loop {
        let mut query = vec![("chunkSize", "2".to_owned())];
        if let Some(c) = &cursor {
            query.push(("chunkCursor", c.clone()));
        }
        let response = send(req(&h, "carol", "GET", NOTES).query(&query)).await;
        let next = header(&response, "x-notes-chunk-cursor");
        let (status, chunk) = json_of(response).await;
        assert_eq!(status, 200);
        n_chunks += 1;
        let chunk = chunk.as_array().expect("list").clone();
        let (with_content, stubs): (Vec<_>, Vec<_>) =
            chunk.iter().partition(|n| n.get("content").is_some());
        full.extend(with_content.iter().filter_map(|n| n["id"].as_u64()));
        match next {
            Some(c) => {
                assert_eq!(with_content.len(), 2);
                assert!(stubs.is_empty(), "only the last chunk lists the other ids");
                cursor = Some(c);
            }
            None => {
                // The last chunk names every other note by id alone.
                let stub_ids: Vec<u64> = stubs.iter().filter_map(|n| n["id"].as_u64()).collect();
                assert_eq!(stub_ids.len() + with_content.len(), 5, "{chunk:?}");
                break;
            }
        }
        assert!(n_chunks < 10, "the cursor must advance");
    }
    assert_eq!(n_chunks, 3);
    full.sort_unstable();
    assert_eq!(full, ids);
    let (_, all) = json_of(send(req(&h, "carol", "GET", NOTES)).await).await;
    assert_eq!(all.as_array().map(Vec::len), Some(5));
    let (_, none) =
        json_of(send(req(&h, "carol", "GET", NOTES).query(&[("category", "nothing")])).await).await;
    assert_eq!(
        none.as_array()
            .map(|l| l.iter().all(|n| n.get("content").is_none())),
        Some(true)
    );
}

#[tokio::test]
async fn shares_in_the_ocs_envelope() {
    let h = mock().await;
    let put =
        send(req(&h, "alice", "PUT", "/remote.php/dav/files/alice/report.txt").body("quarterly"))
            .await;
    assert_eq!(put.status(), 201);

    let form = [
        ("path", "/report.txt"),
        ("shareType", "0"),
        ("shareWith", "bob"),
        ("permissions", "1"),
    ];
    let (status, body) = json_of(
        send(
            req(&h, "alice", "POST", SHARES)
                .header("Accept", "application/json")
                .form(&form),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["ocs"]["meta"],
        json!({"status": "ok", "statuscode": 200, "message": "OK"})
    );
    let share = &body["ocs"]["data"];
    let id = share["id"]
        .as_str()
        .expect("OCS share ids are strings")
        .to_owned();
    assert_eq!(
        (
            share["path"].clone(),
            share["share_with"].clone(),
            share["file_target"].clone()
        ),
        (json!("/report.txt"), json!("bob"), json!("/report.txt"))
    );

    // The recipient sees it, mounted in their root.
    let (_, body) = json_of(
        send(req(
            &h,
            "bob",
            "GET",
            &format!("{SHARES}?shared_with_me=true&format=json"),
        ))
        .await,
    )
    .await;
    let received = body["ocs"]["data"].as_array().expect("list");
    assert_eq!(received.len(), 1, "{body}");
    assert_eq!(received[0]["file_target"], "/report.txt");
    let got = send(req(
        &h,
        "bob",
        "GET",
        "/remote.php/dav/files/bob/report.txt",
    ))
    .await;
    assert_eq!(within(got.text()).await.expect("body"), "quarterly");
    let (_, body) = json_of(
        send(req(
            &h,
            "alice",
            "GET",
            &format!("{SHARES}?path=/report.txt&format=json"),
        ))
        .await,
    )
    .await;
    assert_eq!(body["ocs"]["data"].as_array().map(Vec::len), Some(1));

    let one = format!("{SHARES}/{id}?format=json");
    let (status, body) =
        json_of(send(req(&h, "alice", "PUT", &one).form(&[("permissions", "3")])).await).await;
    assert_eq!(
        (status.as_u16(), body["ocs"]["data"]["permissions"].clone()),
        (200, json!(3)),
        "{body}"
    );
    let (_, body) = json_of(send(req(&h, "alice", "GET", &one)).await).await;
    assert_eq!(
        body["ocs"]["data"][0]["permissions"], 3,
        "GET returns a one-element list"
    );
    let (status, body) =
        json_of(send(req(&h, "bob", "PUT", &one).form(&[("permissions", "19")])).await).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) =
        json_of(send(req(&h, "alice", "PUT", &one).form(&[("note", "x")])).await).await;
    assert_eq!(
        (status.as_u16(), body["ocs"]["meta"]["message"].clone()),
        (400, json!("Wrong or no update parameter given"))
    );

    // Nextcloud's failures and their codes; v1 answers HTTP 200 with the code in the envelope.
    let bad = [
        ("path", "/missing.txt"),
        ("shareType", "0"),
        ("shareWith", "bob"),
    ];
    let (status, body) =
        json_of(send(req(&h, "alice", "POST", &format!("{SHARES}?format=json")).form(&bad)).await)
            .await;
    assert_eq!(
        (status.as_u16(), body["ocs"]["meta"]["message"].clone()),
        (404, json!("Wrong path, file/folder does not exist"))
    );
    let v1 = "/ocs/v1.php/apps/files_sharing/api/v1/shares?format=json";
    let (status, body) = json_of(send(req(&h, "alice", "POST", v1).form(&bad)).await).await;
    assert_eq!(
        (status.as_u16(), body["ocs"]["meta"]["statuscode"].clone()),
        (200, json!(404))
    );
    let (_, body) = json_of(send(req(&h, "alice", "GET", v1)).await).await;
    assert_eq!(body["ocs"]["meta"]["statuscode"], 100);
    let nobody = [
        ("path", "/report.txt"),
        ("shareType", "0"),
        ("shareWith", "nobody"),
    ];
    let (status, _) = json_of(
        send(req(&h, "alice", "POST", &format!("{SHARES}?format=json")).form(&nobody)).await,
    )
    .await;
    assert_eq!(status, 404);

    let (status, body) = json_of(send(req(&h, "alice", "DELETE", &one)).await).await;
    assert_eq!(
        (status.as_u16(), body["ocs"]["data"].clone()),
        (200, json!([]))
    );
    let (status, body) = json_of(send(req(&h, "alice", "GET", &one)).await).await;
    assert_eq!(
        (status.as_u16(), body["ocs"]["meta"]["message"].clone()),
        (404, json!("Wrong share ID, share does not exist"))
    );
    let (status, body) = json_of(send(h.http.get(h.url(&one))).await).await;
    assert_eq!(
        (status.as_u16(), body["ocs"]["meta"]["statuscode"].clone()),
        (401, json!(997))
    );
}

fn dav(user: &str, path: &str) -> String {
    format!("/remote.php/dav/files/{user}{path}")
}

#[tokio::test]
async fn webdav_files_conditional_writes_and_moves() {
    let h = mock().await;
    let principal = send(req(&h, "alice", "PROPFIND", "/remote.php/dav/").header("Depth", "0").body(
        r#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:current-user-principal/></d:prop></d:propfind>"#,
    ))
    .await;
    assert_eq!(principal.status(), 207);
    let xml = within(principal.text()).await.expect("xml");
    assert!(
        xml.contains("<d:href>/remote.php/dav/principals/users/alice/</d:href>"),
        "{xml}"
    );

    // Create-only PUT, then conditional overwrites.
    let file = dav("alice", "/Docs/a b.txt");
    let r = send(
        req(&h, "alice", "PUT", &file)
            .header("If-None-Match", "*")
            .body("v1"),
    )
    .await;
    assert_eq!(r.status(), 409, "the parent folder does not exist yet");
    assert_eq!(
        send(req(&h, "alice", "MKCOL", &dav("alice", "/Docs")))
            .await
            .status(),
        201
    );
    assert_eq!(
        send(req(&h, "alice", "MKCOL", &dav("alice", "/Docs")))
            .await
            .status(),
        405
    );
    assert_eq!(
        send(req(&h, "alice", "MKCOL", &dav("alice", "/x/y")))
            .await
            .status(),
        409
    );
    let r = send(
        req(&h, "alice", "PUT", &file)
            .header("If-None-Match", "*")
            .header("Content-Type", "application/octet-stream")
            .body("v1"),
    )
    .await;
    assert_eq!(r.status(), 201);
    let etag = header(&r, "etag").expect("ETag");
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(header(&r, "oc-etag").as_ref(), Some(&etag));
    assert!(header(&r, "oc-fileid").is_some());
    let r = send(
        req(&h, "alice", "PUT", &file)
            .header("If-None-Match", "*")
            .body("v2"),
    )
    .await;
    assert_eq!(r.status(), 412);
    let r = send(
        req(&h, "alice", "PUT", &file)
            .header("If-Match", "\"stale\"")
            .body("v2"),
    )
    .await;
    assert_eq!(r.status(), 412);
    let r = send(
        req(&h, "alice", "PUT", &file)
            .header("If-Match", etag.as_str())
            .body("v2"),
    )
    .await;
    assert_eq!(r.status(), 204);
    let etag = header(&r, "etag").expect("ETag");
    assert_eq!(
        send(
            req(&h, "alice", "PUT", &dav("alice", "/none.txt"))
                .header("If-Match", "*")
                .body("x")
        )
        .await
        .status(),
        412
    );

    let r = send(req(&h, "alice", "GET", &file)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "etag").as_ref(), Some(&etag));
    assert_eq!(header(&r, "content-type").as_deref(), Some("text/plain"));
    assert_eq!(header(&r, "content-length").as_deref(), Some("2"));
    assert_eq!(within(r.text()).await.expect("body"), "v2");

    // PROPFIND: Depth 0 on the file, Depth 1 on the folder; names are percent-encoded.
    let r = send(req(&h, "alice", "PROPFIND", &file).header("Depth", "0")).await;
    assert_eq!(r.status(), 207);
    let xml = within(r.text()).await.expect("xml");
    for needle in [
        "xmlns:oc=\"http://owncloud.org/ns\"",
        "<d:href>/remote.php/dav/files/alice/Docs/a%20b.txt</d:href>",
        &format!("<d:getetag>{}</d:getetag>", etag.replace('"', "&quot;")),
        "<oc:fileid>",
        "<d:getcontentlength>2</d:getcontentlength>",
        "<d:getcontenttype>text/plain</d:getcontenttype>",
        "<oc:permissions>RGDNVW</oc:permissions>",
        " GMT</d:getlastmodified>",
    ] {
        assert!(xml.contains(needle), "{needle} not in {xml}");
    }
    let r = send(req(&h, "alice", "PROPFIND", &dav("alice", "/Docs/")).header("Depth", "1")).await;
    let xml = within(r.text()).await.expect("xml");
    assert_eq!(xml.matches("<d:response>").count(), 2, "{xml}");
    assert!(
        xml.contains("<d:href>/remote.php/dav/files/alice/Docs/</d:href>")
            && xml.contains("<d:collection/>")
    );
    assert_eq!(
        send(req(&h, "alice", "PROPFIND", &dav("alice", "/nope")).header("Depth", "0"))
            .await
            .status(),
        404
    );

    // MOVE: 201 to a new name, 412 onto an existing one without overwrite, 204 with it.
    let moved = dav("alice", "/Docs/b.txt");
    let r = send(req(&h, "alice", "MOVE", &file).header("Destination", h.url(&moved))).await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        send(
            req(&h, "alice", "PUT", &file)
                .header("If-None-Match", "*")
                .body("again")
        )
        .await
        .status(),
        201
    );
    let r = send(
        req(&h, "alice", "MOVE", &file)
            .header("Destination", moved.as_str())
            .header("Overwrite", "F"),
    )
    .await;
    assert_eq!(r.status(), 412);
    let r = send(
        req(&h, "alice", "MOVE", &file)
            .header("Destination", moved.as_str())
            .header("Overwrite", "T"),
    )
    .await;
    assert_eq!(r.status(), 204);
    let r = send(
        req(&h, "alice", "MOVE", &moved).header("Destination", dav("alice", "/no/such/c.txt")),
    )
    .await;
    assert_eq!(r.status(), 409);

    // COPY makes a new file with its own id; the source stays.
    let copy = dav("alice", "/Docs/copy.txt");
    let r = send(req(&h, "alice", "COPY", &moved).header("Destination", copy.as_str())).await;
    assert_eq!(r.status(), 201);
    let r = send(req(&h, "alice", "GET", &copy)).await;
    assert_eq!(within(r.text()).await.expect("body"), "again");
    let r = send(
        req(&h, "alice", "COPY", &moved)
            .header("Destination", copy.as_str())
            .header("Overwrite", "F"),
    )
    .await;
    assert_eq!(r.status(), 412);

    // SEARCH at the DAV root, as find_by_name and search_files send it.
    let search = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<d:searchrequest xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns">
 <d:basicsearch>
  <d:select><d:prop><d:displayname/><oc:fileid/></d:prop></d:select>
  <d:from><d:scope><d:href>/files/alice/{}</d:href><d:depth>infinity</d:depth></d:scope></d:from>
  <d:where><d:like><d:prop><d:displayname/></d:prop><d:literal>%COPY%</d:literal></d:like></d:where>
  <d:orderby/>
 </d:basicsearch>
</d:searchrequest>"#,
        "Docs"
    );
    let r = send(
        req(&h, "alice", "SEARCH", "/remote.php/dav/")
            .header("Content-Type", "text/xml")
            .body(search.clone()),
    )
    .await;
    assert_eq!(r.status(), 207);
    let xml = within(r.text()).await.expect("xml");
    assert_eq!(xml.matches("<d:response>").count(), 1, "{xml}");
    assert!(
        xml.contains("<d:href>/remote.php/dav/files/alice/Docs/copy.txt</d:href>"),
        "{xml}"
    );
    let r = send(req(&h, "bob", "SEARCH", "/remote.php/dav/").body(search)).await;
    assert_eq!(r.status(), 400, "another user's scope");
    let r = send(req(&h, "alice", "SEARCH", "/remote.php/dav/").body("<nope")).await;
    assert_eq!(r.status(), 400);

    assert_eq!(
        send(req(&h, "alice", "DELETE", &format!("{moved}/")))
            .await
            .status(),
        204
    );
    assert_eq!(send(req(&h, "alice", "DELETE", &moved)).await.status(), 404);

    // Another user's files: an empty collection, nothing below it, nothing made in it.
    let r = send(req(&h, "bob", "PROPFIND", &dav("alice", "/")).header("Depth", "1")).await;
    assert_eq!(r.status(), 207);
    assert_eq!(
        within(r.text())
            .await
            .expect("xml")
            .matches("<d:response>")
            .count(),
        1
    );
    assert_eq!(
        send(req(&h, "bob", "GET", &dav("alice", "/Docs/b.txt")))
            .await
            .status(),
        404
    );
    assert_eq!(
        send(req(&h, "bob", "PUT", &dav("alice", "/x.txt")).body("x"))
            .await
            .status(),
        403
    );
    assert_eq!(
        send(req(&h, "bob", "DELETE", &dav("alice", "/Docs")))
            .await
            .status(),
        404
    );
    let r = send(h.http.request(Method::GET, h.url(&dav("alice", "/Docs")))).await;
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate").is_some());

    // Bodies are bounded.
    let big = vec![b'a'; mock_max_body() + 1];
    assert_eq!(
        send(req(&h, "alice", "PUT", &dav("alice", "/big.txt")).body(big))
            .await
            .status(),
        413
    );
}

fn mock_max_body() -> usize {
    16 * 1024 * 1024
}

#[tokio::test]
async fn a_received_share_is_mounted_in_the_recipients_root() {
    let h = mock().await;
    assert_eq!(
        send(req(&h, "alice", "MKCOL", &dav("alice", "/Team")))
            .await
            .status(),
        201
    );
    assert_eq!(
        send(req(&h, "alice", "PUT", &dav("alice", "/Team/plan.md")).body("# plan"))
            .await
            .status(),
        201
    );
    let form = [
        ("path", "/Team"),
        ("shareType", "0"),
        ("shareWith", "bob"),
        ("permissions", "1"),
    ];
    let (status, body) =
        json_of(send(req(&h, "alice", "POST", &format!("{SHARES}?format=json")).form(&form)).await)
            .await;
    assert_eq!(status, 200, "{body}");

    let r = send(req(&h, "bob", "PROPFIND", &dav("bob", "/")).header("Depth", "1")).await;
    let xml = within(r.text()).await.expect("xml");
    assert!(
        xml.contains("<d:href>/remote.php/dav/files/bob/Team/</d:href>"),
        "{xml}"
    );
    assert!(
        xml.contains("<oc:permissions>SMG</oc:permissions>"),
        "{xml}"
    );
    let r = send(req(&h, "bob", "GET", &dav("bob", "/Team/plan.md"))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type").as_deref(), Some("text/markdown"));
    let r = send(
        req(&h, "bob", "PUT", &dav("bob", "/Team/plan.md"))
            .header("If-Match", "*")
            .body("mine"),
    )
    .await;
    assert_eq!(r.status(), 403, "read-only share");
    let r = send(req(&h, "carol", "GET", &dav("carol", "/Team/plan.md"))).await;
    assert_eq!(r.status(), 404);

    // With update permission the recipient writes through the mount.
    let (_, body) =
        json_of(send(req(&h, "alice", "GET", &format!("{SHARES}?format=json"))).await).await;
    let id = body["ocs"]["data"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, _) = json_of(
        send(
            req(&h, "alice", "PUT", &format!("{SHARES}/{id}?format=json"))
                .form(&[("permissions", "3")]),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let r = send(
        req(&h, "bob", "PUT", &dav("bob", "/Team/plan.md"))
            .header("If-Match", "*")
            .body("edited"),
    )
    .await;
    assert_eq!(r.status(), 204);
    let r = send(req(&h, "alice", "GET", &dav("alice", "/Team/plan.md"))).await;
    assert_eq!(within(r.text()).await.expect("body"), "edited");
}

#[tokio::test]
async fn system_tags_on_files() {
    let h = mock().await;
    let r = send(req(&h, "alice", "PUT", &dav("alice", "/t.txt")).body("tagged")).await;
    let file_id: u64 = header(&r, "oc-fileid")
        .and_then(|id| id.get(..8).and_then(|d| d.parse().ok()))
        .expect("OC-FileId");
    let tags = "/remote.php/dav/systemtags/";
    let r = send(
        req(&h, "alice", "POST", tags)
            .json(&json!({"name": "urgent", "userVisible": true, "userAssignable": true})),
    )
    .await;
    assert_eq!(r.status(), 201);
    let location = header(&r, "content-location").expect("Content-Location");
    let tag_id = location.rsplit('/').next().expect("id").to_owned();
    let r = send(req(&h, "alice", "POST", tags).json(&json!({"name": "urgent"}))).await;
    assert_eq!(r.status(), 409);
    let r = send(req(&h, "alice", "PROPFIND", tags).header("Depth", "1")).await;
    let xml = within(r.text()).await.expect("xml");
    assert!(
        xml.contains("<oc:display-name>urgent</oc:display-name>")
            && xml.contains(&format!("<oc:id>{tag_id}</oc:id>")),
        "{xml}"
    );

    let relation = format!("/remote.php/dav/systemtags-relations/files/{file_id}/{tag_id}");
    assert_eq!(send(req(&h, "alice", "PUT", &relation)).await.status(), 201);
    assert_eq!(send(req(&h, "alice", "PUT", &relation)).await.status(), 409);
    assert_eq!(
        send(req(&h, "bob", "PUT", &relation)).await.status(),
        404,
        "bob cannot see the file"
    );
    let r = send(
        req(
            &h,
            "alice",
            "PROPFIND",
            &format!("/remote.php/dav/systemtags-relations/files/{file_id}"),
        )
        .header("Depth", "1"),
    )
    .await;
    assert_eq!(r.status(), 207);
    assert!(
        within(r.text())
            .await
            .expect("xml")
            .contains(&format!("<oc:id>{tag_id}</oc:id>"))
    );

    let filter = format!(
        r#"<?xml version="1.0"?><oc:filter-files xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop><oc:fileid/></d:prop><oc:filter-rules><oc:systemtag>{tag_id}</oc:systemtag></oc:filter-rules></oc:filter-files>"#
    );
    let r = send(req(&h, "alice", "REPORT", &dav("alice", "/")).body(filter.clone())).await;
    assert_eq!(r.status(), 207);
    let xml = within(r.text()).await.expect("xml");
    assert!(
        xml.contains("<d:href>/remote.php/dav/files/alice/t.txt</d:href>"),
        "{xml}"
    );
    let r = send(req(&h, "bob", "REPORT", &dav("bob", "/")).body(filter)).await;
    assert_eq!(
        within(r.text())
            .await
            .expect("xml")
            .matches("<d:response>")
            .count(),
        0
    );

    assert_eq!(
        send(req(&h, "alice", "DELETE", &relation)).await.status(),
        204
    );
    assert_eq!(
        send(req(&h, "alice", "DELETE", &relation)).await.status(),
        404
    );
}

#[tokio::test]
async fn comments_on_files() {
    let h = mock().await;
    let r = send(req(&h, "alice", "PUT", &dav("alice", "/c.txt")).body("x")).await;
    let file_id: u64 = header(&r, "oc-fileid")
        .and_then(|id| id.get(..8).and_then(|d| d.parse().ok()))
        .expect("OC-FileId");
    let url = format!("/remote.php/dav/comments/files/{file_id}");
    for message in ["first", "second <b>", "third"] {
        let r = send(
            req(&h, "alice", "POST", &url)
                .json(&json!({"actorType": "users", "verb": "comment", "message": message})),
        )
        .await;
        assert_eq!(r.status(), 201);
        assert!(header(&r, "content-location").is_some_and(|l| l.starts_with(&format!("{url}/"))));
    }
    let r = send(
        req(&h, "bob", "POST", &url)
            .json(&json!({"actorType": "users", "verb": "comment", "message": "x"})),
    )
    .await;
    assert_eq!(r.status(), 404, "bob cannot see the file");
    let filter = r#"<?xml version="1.0" encoding="utf-8"?><oc:filter-comments xmlns:oc="http://owncloud.org/ns"><oc:limit>2</oc:limit><oc:offset>0</oc:offset></oc:filter-comments>"#;
    let r = send(
        req(&h, "alice", "REPORT", &url)
            .header("Depth", "0")
            .body(filter),
    )
    .await;
    assert_eq!(r.status(), 207);
    let xml = within(r.text()).await.expect("xml");
    assert_eq!(xml.matches("<d:response>").count(), 2, "{xml}");
    let third = xml
        .find("<oc:message>third</oc:message>")
        .expect("newest first");
    let second = xml
        .find("<oc:message>second &lt;b&gt;</oc:message>")
        .expect("escaped");
    assert!(third < second);
    assert!(xml.contains("<oc:actorId>alice</oc:actorId>"));
}
