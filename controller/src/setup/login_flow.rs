//! Visiting a Nextcloud Login Flow v2 URL as its user, over plain HTTP, as
//! a browser does: the flow's start page, Nextcloud's login page (rendered
//! by script: no form in the HTML, the request token in the page head, the
//! login posted to `/index.php/login`), then "Grant access" (its action URL
//! and state token in the page's initial state). Cookies are kept per
//! origin; redirects are followed by hand and bounded. Every error names
//! the page and what was looked for, never the password.

use common::Secret;
use serde_json::Value;

use crate::login::cookies::CookieJar;
use crate::login::nextcloud::{self, LoginPage, NcPage};

/// Redirects followed from one request at most.
const MAX_HOPS: usize = 20;
/// The largest page read.
const MAX_PAGE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum VisitError {
    #[error("{page}: {what}")]
    Page { page: String, what: String },
    /// Nextcloud's login refused the credentials (the message names the page).
    #[error("{0}")]
    Refused(String),
}

fn at(url: &str, what: impl Into<String>) -> VisitError {
    VisitError::Page {
        page: shown(url),
        what: what.into(),
    }
}

/// A URL as shown in errors: no query (Login Flow tokens live there).
fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "(an invalid URL)".into(),
    }
}

struct Page {
    url: String,
    status: u16,
    location: Option<String>,
    body: String,
}

/// A browser's worth of state for one visit: the login's cookie jar,
/// per origin.
struct Browser {
    http: reqwest::Client,
    jar: CookieJar,
}

fn parse(url: &str) -> Result<url::Url, VisitError> {
    url::Url::parse(url).map_err(|e| at(url, format!("not a URL: {e}")))
}

