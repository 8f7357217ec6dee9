//! What `--login direct` needs of an IdP's pages: the title, each form's action, method,
//! fields and submit buttons, which button is the consent (`--login-consent-selector`, else
//! one that reads like consent, else any that does not read like a refusal), and a one-line
//! description of a page for errors. Just enough HTML for that, not a general parser.

use crate::settings::selector::{ConsentSelector, Element};

/// One page of the IdP, as far as a login needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    pub title: String,
    pub forms: Vec<Form>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Form {
    pub action: Option<String>,
    pub method: String,
    pub inputs: Vec<Input>,
    pub buttons: Vec<Button>,
    attrs: Attrs,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Input {
    pub name: String,
    pub value: String,
    pub kind: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Button {
    pub name: Option<String>,
    pub value: Option<String>,
    /// Visible text (for `<input type=submit>`, its value).
    pub label: String,
    /// `button` or `input`, for the selector.
    tag: &'static str,
    attrs: Attrs,
}

impl Element for Form {
    fn tag(&self) -> &str {
        "form"
    }
    fn attr(&self, name: &str) -> Option<&str> {
        attr(&self.attrs, name)
    }
}

impl Element for Button {
    fn tag(&self) -> &str {
        self.tag
    }
    fn attr(&self, name: &str) -> Option<&str> {
        attr(&self.attrs, name)
    }
}

/// Words of a button that grants consent.
const CONSENT_WORDS: [&str; 12] = [
    "allow",
    "authorize",
    "authorise",
    "approve",
    "accept",
    "grant",
    "continue",
    "consent",
    "agree",
    "confirm",
    "proceed",
    "yes",
];
/// Words of a button that refuses it (never pressed without `--login-consent-selector`).
const REFUSAL_WORDS: [&str; 8] = [
    "deny", "cancel", "reject", "decline", "refuse", "abort", "back", "no",
];

fn has_word(text: &str, words: &[&str]) -> bool {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| words.contains(&w))
}

impl Button {
    fn texts(&self) -> impl Iterator<Item = &str> {
        [
            Some(self.label.as_str()),
            self.value.as_deref(),
            self.name.as_deref(),
        ]
        .into_iter()
        .flatten()
    }

    fn reads_like_consent(&self) -> bool {
        self.texts().any(|t| has_word(t, &CONSENT_WORDS))
    }

    fn reads_like_refusal(&self) -> bool {
        self.texts().any(|t| has_word(t, &REFUSAL_WORDS))
    }
}

impl Form {
    pub fn has_field(&self, name: &str) -> bool {
        self.inputs.iter().any(|i| i.name == name)
    }

    /// Name/value pairs a browser would send: every named input except
    /// unchecked boxes and submit buttons.
    pub fn fields(&self) -> Vec<(String, String)> {
        self.inputs
            .iter()
            .filter(|i| !i.name.is_empty())
            .filter(|i| {
                !matches!(
                    i.kind.as_str(),
                    "submit" | "button" | "image" | "reset" | "checkbox" | "radio"
                )
            })
            .map(|i| (i.name.clone(), i.value.clone()))
            .collect()
    }

    fn describe(&self) -> String {
        let fields: Vec<&str> = self
            .inputs
            .iter()
            .filter(|i| !i.name.is_empty() && !matches!(i.kind.as_str(), "submit" | "image"))
            .map(|i| i.name.as_str())
            .collect();
        let buttons: Vec<String> = self
            .buttons
            .iter()
            .map(|b| format!("{:?}", b.label))
            .collect();
        let list = |v: Vec<String>| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        format!(
            "{} {} (fields: {}; buttons: {})",
            self.method.to_uppercase(),
            self.action.as_deref().unwrap_or("(this page)"),
            list(fields.into_iter().map(str::to_owned).collect()),
            list(buttons),
        )
    }
}

impl Page {
    /// The consent form and the button to press. With a selector, the first button it
    /// matches; without, the first button that reads like consent, else the first submit
    /// button that does not read like a refusal.
    pub fn consent_choice(&self, selector: Option<&ConsentSelector>) -> Option<(&Form, &Button)> {
        let buttons = || {
            self.forms
                .iter()
                .flat_map(|f| f.buttons.iter().map(move |b| (f, b)))
        };
        if let Some(s) = selector {
            return buttons().find(|(f, b)| s.matches(*f, *b));
        }
        buttons()
            .find(|(_, b)| b.reads_like_consent())
            .or_else(|| buttons().find(|(_, b)| !b.reads_like_refusal()))
    }

    /// The page in one line for an error: its title and forms.
    pub fn describe(&self) -> String {
        let title = if self.title.is_empty() {
            "untitled page".to_owned()
        } else {
            format!("page {:?}", self.title)
        };
        if self.forms.is_empty() {
            return format!("{title} with no form");
        }
        let forms: Vec<String> = self.forms.iter().map(Form::describe).collect();
        format!("{title} with {} form(s): {}", forms.len(), forms.join("; "))
    }
}

/// The title and every `<form>` of `html`, in document order.
pub fn parse_page(html: &str) -> Page {
    let mut page = Page::default();
    let mut current: Option<Form> = None;
    // An open `<select>`: its name, its first option and its selected one.
    let mut select: Option<(String, Option<String>, Option<String>)> = None;
    let mut pos = 0;
    while let Some(start) = html[pos..].find('<').map(|i| pos + i) {
        if html[start..].starts_with("<!--") {
            pos = html[start..]
                .find("-->")
                .map_or(html.len(), |i| start + i + 3);
            continue;
        }
        let Some(end) = find_tag_end(html, start) else {
            break;
        };
        let tag = &html[start + 1..end];
        pos = end + 1;
        let (name, attrs) = parse_tag(tag);
        let text_until = |close: &str| html[pos..].find(close).map_or(html.len(), |i| pos + i);
        match name.as_str() {
            "title" if page.title.is_empty() => {
                page.title = strip_tags(&html[pos..text_until("</title")]);
            }
            "form" => {
                if let Some(f) = current.take() {
                    page.forms.push(f);
                }
                current = Some(Form {
                    action: attr(&attrs, "action").map(str::to_owned),
                    method: attr(&attrs, "method").unwrap_or("get").to_ascii_lowercase(),
                    attrs,
                    ..Form::default()
                });
            }
            "/form" => {
                if let Some(f) = current.take() {
                    page.forms.push(f);
                }
            }
            "input" => {
                if let Some(f) = current.as_mut() {
                    let kind = attr(&attrs, "type").unwrap_or("text").to_ascii_lowercase();
                    let name = attr(&attrs, "name").unwrap_or("").to_owned();
                    let value = attr(&attrs, "value").unwrap_or("").to_owned();
                    if matches!(kind.as_str(), "submit" | "image") {
                        let label = match (kind.as_str(), value.is_empty()) {
                            (_, false) => value.clone(),
                            ("image", true) => attr(&attrs, "alt").unwrap_or("Submit").to_owned(),
                            _ => "Submit".to_owned(),
                        };
                        f.buttons.push(Button {
                            name: (!name.is_empty()).then(|| name.clone()),
                            value: Some(value.clone()),
                            label,
                            tag: "input",
                            attrs: attrs.clone(),
                        });
                    }
                    if matches!(kind.as_str(), "checkbox" | "radio") {
                        // A checked box is sent as a browser would send it.
                        if attr(&attrs, "checked").is_some() && !name.is_empty() {
                            let value = attr(&attrs, "value").unwrap_or("on").to_owned();
                            f.inputs.push(Input {
                                name,
                                value,
                                kind: "checked".into(),
                            });
                        }
                        continue;
                    }
                    f.inputs.push(Input { name, value, kind });
                }
            }
            "button" => {
                if let Some(f) = current.as_mut() {
                    let kind = attr(&attrs, "type")
                        .unwrap_or("submit")
                        .to_ascii_lowercase();
                    let label = strip_tags(&html[pos..text_until("</button")]);
                    if kind == "submit" {
                        f.buttons.push(Button {
                            name: attr(&attrs, "name").map(str::to_owned),
                            value: attr(&attrs, "value").map(str::to_owned),
                            label,
                            tag: "button",
                            attrs,
                        });
                    }
                }
            }
            "textarea" => {
                if let Some(f) = current.as_mut() {
                    f.inputs.push(Input {
                        name: attr(&attrs, "name").unwrap_or("").to_owned(),
                        value: decode_entities(&html[pos..text_until("</textarea")]),
                        kind: "textarea".into(),
                    });
                }
            }
            "select" if current.is_some() => {
                select = Some((attr(&attrs, "name").unwrap_or("").to_owned(), None, None));
            }
            "option" => {
                if let Some((_, first, selected)) = select.as_mut() {
                    let value = attr(&attrs, "value").map(str::to_owned).unwrap_or_else(|| {
                        let end = html[pos..].find('<').map_or(html.len(), |i| pos + i);
                        strip_tags(&html[pos..end])
                    });
                    if attr(&attrs, "selected").is_some() && selected.is_none() {
                        *selected = Some(value.clone());
                    }
                    first.get_or_insert(value);
                }
            }
            "/select" => {
                if let (Some((name, first, selected)), Some(f)) = (select.take(), current.as_mut())
                    && let Some(value) = selected.or(first)
                {
                    f.inputs.push(Input {
                        name,
                        value,
                        kind: "select".into(),
                    });
                }
            }
            "script" | "style" => {
                pos = text_until(&format!("</{name}"));
            }
            _ => {}
        }
    }
    if let Some(f) = current {
        page.forms.push(f);
    }
    page
}

/// Calls `f` with the name and attributes of every tag of `html` in document order, outside
/// comments and the insides of scripts and styles.
pub(super) fn each_tag(html: &str, mut f: impl FnMut(&str, &Attrs)) {
    let mut pos = 0;
    while let Some(start) = html[pos..].find('<').map(|i| pos + i) {
        if html[start..].starts_with("<!--") {
            pos = html[start..]
                .find("-->")
                .map_or(html.len(), |i| start + i + 3);
            continue;
        }
        let Some(end) = find_tag_end(html, start) else {
            break;
        };
        let (name, attrs) = parse_tag(&html[start + 1..end]);
        pos = end + 1;
        if matches!(name.as_str(), "script" | "style") {
            let close = format!("</{name}");
            pos = html[pos..].find(&close).map_or(html.len(), |i| pos + i);
        }
        f(&name, &attrs);
    }
}

/// The `>` closing the tag at `start`, skipping quoted attribute values.
fn find_tag_end(html: &str, start: usize) -> Option<usize> {
    let mut quote: Option<u8> = None;
    for (i, &b) in html.as_bytes()[start..].iter().enumerate() {
        match (quote, b) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b'>') => return Some(start + i),
            _ => {}
        }
    }
    None
}

