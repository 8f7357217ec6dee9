//! `--login-consent-selector` in direct mode: the part of CSS that names a button without a
//! browser — a compound of tag, `#id`, `.class`, `[attr]` and `[attr=value]`, optionally after
//! one compound for its form (`form#consent button[value=allow]`), in a comma-separated list.
//! Anything else is refused when the run starts, naming `--login browser`, which takes any CSS.

/// One element as the selector sees it: its tag and attributes.
pub trait Element {
    fn tag(&self) -> &str;
    fn attr(&self, name: &str) -> Option<&str>;
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Compound {
    tag: Option<String>,
    id: Option<String>,
    classes: Vec<String>,
    /// (name, required value)
    attrs: Vec<(String, Option<String>)>,
}

impl Compound {
    fn matches(&self, e: &dyn Element) -> bool {
        self.tag
            .as_deref()
            .is_none_or(|t| t.eq_ignore_ascii_case(e.tag()))
            && self.id.as_deref().is_none_or(|id| e.attr("id") == Some(id))
            && self.classes.iter().all(|c| {
                e.attr("class")
                    .is_some_and(|cl| cl.split_ascii_whitespace().any(|w| w == c))
            })
            && self.attrs.iter().all(|(name, value)| match value {
                None => e.attr(name).is_some(),
                Some(v) => e.attr(name) == Some(v.as_str()),
            })
    }
}

/// One selector of the list: the button's compound, and maybe its form's.
#[derive(Debug, Clone, PartialEq)]
struct Complex {
    form: Option<Compound>,
    button: Compound,
}

/// A parsed `--login-consent-selector`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentSelector {
    source: String,
    list: Vec<Complex>,
}

impl ConsentSelector {
    pub fn parse(source: &str) -> Result<ConsentSelector, String> {
        let refuse = |why: &str| {
            format!(
                "--login-consent-selector {source:?}: {why}; --login direct understands tag, #id, .class, [attr] and [attr=value], optionally after one selector of the form (e.g. \"form#consent button[value=allow]\"); --login browser takes any CSS selector"
            )
        };
        let mut list = Vec::new();
        for part in source.split(',') {
            let compounds: Vec<&str> = part.split_ascii_whitespace().collect();
            let parsed: Vec<Compound> = compounds
                .iter()
                .map(|c| compound(c).map_err(|e| refuse(&e)))
                .collect::<Result<_, _>>()?;
            let complex = match parsed.as_slice() {
                [button] => Complex {
                    form: None,
                    button: button.clone(),
                },
                [form, button] => Complex {
                    form: Some(form.clone()),
                    button: button.clone(),
                },
                [] => return Err(refuse("an empty selector")),
                _ => return Err(refuse("more than a form and a button")),
            };
            list.push(complex);
        }
        Ok(ConsentSelector {
            source: source.to_owned(),
            list,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `button`, inside `form`, is what the selector names.
    pub fn matches(&self, form: &dyn Element, button: &dyn Element) -> bool {
        self.list
            .iter()
            .any(|c| c.button.matches(button) && c.form.as_ref().is_none_or(|f| f.matches(form)))
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// `tag#id.class[attr=value]…`
fn compound(text: &str) -> Result<Compound, String> {
    let mut out = Compound::default();
    let mut rest = text;
    let ident = |s: &str| -> (String, usize) {
        let end = s.find(|c: char| !is_ident(c)).unwrap_or(s.len());
        (s[..end].to_owned(), end)
    };
    if let Some(r) = rest.strip_prefix('*') {
        rest = r;
    } else {
        let (tag, end) = ident(rest);
        if end > 0 {
            out.tag = Some(tag);
            rest = &rest[end..];
        }
    }
    while let Some(c) = rest.chars().next() {
        match c {
            '#' | '.' => {
                let (name, end) = ident(&rest[1..]);
                if end == 0 {
                    return Err(format!("a name must follow {c:?} in {text:?}"));
                }
                if c == '#' {
                    out.id = Some(name);
                } else {
                    out.classes.push(name);
                }
                rest = &rest[1 + end..];
            }
            '[' => {
                let close = rest
                    .find(']')
                    .ok_or_else(|| format!("an unclosed [ in {text:?}"))?;
                let inner = &rest[1..close];
                let (name, value) = match inner.split_once('=') {
                    None => (inner.trim(), None),
                    Some((n, v)) => {
                        let v = v.trim();
                        let unquoted = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                            .unwrap_or(v);
                        (n.trim(), Some(unquoted.to_owned()))
                    }
                };
                if name.is_empty() || !name.chars().all(is_ident) {
                    return Err(format!(
                        "[{inner}] is not an attribute test this mode knows"
                    ));
                }
                out.attrs.push((name.to_ascii_lowercase(), value));
                rest = &rest[close + 1..];
            }
            _ => return Err(format!("{c:?} in {text:?}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct E(&'static str, &'static [(&'static str, &'static str)]);
    impl Element for E {
        fn tag(&self) -> &str {
            self.0
        }
        fn attr(&self, name: &str) -> Option<&str> {
            self.1.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
        }
    }

    #[test]
    fn matches_table() {
        let form = E("form", &[("id", "consent"), ("action", "/c")]);
        let allow = E(
            "button",
            &[
                ("name", "decision"),
                ("value", "allow"),
                ("class", "btn primary"),
            ],
        );
        let check = |css: &str, expected: bool| {
            let s = ConsentSelector::parse(css).unwrap();
            assert_eq!(s.matches(&form, &allow), expected, "{css}");
        };
        check("button", true);
        check("input", false);
        check("*[value=allow]", true);
        check("button[value=\"allow\"]", true);
        check("button[value='deny']", false);
        check(".primary", true);
        check(".btn.primary[name]", true);
        check(".secondary", false);
        check("form#consent button", true);
        check("form#login button", false);
        check("#nope, button.primary", true);
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for css in [
            "button:first-child",
            "form > button",
            "a b c",
            "button[",
            "#",
            "",
        ] {
            let err = ConsentSelector::parse(css).unwrap_err();
            assert!(err.contains("--login browser"), "{css}: {err}");
        }
    }
}
