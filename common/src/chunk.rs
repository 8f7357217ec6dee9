//! Splitting a list into messages under a size limit: what assignments and
//! final reports both do so that any user count crosses the gRPC link.

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
