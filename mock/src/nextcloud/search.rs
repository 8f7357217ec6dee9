//! WebDAV SEARCH (RFC 5323 `basicsearch`) at `/remote.php/dav/`, as Nextcloud's DAV search
//! answers it for the caller's files: a scope under `/files/<user>/`, `and`/`or`/`not` of
//! `eq`/`like`/`lt`/`lte`/`gt`/`gte`/`is-collection` over the name, type, size, mtime, file id
//! and favorite flag, `orderby`, and `limit` with `nresults` and `firstresult`. Results are the
//! scope's descendants (received shares included), not the scope itself.

use std::cmp::Ordering;

use roxmltree::{Document, Node, ParsingOptions};

use crate::state::{Data, FileInfo, NcError, basename, norm};

/// A SEARCH walks at most this many files and folders: the mock's answer stays bounded.
const MAX_VISITED: usize = 20_000;
/// SEARCH bodies are small queries; XML past this is refused before parsing.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;
/// Elements a query may have (a bound on the parser's work and on the predicate's depth).
const MAX_QUERY_NODES: u32 = 2_000;

/// A query the mock cannot or will not run; Sabre answers such with 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadQuery(pub String);

fn bad(what: impl Into<String>) -> BadQuery {
    BadQuery(what.into())
}

/// The properties a query may compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prop {
    Name,
    ContentType,
    Size,
    Modified,
    FileId,
    Favorite,
}

impl Prop {
    fn parse(local: &str) -> Result<Self, BadQuery> {
        Ok(match local {
            "displayname" => Self::Name,
            "getcontenttype" => Self::ContentType,
            "getcontentlength" | "size" => Self::Size,
            "getlastmodified" => Self::Modified,
            "fileid" => Self::FileId,
            "favorite" => Self::Favorite,
            other => return Err(bad(format!("Unsupported property for search: {other}"))),
        })
    }

    fn text(self, f: &FileInfo) -> String {
        match self {
            Self::Name => basename(&f.path).to_owned(),
            Self::ContentType => f.content_type.clone(),
            _ => self.number(f).to_string(),
        }
    }

    fn number(self, f: &FileInfo) -> u64 {
        match self {
            Self::Size => f.size,
            Self::Modified => f.modified,
            Self::FileId => f.file_id,
            // The mock keeps no favorites.
            Self::Favorite | Self::Name | Self::ContentType => 0,
        }
    }

    fn numeric(self) -> bool {
        !matches!(self, Self::Name | Self::ContentType)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pred {
    All(Vec<Pred>),
    Any(Vec<Pred>),
    Not(Box<Pred>),
    Compare(Prop, Ordering, bool, String),
    Like(Prop, String),
    IsCollection,
}

impl Pred {
    fn matches(&self, f: &FileInfo) -> bool {
        match self {
            Self::All(ps) => ps.iter().all(|p| p.matches(f)),
            Self::Any(ps) => ps.iter().any(|p| p.matches(f)),
            Self::Not(p) => !p.matches(f),
            Self::IsCollection => f.is_dir,
            Self::Like(prop, pattern) => {
                like(&prop.text(f).to_lowercase(), &pattern.to_lowercase())
            }
            Self::Compare(prop, want, or_equal, literal) => {
                let got = if prop.numeric() {
                    // A literal that is not a number matches nothing, as a failed cast would.
                    let Ok(n) = literal.trim().parse::<u64>() else {
                        return false;
                    };
                    prop.number(f).cmp(&n)
                } else {
                    prop.text(f).cmp(literal)
                };
                got == *want || (*or_equal && got == Ordering::Equal)
            }
        }
    }
}

/// SQL `LIKE`: `%` any run, `_` one character.
fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    // Iterative wildcard matching with one backtrack point: linear in practice, never exponential.
    let (mut ti, mut pi, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '%')
}

/// A parsed `basicsearch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The scope's owner (the `<u>` in `/files/<u>/…`) and path.
    pub owner: String,
    pub scope: String,
    /// Only the scope's children (`depth` 1) rather than everything below it.
    shallow: bool,
    pred: Pred,
    order: Vec<(Prop, bool)>,
    first: usize,
    limit: Option<usize>,
}

fn child<'a, 'i>(node: Node<'a, 'i>, local: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == local)
}

fn elements<'a, 'i>(node: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(Node::is_element)
}

