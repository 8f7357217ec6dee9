//! A login's cookies, kept per origin as a browser keeps them: a login that starts at an MCP
//! server's own `/oauth/authorize`, goes through Nextcloud on another origin and comes back to
//! the MCP server's callback sends each origin only its own cookies. Host-only (no `Domain`),
//! every path (no `Path`), expiry by `Max-Age` or a past `Expires`; bounded in count. Values
//! are session ids: `Debug` shows names only.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Most cookies one login keeps across all origins; past it the oldest go.
const MAX_COOKIES: usize = 64;

#[derive(Default)]
pub(crate) struct CookieJar {
    /// (origin, name, value), oldest first.
    cookies: Vec<(String, String, String)>,
}

impl fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.cookies.iter().map(|(o, n, _)| format!("{o} {n}")))
            .finish()
    }
}

fn origin(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

impl CookieJar {
    /// Takes the `Set-Cookie` headers of a response to a request for `url`.
    pub fn absorb(&mut self, url: &url::Url, headers: &reqwest::header::HeaderMap) {
        let origin = origin(url);
        for v in headers.get_all(reqwest::header::SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            self.set(&origin, v, SystemTime::now());
        }
    }

    fn set(&mut self, origin: &str, set_cookie: &str, now: SystemTime) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() {
            return;
        }
        let expired = parts.any(|attr| {
            let Some((k, v)) = attr.split_once('=') else {
                return false;
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "max-age" => v.trim().parse::<i64>().is_ok_and(|s| s <= 0),
                "expires" => http_date(v.trim()).is_some_and(|t| t <= now),
                _ => false,
            }
        });
        self.cookies.retain(|(o, n, _)| !(o == origin && n == name));
        if value.is_empty() || expired {
            return;
        }
        if self.cookies.len() >= MAX_COOKIES {
            self.cookies.remove(0);
        }
        self.cookies
            .push((origin.to_owned(), name.to_owned(), value.to_owned()));
    }

    /// The `Cookie` header for a request to `url`, if it has cookies.
    pub fn header_for(&self, url: &url::Url) -> Option<String> {
        let origin = origin(url);
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .filter(|(o, _, _)| *o == origin)
            .map(|(_, n, v)| format!("{n}={v}"))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }
}

/// An `Expires` date as servers write it (`Thu, 01 Jan 1970 00:00:00 GMT`, also with dashes
/// as PHP writes it: `Thursday, 01-Jan-1970 00:00:01 GMT`).
fn http_date(s: &str) -> Option<SystemTime> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let mut day = None;
    let mut month = None;
    let mut year = None;
    let mut time = None;
    for token in s.split(|c: char| c.is_whitespace() || c == '-' || c == ',') {
        let lower = token.to_ascii_lowercase();
        if token.contains(':') {
            let hms: Vec<u64> = token.split(':').filter_map(|p| p.parse().ok()).collect();
            if let [h, m, s] = hms[..] {
                time = Some(h * 3600 + m * 60 + s);
            }
        } else if let Some(i) = MONTHS.iter().position(|m| lower.starts_with(m)) {
            month = Some(i as i64 + 1);
        } else if let Ok(n) = token.parse::<i64>() {
            match (day, token.len()) {
                (None, 1 | 2) => day = Some(n),
                (_, 4) => year = Some(n),
                _ => {}
            }
        }
    }
    let days = days_from_civil(year?, month?, day?);
    let secs = days * 86_400 + time? as i64;
    Some(if secs >= 0 {
        UNIX_EPOCH + std::time::Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_stay_with_their_origin_and_expire() {
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let nc: url::Url = "http://nc.test:8080/index.php/login".parse().unwrap();
        let mcp: url::Url = "http://mcp.test/oauth/callback".parse().unwrap();
        let mut jar = CookieJar::default();
        let o = origin(&nc);
        jar.set(&o, "oc_session=abc; path=/; HttpOnly", now);
        jar.set(
            &o,
            "nc_sameSiteCookiestrict=true; path=/; samesite=strict",
            now,
        );
        jar.set(&origin(&mcp), "mcp=1", now);
        assert_eq!(
            jar.header_for(&nc).as_deref(),
            Some("oc_session=abc; nc_sameSiteCookiestrict=true")
        );
        assert_eq!(jar.header_for(&mcp).as_deref(), Some("mcp=1"));
        // A new session id replaces the old one; expired and emptied cookies go.
        jar.set(&o, "oc_session=def; path=/", now);
        jar.set(
            &o,
            "nc_sameSiteCookiestrict=deleted; expires=Thursday, 01-Jan-1970 00:00:01 GMT; Max-Age=0",
            now,
        );
        assert_eq!(jar.header_for(&nc).as_deref(), Some("oc_session=def"));
        jar.set(
            &o,
            "oc_session=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            now,
        );
        jar.set(&o, "later=1; Expires=Wed, 21 Oct 2099 07:28:00 GMT", now);
        assert_eq!(jar.header_for(&nc).as_deref(), Some("later=1"));
        let other: url::Url = "http://nc.test:8081/".parse().unwrap();
        assert_eq!(jar.header_for(&other), None);
        for i in 0..MAX_COOKIES + 5 {
            jar.set(&o, &format!("c{i}=v"), now);
        }
        assert_eq!(jar.cookies.len(), MAX_COOKIES);
        assert!(!format!("{jar:?}").contains("=v"));
    }

    #[test]
    fn http_dates() {
        let check = |s: &str, secs: Option<u64>| {
            assert_eq!(
                http_date(s),
                secs.map(|s| UNIX_EPOCH + std::time::Duration::from_secs(s)),
                "{s}"
            );
        };
        check("Thu, 01 Jan 1970 00:00:00 GMT", Some(0));
        check("Thursday, 01-Jan-1970 00:00:01 GMT", Some(1));
        check("Wed, 21 Oct 2015 07:28:00 GMT", Some(1_445_412_480));
        check("Sun, 29 Feb 2004 12:00:00 GMT", Some(1_078_056_000));
        check("not a date", None);
    }
}
