//! The scenario file as written (serde types, `deny_unknown_fields`), before
//! any semantic check. Mappings keep their order and reject duplicate keys.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    pub version: Option<u32>,
    #[serde(default)]
    pub description: String,
    pub default_workload: Option<String>,
    #[serde(default)]
    pub workloads: OrderedMap<OrderedMap<u32>>,
    pub workflows: OrderedMap<RawWorkflow>,
    #[serde(default)]
    pub setup: Option<super::setup::RawSetup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWorkflow {
    #[serde(default)]
    pub description: String,
    pub roles: Option<Vec<String>>,
    #[serde(default)]
    pub baseline: bool,
    pub steps: Vec<RawStep>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStep {
    pub name: String,
    #[serde(rename = "as")]
    pub actors: Option<OneOrMany>,
    pub tool: String,
    #[serde(default)]
    pub args: Option<Value>,
    #[serde(default)]
    pub expect: Option<RawExpect>,
    #[serde(default)]
    pub capture: OrderedMap<String>,
    #[serde(default)]
    pub parallel: bool,
    #[serde(default)]
    pub always: bool,
    #[serde(default)]
    pub retry: Option<RawRetry>,
}

/// `retry: { on: conflict, attempts: 3, reread: read_doc }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub on: String,
    pub attempts: u32,
    pub reread: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExpect {
    #[serde(default)]
    pub error: bool,
    pub outcomes: Option<OneOrMany>,
    pub conflict_when: Option<OneOrMany>,
    pub contains: Option<OneOrMany>,
    #[serde(default)]
    pub json: OrderedMap<Value>,
}

/// One string or a list of them: `as: owner` / `as: [owner, editor]`,
/// `contains: text` / `contains: [a, b]`.
#[derive(Debug)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut roles = Vec::new();
                while let Some(r) = seq.next_element::<String>()? {
                    roles.push(r);
                }
                Ok(OneOrMany::Many(roles))
            }
        }
        d.deserialize_any(V)
    }
}

/// A mapping that keeps its order and refuses duplicate keys.
#[derive(Debug)]
pub(crate) struct OrderedMap<V>(pub Vec<(String, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(OrderedMap::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(String, V)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format_args!(
                            "duplicate key `{key}`: each name may appear only once here"
                        )));
                    }
                    let value = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(OrderedMap(entries))
            }
        }
        d.deserialize_any(MapVisitor(PhantomData))
    }
}