/// The one property named in a `<d:prop>` under `node`.
fn prop_of(node: Node) -> Result<Prop, BadQuery> {
    let prop = child(node, "prop").ok_or_else(|| bad("missing prop"))?;
    let name = elements(prop).next().ok_or_else(|| bad("empty prop"))?;
    Prop::parse(name.tag_name().name())
}

fn literal_of(node: Node) -> Result<String, BadQuery> {
    let lit = child(node, "literal").ok_or_else(|| bad("missing literal"))?;
    Ok(lit.text().unwrap_or("").to_owned())
}

fn predicate(node: Node) -> Result<Pred, BadQuery> {
    let list = || elements(node).map(predicate).collect::<Result<Vec<_>, _>>();
    let compare = |want, or_equal| -> Result<Pred, BadQuery> {
        Ok(Pred::Compare(
            prop_of(node)?,
            want,
            or_equal,
            literal_of(node)?,
        ))
    };
    match node.tag_name().name() {
        "and" => Ok(Pred::All(list()?)),
        "or" => Ok(Pred::Any(list()?)),
        "not" => {
            let inner = elements(node).next().ok_or_else(|| bad("empty not"))?;
            Ok(Pred::Not(Box::new(predicate(inner)?)))
        }
        "eq" => compare(Ordering::Equal, false),
        "lt" => compare(Ordering::Less, false),
        "lte" => compare(Ordering::Less, true),
        "gt" => compare(Ordering::Greater, false),
        "gte" => compare(Ordering::Greater, true),
        "like" => Ok(Pred::Like(prop_of(node)?, literal_of(node)?)),
        "is-collection" => Ok(Pred::IsCollection),
        other => Err(bad(format!("Unsupported search operator: {other}"))),
    }
}

/// `/files/<u>/a/b`, `/remote.php/dav/files/<u>/a/b` or a full URL of either.
fn scope_of(href: &str) -> Result<(String, String), BadQuery> {
    let href = href.trim();
    let path = match href.find("://") {
        Some(i) => href[i + 3..].find('/').map_or("/", |j| &href[i + 3 + j..]),
        None => href,
    };
    let path = path.strip_prefix("/remote.php/dav").unwrap_or(path);
    let rest = path
        .strip_prefix("/files/")
        .ok_or_else(|| bad("Invalid search scope"))?;
    let (owner, p) = rest.split_once('/').unwrap_or((rest, ""));
    let decode =
        |s: &str| super::multistatus::decode_path(s).ok_or_else(|| bad("Invalid search scope"));
    let owner = decode(owner)?;
    let scope = norm(&decode(p)?).map_err(|_| bad("Invalid search scope"))?;
    Ok((owner, scope))
}

impl Query {
    pub fn parse(body: &[u8]) -> Result<Self, BadQuery> {
        if body.len() > MAX_QUERY_BYTES {
            return Err(bad("search query too large"));
        }
        let text = std::str::from_utf8(body).map_err(|_| bad("search query is not UTF-8"))?;
        let options = ParsingOptions {
            allow_dtd: false,
            nodes_limit: MAX_QUERY_NODES,
        };
        let doc = Document::parse_with_options(text, options)
            .map_err(|e| bad(format!("invalid XML: {e}")))?;
        let root = doc.root_element();
        if root.tag_name().name() != "searchrequest" {
            return Err(bad("expected a searchrequest"));
        }
        let basic = child(root, "basicsearch").ok_or_else(|| bad("Unsupported search grammar"))?;
        let scope = child(basic, "from")
            .and_then(|f| child(f, "scope"))
            .ok_or_else(|| bad("missing search scope"))?;
        let href = child(scope, "href")
            .and_then(|h| h.text())
            .ok_or_else(|| bad("missing search scope"))?;
        let (owner, scope_path) = scope_of(href)?;
        let shallow = child(scope, "depth")
            .and_then(|d| d.text())
            .is_some_and(|d| d.trim() == "1");
        let pred = match child(basic, "where").and_then(|w| elements(w).next()) {
            Some(node) => predicate(node)?,
            None => Pred::All(Vec::new()),
        };
        let mut order = Vec::new();
        if let Some(orderby) = child(basic, "orderby") {
            for o in elements(orderby).filter(|o| o.tag_name().name() == "order") {
                order.push((prop_of(o)?, child(o, "descending").is_none()));
            }
        }
        let limit = child(basic, "limit");
        let number = |local: &str| {
            limit
                .and_then(|l| child(l, local))
                .and_then(|n| n.text())
                .and_then(|t| t.trim().parse::<usize>().ok())
        };
        Ok(Self {
            owner,
            scope: scope_path,
            shallow,
            pred,
            order,
            first: number("firstresult").unwrap_or(0),
            limit: number("nresults"),
        })
    }

