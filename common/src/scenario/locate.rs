//! Scenario errors and where they are: serde_yaml reports the location of
//! syntax and shape errors itself; for semantic errors found after parsing we
//! walk the source again down the offending node's path and let serde_yaml
//! report the position of that node.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::jsonpath::Segment;

/// An error in a scenario file. Its `Display` is
/// `{origin}:{line}:{column}: {message}` when the location is known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    /// The file is not valid YAML or does not have the scenario's shape, or a
    /// workflow refers to something that does not exist.
    #[error("{}", format_located(origin, location, message))]
    Invalid {
        origin: String,
        location: Option<Location>,
        message: String,
    },
    /// `resolve_workload` was asked for a name the scenario does not have.
    #[error(
        "unknown workload `{name}`; available workloads: {available} (a workflow name also works, to run it alone)"
    )]
    UnknownWorkload { name: String, available: String },
}

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

fn format_located(origin: &str, location: &Option<Location>, message: &str) -> String {
    match location {
        Some(l) => format!("{origin}:{}:{}: {message}", l.line, l.column),
        None => format!("{origin}: {message}"),
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

impl ScenarioError {
    pub fn location(&self) -> Option<Location> {
        match self {
            ScenarioError::Invalid { location, .. } => *location,
            ScenarioError::UnknownWorkload { .. } => None,
        }
    }

    /// From a serde_yaml error, which carries its own location.
    pub(crate) fn from_yaml(origin: &str, err: &serde_yaml::Error) -> Self {
        let location = err.location().map(|l| Location {
            line: l.line(),
            column: l.column(),
        });
        let mut message = err.to_string();
        // serde_yaml appends " at line N column M"; we print it up front instead.
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        ScenarioError::Invalid {
            origin: origin.to_owned(),
            location,
            message,
        }
    }

    /// A semantic error at `path` (keys and indexes from the document root).
    pub(crate) fn at(origin: &str, source: &str, path: &[Segment], message: String) -> Self {
        ScenarioError::Invalid {
            origin: origin.to_owned(),
            location: locate(source, path),
            message,
        }
    }
}

/// The position of the node at `path`, or of its nearest existing ancestor.
pub(crate) fn locate(source: &str, path: &[Segment]) -> Option<Location> {
    let de = serde_yaml::Deserializer::from_str(source);
    match (Locator { path }).deserialize(de) {
        Ok(()) => None,
        Err(e) => e.location().map(|l| Location {
            line: l.line(),
            column: l.column(),
        }),
    }
}

const FOUND: &str = "located";

/// Walks down `path`; at the target node it fails, so serde_yaml attaches
/// that node's position to the error.
struct Locator<'p> {
    path: &'p [Segment],
}

impl<'de> DeserializeSeed<'de> for Locator<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Locator<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Segment::Key(want), rest)) = self.path.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        while let Some(key) = map.next_key::<serde_yaml::Value>()? {
            let matches = match &key {
                serde_yaml::Value::String(s) => s == want,
                serde_yaml::Value::Number(n) => n.to_string() == *want,
                serde_yaml::Value::Bool(b) => b.to_string() == *want,
                _ => false,
            };
            if matches {
                return map.next_value_seed(Locator { path: rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        // The key is absent: point at the mapping itself.
        Err(de::Error::custom(FOUND))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Segment::Index(want), rest)) = self.path.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        for _ in 0..*want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom(FOUND));
            }
        }
        match seq.next_element_seed(Locator { path: rest })? {
            Some(()) => Ok(()),
            None => Err(de::Error::custom(FOUND)),
        }
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &[Segment], expected: Option<(usize, usize)>) {
        let src = "a:\n  b: 1\n  list:\n    - x\n    - name: y\n      z: { q: 3 }\nc: 2\n";
        assert_eq!(
            locate(src, path).map(|l| (l.line, l.column)),
            expected,
            "{path:?}"
        );
    }

    #[test]
    fn finds_nodes() {
        let k = |s: &str| Segment::Key(s.into());
        check(&[k("a"), k("b")], Some((2, 6)));
        check(&[k("c")], Some((7, 4)));
        check(
            &[k("a"), k("list"), Segment::Index(1), k("name")],
            Some((5, 13)),
        );
        check(
            &[k("a"), k("list"), Segment::Index(1), k("z"), k("q")],
            Some((6, 15)),
        );
        // Missing key: the enclosing mapping.
        check(&[k("a"), k("nope")], Some((2, 3)));
    }
}
