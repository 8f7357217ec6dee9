//! Chunks as an agent or the controller receives them (message id, index,
//! count, from arbitrary bytes) go through `common::chunk::Reassembly`:
//! what does not fit is an error, nothing is sized from an unchecked count,
//! and a completed message has exactly its announced number of parts.
#![no_main]

use common::chunk::{Added, Reassembly};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut r = Reassembly::default();
    for chunk in data.chunks_exact(5) {
        let id = ["a", "b", "c"][usize::from(chunk[0] % 3)];
        let index = u32::from(u16::from_le_bytes([chunk[1], chunk[2]]));
        let count = u32::from(u16::from_le_bytes([chunk[3], chunk[4]])) << (chunk[0] >> 4);
        match r.add(id, index, count, index) {
            Ok(Added::Pending) => {}
            Ok(Added::Complete { parts, .. }) => {
                assert_eq!(parts.len(), count as usize);
                let mut sorted = parts.clone();
                sorted.sort_unstable();
                sorted.dedup();
                assert_eq!(sorted.len(), parts.len(), "a part twice");
            }
            Err(_) => {}
        }
    }
});
