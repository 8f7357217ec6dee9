//! Just enough HTML to post an IdP's login and consent forms: forms with
//! their action, method, inputs and submit buttons. Not a general parser.

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Form {
    pub action: Option<String>,
    pub method: String,
    pub inputs: Vec<Input>,
    pub buttons: Vec<Button>,
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
}

impl Form {
    pub fn has_field(&self, name: &str) -> bool {
        self.inputs.iter().any(|i| i.name == name)
    }

    /// The submit button that grants consent, if any looks like one.
    pub fn allow_button(&self) -> Option<&Button> {
        const WORDS: [&str; 6] = [
            "allow",
            "authorize",
            "authorise",
            "approve",
            "accept",
            "grant",
        ];
        let looks = |s: &str| {
            let s = s.to_ascii_lowercase();
            WORDS.iter().any(|w| s.contains(w)) || s == "yes"
        };
        self.buttons.iter().find(|b| {
            looks(&b.label)
                || b.value.as_deref().is_some_and(looks)
                || b.name.as_deref().is_some_and(looks)
        })
    }

    /// Name/value pairs a browser would send: every named input except
    /// unchecked boxes and other submit buttons.
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
}

/// Every `<form>` of `html`, in document order.
pub fn parse_forms(html: &str) -> Vec<Form> {
    let mut forms = Vec::new();
    let mut current: Option<Form> = None;
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
        match name.as_str() {
            "form" => {
                if let Some(f) = current.take() {
                    forms.push(f);
                }
                current = Some(Form {
                    action: attr(&attrs, "action").map(str::to_owned),
                    method: attr(&attrs, "method").unwrap_or("get").to_ascii_lowercase(),
                    ..Form::default()
                });
            }
            "/form" => {
                if let Some(f) = current.take() {
                    forms.push(f);
                }
            }
            "input" => {
                if let Some(f) = current.as_mut() {
                    let kind = attr(&attrs, "type").unwrap_or("text").to_ascii_lowercase();
                    let name = attr(&attrs, "name").unwrap_or("").to_owned();
                    let value = attr(&attrs, "value").unwrap_or("").to_owned();
                    if kind == "submit" {
                        f.buttons.push(Button {
                            name: (!name.is_empty()).then(|| name.clone()),
                            value: Some(value.clone()),
                            label: value.clone(),
                        });
                    }
                    f.inputs.push(Input { name, value, kind });
                }
            }
            "button" => {
                if let Some(f) = current.as_mut() {
                    let kind = attr(&attrs, "type")
                        .unwrap_or("submit")
                        .to_ascii_lowercase();
                    let text_end = html[pos..].find("</button").map_or(html.len(), |i| pos + i);
                    let label = strip_tags(&html[pos..text_end]);
                    if kind == "submit" {
                        f.buttons.push(Button {
                            name: attr(&attrs, "name").map(str::to_owned),
                            value: attr(&attrs, "value").map(str::to_owned),
                            label,
                        });
                    }
                }
            }
            "textarea" => {
                if let Some(f) = current.as_mut() {
                    let text_end = html[pos..]
                        .find("</textarea")
                        .map_or(html.len(), |i| pos + i);
                    f.inputs.push(Input {
                        name: attr(&attrs, "name").unwrap_or("").to_owned(),
                        value: decode_entities(&html[pos..text_end]),
                        kind: "textarea".into(),
                    });
                }
            }
            "script" | "style" => {
                let close = format!("</{name}");
                pos = html[pos..].find(&close).map_or(html.len(), |i| pos + i);
            }
            _ => {}
        }
    }
    if let Some(f) = current {
        forms.push(f);
    }
    forms
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

type Attrs = Vec<(String, String)>;

fn attr<'a>(attrs: &'a Attrs, name: &str) -> Option<&'a str> {
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
        let html = r#"<html><body><!-- <form action="/no"> -->
            <form method="POST" action="/login?x=1&amp;y=2">
              <input type="hidden" name="csrf_token" value="abc&quot;d">
              <input name=user type=text>
              <input type="password" name="password" />
              <input type="checkbox" name="remember" value="1">
              <button type="submit">Log in</button>
            </form></body></html>"#;
        let forms = parse_forms(html);
        assert_eq!(forms.len(), 1);
        let f = &forms[0];
        assert_eq!(f.action.as_deref(), Some("/login?x=1&y=2"));
        assert_eq!(f.method, "post");
        assert!(f.has_field("password"));
        assert_eq!(
            f.fields(),
            vec![
                ("csrf_token".into(), "abc\"d".into()),
                ("user".into(), String::new()),
                ("password".into(), String::new())
            ]
        );
        assert!(f.allow_button().is_none());
    }

    #[test]
    fn consent_form() {
        let html = r#"<form method="post"><input type="hidden" name="t" value="1">
            <button type="submit" name="decision" value="deny">Deny</button>
            <button type="submit" name="decision" value="allow"><b>Allow</b> access</button></form>"#;
        let f = &parse_forms(html)[0];
        let b = f.allow_button().unwrap();
        assert_eq!(b.value.as_deref(), Some("allow"));
        assert_eq!(b.label, "Allow access");
        assert_eq!(f.action, None);

        let html =
            r#"<form method="post"><input type="submit" name="approve" value="Authorize"></form>"#;
        let f = &parse_forms(html)[0];
        assert_eq!(f.allow_button().unwrap().name.as_deref(), Some("approve"));
        assert!(f.fields().is_empty());
    }
}