    /// Runs the query over the caller's files; the entries in answer order.
    pub fn run(&self, data: &Data, user: &str) -> Result<Vec<FileInfo>, NcError> {
        let scope = data.stat(user, &self.scope)?;
        let mut hits = Vec::new();
        let mut pending = vec![scope];
        let mut visited = 0;
        while let Some(dir) = pending.pop() {
            if !dir.is_dir {
                continue;
            }
            for entry in data.list_directory(user, &dir.path)? {
                visited += 1;
                if visited > MAX_VISITED {
                    break;
                }
                if self.pred.matches(&entry) {
                    hits.push(entry.clone());
                }
                if entry.is_dir && !self.shallow {
                    pending.push(entry);
                }
            }
        }
        hits.sort_by(|a, b| {
            for (prop, ascending) in &self.order {
                let o = if prop.numeric() {
                    prop.number(a).cmp(&prop.number(b))
                } else {
                    prop.text(a).cmp(&prop.text(b))
                };
                let o = if *ascending { o } else { o.reverse() };
                if o != Ordering::Equal {
                    return o;
                }
            }
            a.path.cmp(&b.path)
        });
        let limit = self.limit.unwrap_or(usize::MAX);
        Ok(hits.into_iter().skip(self.first).take(limit).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_table() {
        let check =
            |t: &str, p: &str, expected: bool| assert_eq!(like(t, p), expected, "{t} ~ {p}");
        check("report.txt", "%report%", true);
        check("report.txt", "report", false);
        check("report.txt", "r_port.txt", true);
        check("report.txt", "%.md", false);
        check("", "%", true);
        check("aaa", "a%a%a%a", false);
        check("text/plain", "text/%", true);
    }

    fn info(path: &str, dir: bool, size: u64) -> FileInfo {
        FileInfo {
            path: path.into(),
            file_id: 7,
            is_dir: dir,
            size,
            etag: "e".into(),
            content_type: if dir {
                "httpd/unix-directory"
            } else {
                "text/plain"
            }
            .into(),
            modified: 100,
            permissions: 31,
        }
    }

    #[test]
    fn queries_parse_and_match() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<d:searchrequest xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns" xmlns:sd="https://github.com/icewind1991/SearchDAV/ns">
  <d:basicsearch>
    <d:select><d:prop><d:displayname/><oc:fileid/></d:prop></d:select>
    <d:from><d:scope><d:href>/files/alice/Docs</d:href><d:depth>infinity</d:depth></d:scope></d:from>
    <d:where><d:and>
      <d:like><d:prop><d:displayname/></d:prop><d:literal>%Rep%</d:literal></d:like>
      <d:not><d:is-collection/></d:not>
      <d:gt><d:prop><oc:size/></d:prop><d:literal>2</d:literal></d:gt>
    </d:and></d:where>
    <d:orderby><d:order><d:prop><d:getlastmodified/></d:prop><d:descending/></d:order></d:orderby>
    <d:limit><d:nresults>5</d:nresults><sd:firstresult>1</sd:firstresult></d:limit>
  </d:basicsearch>
</d:searchrequest>"#;
        let q = Query::parse(body.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (q.owner.as_str(), q.scope.as_str(), q.first, q.limit),
            ("alice", "/Docs", 1, Some(5))
        );
        assert_eq!(q.order, vec![(Prop::Modified, false)]);
        let check =
            |f: FileInfo, expected: bool| assert_eq!(q.pred.matches(&f), expected, "{}", f.path);
        check(info("/Docs/report.txt", false, 3), true);
        check(info("/Docs/report.txt", false, 2), false);
        check(info("/Docs/Report", true, 3), false);
        check(info("/Docs/notes.txt", false, 3), false);

        let check_err = |body: &str| assert!(Query::parse(body.as_bytes()).is_err(), "{body}");
        check_err("<x/>");
        check_err("not xml");
        check_err(&body.replace("/files/alice/Docs", "/elsewhere"));
        check_err(&body.replace(
            "d:displayname/></d:prop><d:literal>%Rep",
            "d:owner/></d:prop><d:literal>%Rep",
        ));
        check_err(&body.replace("d:gt>", "d:between>"));
        check_err(&format!("<!DOCTYPE x [<!ENTITY a \"b\">]>{body}"));
    }
}
