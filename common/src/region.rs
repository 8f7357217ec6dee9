//! Regions: the name an agent gives where it runs (`agent --region eu`), so
//! the report can break latency and throughput down by where the load came
//! from. Names are short and plain (they become report keys and Prometheus
//! label values); an agent that names none is in [`Region::DEFAULT`].

use std::fmt;

/// Longest region name, in bytes.
pub const MAX_REGION_LEN: usize = 32;

/// A region name: 1–32 of `A-Z a-z 0-9 _ -`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Region(String);

/// Why a region name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionError {
    #[error("a region name cannot be empty")]
    Empty,
    #[error("region name of {0} bytes: at most {MAX_REGION_LEN}")]
    TooLong(usize),
    #[error("region name {0:?}: only letters, digits, '_' and '-' are allowed")]
    BadChar(String),
}

impl Region {
    /// Where an agent that names no region is.
    pub const DEFAULT: &str = "default";

    pub fn parse(name: &str) -> Result<Region, RegionError> {
        if name.is_empty() {
            return Err(RegionError::Empty);
        }
        if name.len() > MAX_REGION_LEN {
            return Err(RegionError::TooLong(name.len()));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            let shown: String = name.chars().take(MAX_REGION_LEN).collect();
            return Err(RegionError::BadChar(shown));
        }
        Ok(Region(name.to_owned()))
    }

    /// The region of an agent that names none.
    pub fn default_region() -> Region {
        Region(Self::DEFAULT.to_owned())
    }

    /// What an agent sent at `Register`: empty is the default region.
    pub fn from_wire(name: &str) -> Result<Region, RegionError> {
        if name.is_empty() {
            Ok(Self::default_region())
        } else {
            Self::parse(name)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Region {
    fn default() -> Self {
        Self::default_region()
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Region {
    type Err = RegionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> serde::Deserialize<'de> for Region {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Region::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `eu,us,us`: the regions of spawned agents, agent `i` taking entry
/// `i mod len` (`controller start --agent-regions`).
pub fn parse_region_list(list: &str) -> Result<Vec<Region>, RegionError> {
    list.split(',').map(|s| Region::parse(s.trim())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<&str, RegionError>) {
        assert_eq!(
            Region::parse(input).as_ref().map(Region::as_str),
            expected.as_ref().map(|s| *s),
            "input {input:?}"
        );
    }

    #[test]
    fn names() {
        check("eu", Ok("eu"));
        check("us-east_1", Ok("us-east_1"));
        check("", Err(RegionError::Empty));
        check("eu west", Err(RegionError::BadChar("eu west".into())));
        check("é", Err(RegionError::BadChar("é".into())));
        check(&"a".repeat(33), Err(RegionError::TooLong(33)));
        check(&"a".repeat(32), Ok(&"a".repeat(32)));
        assert_eq!(Region::from_wire("").unwrap().as_str(), "default");
        assert_eq!(
            parse_region_list("eu, us").unwrap(),
            vec![Region::parse("eu").unwrap(), Region::parse("us").unwrap()]
        );
        assert!(parse_region_list("eu,,us").is_err());
    }
}
