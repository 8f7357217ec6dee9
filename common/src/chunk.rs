//! Splitting a list into messages under a size limit, what assignments and
//! final reports both do so that any user count crosses the gRPC link, and
//! putting the chunks of one message back together on the other side.

use crate::limits::MAX_CHUNKS;

/// Packs `items`, in order, into as few chunks as greedy filling gives:
/// a chunk is closed when the next item would take it past `budget` bytes
/// (the first chunk starts with `first` bytes already used, for what travels
/// only in it). An item larger than the budget gets a chunk of its own.
/// There is always at least one chunk, possibly empty.
pub fn pack<T>(
    items: impl IntoIterator<Item = T>,
    first: usize,
    budget: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<Vec<T>> {
    let mut chunks: Vec<Vec<T>> = vec![Vec::new()];
    let mut used = first;
    for item in items {
        let len = size(&item);
        if used + len > budget && chunks.last().is_some_and(|c| !c.is_empty()) {
            chunks.push(Vec::new());
            used = 0;
        }
        used += len;
        if let Some(last) = chunks.last_mut() {
            last.push(item);
        }
    }
    chunks
}

/// A chunk that does not fit the message being reassembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("{id} announces {count} chunks (1 to {MAX_CHUNKS} accepted)")]
    Count { id: String, count: u32 },
    #[error("{id} chunk {index} of {count} does not fit the {expected} chunks announced before")]
    Mismatch {
        id: String,
        index: u32,
        count: u32,
        expected: u32,
    },
    #[error("{id} chunk {index} arrived twice")]
    Repeated { id: String, index: u32 },
}

/// The chunks of one message (`id`, each `index` of `count`) as they
/// arrive, in any order. The count comes from the network: it is checked
/// against `limits::MAX_CHUNKS` before anything is sized by it. A chunk of
/// another id replaces an unfinished message.
#[derive(Debug)]
pub struct Reassembly<T> {
    id: Option<String>,
    count: u32,
    seen: Vec<bool>,
    parts: Vec<T>,
}

impl<T> Default for Reassembly<T> {
    fn default() -> Self {
        Self {
            id: None,
            count: 0,
            seen: Vec::new(),
            parts: Vec::new(),
        }
    }
}

/// What adding a chunk did.
#[derive(Debug, PartialEq, Eq)]
pub enum Added<T> {
    /// More chunks are due.
    Pending,
    /// The last chunk: every part, in arrival order.
    Complete { id: String, parts: Vec<T> },
}

impl<T> Reassembly<T> {
    /// The id of the message being reassembled, if any.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    pub fn add(
        &mut self,
        id: &str,
        index: u32,
        count: u32,
        part: T,
    ) -> Result<Added<T>, ChunkError> {
        if !(1..=MAX_CHUNKS).contains(&count) {
            return Err(ChunkError::Count {
                id: id.to_owned(),
                count,
            });
        }
        if self.id.as_deref() != Some(id) {
            *self = Reassembly {
                id: Some(id.to_owned()),
                count,
                seen: vec![false; count as usize],
                parts: Vec::new(),
            };
        }
        if count != self.count || index >= self.count {
            return Err(ChunkError::Mismatch {
                id: id.to_owned(),
                index,
                count,
                expected: self.count,
            });
        }
        let slot = &mut self.seen[index as usize];
        if *slot {
            return Err(ChunkError::Repeated {
                id: id.to_owned(),
                index,
            });
        }
        *slot = true;
        self.parts.push(part);
        if self.parts.len() < self.count as usize {
            return Ok(Added::Pending);
        }
        let done = std::mem::take(self);
        Ok(Added::Complete {
            id: done.id.unwrap_or_default(),
            parts: done.parts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reassembly_refuses_what_does_not_fit() {
        let mut r = Reassembly::default();
        assert!(matches!(
            r.add("a", 0, u32::MAX, 'x'),
            Err(ChunkError::Count { .. })
        ));
        assert!(matches!(
            r.add("a", 0, 0, 'x'),
            Err(ChunkError::Count { .. })
        ));
        assert_eq!(r.add("a", 1, 2, 'b'), Ok(Added::Pending));
        assert!(matches!(
            r.add("a", 1, 2, 'b'),
            Err(ChunkError::Repeated { .. })
        ));
        assert!(matches!(
            r.add("a", 0, 3, 'c'),
            Err(ChunkError::Mismatch { .. })
        ));
        assert!(matches!(
            r.add("a", 2, 2, 'c'),
            Err(ChunkError::Mismatch { .. })
        ));
        assert_eq!(
            r.add("a", 0, 2, 'a'),
            Ok(Added::Complete {
                id: "a".into(),
                parts: vec!['b', 'a']
            })
        );
        assert_eq!(r.id(), None);
        // A new id replaces an unfinished message.
        assert_eq!(r.add("b", 0, 2, 'x'), Ok(Added::Pending));
        assert_eq!(
            r.add("c", 0, 1, 'y'),
            Ok(Added::Complete {
                id: "c".into(),
                parts: vec!['y']
            })
        );
    }

    proptest! {
        #[test]
        fn keeps_every_item_in_order_under_the_budget(
            sizes in proptest::collection::vec(1usize..300, 0..200),
            first in 0usize..200,
            budget in 50usize..1000,
        ) {
            let chunks = pack(sizes.iter().copied(), first, budget, |s| *s);
            prop_assert!(!chunks.is_empty());
            let flat: Vec<usize> = chunks.iter().flatten().copied().collect();
            prop_assert_eq!(&flat, &sizes);
            for (i, c) in chunks.iter().enumerate() {
                let used: usize = c.iter().sum::<usize>() + if i == 0 { first } else { 0 };
                prop_assert!(used <= budget || c.len() <= 1, "chunk {} holds {} bytes", i, used);
                prop_assert!(i == 0 || !c.is_empty(), "only the first chunk may be empty");
            }
        }
    }
}
