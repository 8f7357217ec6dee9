//! `Secret`: a string that never shows itself in `Debug` or `Display`.
//!
//! Access tokens, refresh tokens, passwords and the cluster secret travel in
//! this type so a stray `{:?}` in a log line cannot leak them.

use std::fmt;

use subtle::ConstantTimeEq;

#[derive(Clone, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares in constant time, so a remote peer cannot learn the secret
    /// byte by byte from response timings.
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// Words after which a value is a secret (`access_token=…`,
/// `"password": "…"`, `Bearer …`), matched without regard to case.
const SECRET_WORDS: [&str; 8] = [
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "password",
    "secret",
    "token",
    "bearer",
];

/// Masks what looks like a credential in text a remote peer sent (an error
/// body, a tool's message): the value after a secret word and `:`/`=` (or,
/// for `Bearer`, a space), and any JWT (`eyJ….….…`). Used on every message a
/// report keeps, since a server may echo a request's token back.
pub fn redact_secrets(text: &str) -> String {
    let bytes = text.as_bytes();
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if let Some(end) = jwt_end(bytes, i) {
            out.push_str("***");
            i = end;
            continue;
        }
        if let Some(value_at) = secret_value_at(&lower, i) {
            let end = value_end(bytes, value_at);
            if end > value_at {
                out.push_str(&text[i..value_at]);
                out.push_str("***");
                i = end;
                continue;
            }
        }
        // Copy one whole character (the scan itself is ASCII).
        let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&text[i..i + ch_len]);
        i += ch_len;
    }
    out
}

/// Where the secret value starts when a secret word begins at `i`.
fn secret_value_at(lower: &str, i: usize) -> Option<usize> {
    let rest = &lower[i..];
    let bytes = lower.as_bytes();
    // A word boundary before (so `notoken=` is not `token=`, but `_token` in
    // `access_token` is matched by its own longer word first).
    if i > 0 && bytes[i - 1].is_ascii_alphanumeric() {
        return None;
    }
    let word = SECRET_WORDS.iter().find(|w| rest.starts_with(**w))?;
    let mut j = i + word.len();
    let mut assigned = false;
    let mut spaced = false;
    while j < bytes.len() {
        match bytes[j] {
            b':' | b'=' => assigned = true,
            b' ' | b'\t' => spaced = true,
            b'"' | b'\'' | b'\\' => {}
            _ => break,
        }
        j += 1;
    }
    let bearer = *word == "bearer" && spaced;
    if !(assigned || bearer) {
        return None;
    }
    // `Authorization: Bearer x` and `token_type: Bearer`: mask after `Bearer`.
    if lower[j..].starts_with("bearer ") {
        return secret_value_at(lower, j);
    }
    Some(j)
}

/// The end of a value: up to a quote, space, separator or bracket.
fn value_end(bytes: &[u8], from: usize) -> usize {
    let mut j = from;
    while j < bytes.len()
        && !matches!(
            bytes[j],
            b'"' | b'\''
                | b' '
                | b'\t'
                | b'\n'
                | b'\r'
                | b','
                | b';'
                | b'&'
                | b'}'
                | b')'
                | b']'
                | b'\\'
        )
    {
        j += 1;
    }
    j
}

/// The end of a JWT starting at `i`: `eyJ` and two dots within one run of
/// base64url characters.
fn jwt_end(bytes: &[u8], i: usize) -> Option<usize> {
    if !bytes[i..].starts_with(b"eyJ") || (i > 0 && is_b64url(bytes[i - 1])) {
        return None;
    }
    let mut j = i;
    let mut dots = 0;
    while j < bytes.len() && (is_b64url(bytes[j]) || bytes[j] == b'.') {
        dots += usize::from(bytes[j] == b'.');
        j += 1;
    }
    (dots >= 2).then_some(j)
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'='
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_peer_text_are_masked() {
        let check = |input: &str, expected: &str| {
            assert_eq!(redact_secrets(input), expected, "{input}");
        };
        check("HTTP 503: busy", "HTTP 503: busy");
        check(
            "the access token cannot be sent",
            "the access token cannot be sent",
        );
        check(
            r#"{"access_token":"abc.def","token_type":"Bearer"}"#,
            r#"{"access_token":"***","token_type":"Bearer"}"#,
        );
        check("password=hunter2&user=ann", "password=***&user=ann");
        check(
            "Authorization: Bearer s3cr3t, next",
            "Authorization: Bearer ***, next",
        );
        check("refresh_token: 'r1' ok", "refresh_token: '***' ok");
        check(
            "got eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl back",
            "got *** back",
        );
        check("notoken=visible", "notoken=visible");
        check("Passwort ünïcode token=x", "Passwort ünïcode token=***");
        check(r#"{\"password\":\"pw\"}"#, r#"{\"password\":\"***\"}"#);
    }

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{s}"), "***");
        assert!(s.matches("hunter2"));
        assert!(!s.matches("hunter3"));
        assert!(!s.matches("hunter"));
    }
}