impl Browser {
    async fn send(&mut self, url: &str, req: reqwest::RequestBuilder) -> Result<Page, VisitError> {
        let parsed = parse(url)?;
        let req = match self.jar.header_for(&parsed) {
            Some(cookies) => req.header(reqwest::header::COOKIE, cookies),
            None => req,
        };
        let mut resp = req
            .send()
            .await
            .map_err(|e| at(url, e.without_url().to_string()))?;
        self.jar.absorb(&parsed, resp.headers());
        let status = resp.status().as_u16();
        let location = match resp.headers().get("location").and_then(|l| l.to_str().ok()) {
            Some(l) => Some(
                url::Url::parse(url)
                    .and_then(|base| base.join(l))
                    .map(|u| u.to_string())
                    .map_err(|e| at(url, format!("a redirect to an invalid URL: {e}")))?,
            ),
            None => None,
        };
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| at(url, e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_PAGE {
                return Err(at(url, format!("a page larger than {MAX_PAGE} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Page {
            url: url.to_owned(),
            status,
            location,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    async fn follow(&mut self, url: &str) -> Result<Page, VisitError> {
        let mut url = url.to_owned();
        for _ in 0..MAX_HOPS {
            let req = self.http.get(&url);
            let page = self.send(&url, req).await?;
            match &page.location {
                Some(next) if (300..400).contains(&page.status) => url = next.clone(),
                _ => return Ok(page),
            }
        }
        Err(at(&url, format!("more than {MAX_HOPS} redirects")))
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Result<Page, VisitError> {
        let req = self.http.post(url).form(form);
        self.send(url, req).await
    }
}

/// The request token Nextcloud puts in `<head data-requesttoken="…">`.
fn request_token(page: &Page) -> Result<String, VisitError> {
    let marker = "data-requesttoken=\"";
    let start = page.body.find(marker).ok_or_else(|| {
        at(
            &page.url,
            "no request token (data-requesttoken) in the page head: not a Nextcloud page",
        )
    })? + marker.len();
    let end = page.body[start..]
        .find('"')
        .ok_or_else(|| at(&page.url, "an unterminated request token"))?;
    Ok(page.body[start..start + end].to_owned())
}

/// Nextcloud's initial state `app`/`key` (base64 JSON in a hidden input).
fn initial_state(page: &Page, app: &str, key: &str) -> Result<Value, VisitError> {
    let marker = format!("id=\"initial-state-{app}-{key}\" value=\"");
    let start = page.body.find(&marker).ok_or_else(|| {
        at(
            &page.url,
            format!("no initial state {app}/{key} in the page"),
        )
    })? + marker.len();
    let end = page.body[start..].find('"').ok_or_else(|| {
        at(
            &page.url,
            format!("an unterminated initial state {app}/{key}"),
        )
    })?;
    nextcloud::initial_state(&page.body[start..start + end]).ok_or_else(|| {
        at(
            &page.url,
            format!("initial state {app}/{key} is not base64 JSON"),
        )
    })
}

/// Nextcloud's login page, read as `--login direct` reads it.
fn login_page(page: &Page) -> Option<LoginPage> {
    if page.status != 200 || !url::Url::parse(&page.url).is_ok_and(|u| u.path().ends_with("/login"))
    {
        return None;
    }
    match nextcloud::read(&page.body) {
        Some(NcPage::Login(login)) => Some(login),
        _ => None,
    }
}

/// Logs into Nextcloud's login page `page` as `user` (the post its script
/// makes, built by the login module); the page it leads to.
async fn log_in(
    b: &mut Browser,
    page: &Page,
    login: &LoginPage,
    user: &str,
    password: &Secret,
) -> Result<Page, VisitError> {
    let post = login.submission(&parse(&page.url)?, user, password);
    let form: Vec<(&str, &str)> = post
        .fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let a = b.post(post.url.as_str(), &form).await?;
    let next = match (&a.location, a.status) {
        (Some(next), 300..=399) => next.clone(),
        _ => {
            return Err(at(
                post.url.as_str(),
                format!("the login answered HTTP {} instead of a redirect", a.status),
            ));
        }
    };
    let page = b.follow(&next).await?;
    if let Some(again) = login_page(&page) {
        return Err(VisitError::Refused(
            again.refusal(&shown(post.url.as_str()), user),
        ));
    }
    Ok(page)
}

/// Opens `login_url` (a Login Flow v2 URL), logs in as `user` and grants
/// access, as the user would in a browser.
pub async fn grant(
    http: &reqwest::Client,
    login_url: &str,
    user: &str,
    password: &Secret,
) -> Result<(), VisitError> {
    let mut b = Browser {
        http: http.clone(),
        jar: CookieJar::default(),
    };
    let mut page = b.follow(login_url).await?;
    if page.status != 200 {
        return Err(at(
            &page.url,
            format!("HTTP {} opening the login URL (it works once)", page.status),
        ));
    }
    // The flow's start page sends the visitor on to the grant page.
    if let Ok(auth) = initial_state(&page, "core", "loginFlowAuth") {
        let next = auth["loginRedirectUrl"]
            .as_str()
            .ok_or_else(|| at(&page.url, "no loginRedirectUrl in the flow's start page"))?
            .to_owned();
        let next = url::Url::parse(&page.url)
            .and_then(|u| u.join(&next))
            .map_err(|e| at(&page.url, format!("an invalid loginRedirectUrl: {e}")))?;
        page = b.follow(next.as_str()).await?;
    }
    if let Some(login) = login_page(&page) {
        page = log_in(&mut b, &page, &login, user, password).await?;
    }
    let g = initial_state(&page, "core", "loginFlowGrant").map_err(|_| {
        at(
            &page.url,
            "no \"Grant access\" step (initial state core/loginFlowGrant) after the login",
        )
    })?;
    let action = g["actionUrl"]
        .as_str()
        .ok_or_else(|| at(&page.url, "no actionUrl in the grant step"))?;
    let action = url::Url::parse(&page.url)
        .and_then(|u| u.join(action))
        .map_err(|e| at(&page.url, format!("an invalid actionUrl: {e}")))?;
    let token = request_token(&page)?;
    let done = b
        .post(
            action.as_str(),
            &[
                ("stateToken", g["stateToken"].as_str().unwrap_or("")),
                ("requesttoken", &token),
            ],
        )
        .await?;
    let done = match (&done.location, done.status) {
        (Some(next), 300..=399) => b.follow(next).await?,
        _ => done,
    };
    if done.status != 200 {
        return Err(at(
            &done.url,
            format!("\"Grant access\" answered HTTP {}", done.status),
        ));
    }
    Ok(())
}