pub(super) type Attrs = Vec<(String, String)>;

pub(super) fn attr<'a>(attrs: &'a Attrs, name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn parse_tag(tag: &str) -> (String, Attrs) {
    let tag = tag.trim_end_matches('/');
    let name_end = tag.find(|c: char| c.is_whitespace()).unwrap_or(tag.len());
    let name = tag[..name_end].to_ascii_lowercase();
    let mut attrs = Vec::new();
    let rest = &tag.as_bytes()[name_end..];
    let mut i = 0;
    let text = &tag[name_end..];
    while i < rest.len() {
        while i < rest.len() && (rest[i].is_ascii_whitespace() || rest[i] == b'/') {
            i += 1;
        }
        let k_start = i;
        while i < rest.len() && !rest[i].is_ascii_whitespace() && rest[i] != b'=' {
            i += 1;
        }
        let key = text[k_start..i].to_ascii_lowercase();
        while i < rest.len() && rest[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < rest.len() && rest[i] == b'=' {
            i += 1;
            while i < rest.len() && rest[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < rest.len() && (rest[i] == b'"' || rest[i] == b'\'') {
                let q = rest[i];
                i += 1;
                let v_start = i;
                while i < rest.len() && rest[i] != q {
                    i += 1;
                }
                value = decode_entities(&text[v_start..i]);
                i += 1;
            } else {
                let v_start = i;
                while i < rest.len() && !rest[i].is_ascii_whitespace() {
                    i += 1;
                }
                value = decode_entities(&text[v_start..i]);
            }
        }
        if !key.is_empty() {
            attrs.push((key, value));
        }
    }
    (name, attrs)
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    decode_entities(out.trim())
}

pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(semi) = rest[..rest.len().min(12)].find(';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_form() {
        let html = r#"<html><head><title>Log in - IdP</title></head><body><!-- <form action="/no"> -->
            <form method="POST" action="/login?x=1&amp;y=2">
              <input type="hidden" name="csrf_token" value="abc&quot;d">
              <input name=user type=text>
              <input type="password" name="password" />
              <input type="checkbox" name="remember" value="1">
              <input type="checkbox" name="terms" value="yes" checked>
              <select name="lang"><option value="en">English</option><option value="de" selected>Deutsch</option></select>
              <button type="submit">Log in</button>
            </form></body></html>"#;
        let page = parse_page(html);
        assert_eq!(page.title, "Log in - IdP");
        assert_eq!(page.forms.len(), 1);
        let f = &page.forms[0];
        assert_eq!(f.action.as_deref(), Some("/login?x=1&y=2"));
        assert_eq!(f.method, "post");
        assert!(f.has_field("password"));
        let expected: Vec<(String, String)> = [
            ("csrf_token", "abc\"d"),
            ("user", ""),
            ("password", ""),
            ("terms", "yes"),
            ("lang", "de"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        assert_eq!(f.fields(), expected);
    }

    /// Which button a consent page gets pressed: (page, selector, expected label).
    #[test]
    fn consent_choices() {
        let check = |html: &str, css: Option<&str>, expected: Option<&str>| {
            let sel = css.map(|c| ConsentSelector::parse(c).unwrap());
            let page = parse_page(html);
            let got = page
                .consent_choice(sel.as_ref())
                .map(|(_, b)| b.label.clone());
            assert_eq!(got.as_deref(), expected, "{html} with {css:?}");
        };
        let allow_deny = r#"<form method="post" id="consent"><input type="hidden" name="t" value="1">
            <button type="submit" name="decision" value="deny">Deny</button>
            <button type="submit" name="decision" value="allow"><b>Allow</b> access</button></form>"#;
        check(allow_deny, None, Some("Allow access"));
        check(allow_deny, Some("button[value=deny]"), Some("Deny"));
        check(allow_deny, Some("form#consent button"), Some("Deny"));
        check(allow_deny, Some("#nothing"), None);
        check(
            r#"<form method="post"><button type="submit">Continue</button></form>"#,
            None,
            Some("Continue"),
        );
        check(
            r#"<form method="post"><button class="primary">Weiter</button><button>Cancel</button></form>"#,
            None,
            Some("Weiter"),
        );
        check(
            r#"<form><button>Cancel</button></form><form method="post"><input type="submit"></form>"#,
            None,
            Some("Submit"),
        );
        check(
            r#"<form method="post"><input type="submit" name="approve" value="Authorize"></form>"#,
            Some("input[name=approve]"),
            Some("Authorize"),
        );
        check(r#"<form><button>No thanks</button></form>"#, None, None);
        check(r#"<p>Nothing here</p>"#, None, None);
    }

    #[test]
    fn describes_pages() {
        let page = parse_page(
            r#"<title>Consent</title><form method="post" action="/c"><input type="hidden" name="t"><button>Go on</button></form>"#,
        );
        assert_eq!(
            page.describe(),
            r#"page "Consent" with 1 form(s): POST /c (fields: t; buttons: "Go on")"#
        );
        assert_eq!(
            parse_page("<p>x</p>").describe(),
            "untitled page with no form"
        );
    }
}
