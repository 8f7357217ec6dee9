//! Histogram bytes from the network decode or fail, never panic nor
//! allocate past the header checks; what decodes re-encodes to the same.
#![no_main]

use common::histogram::{CompactHistogram, LatencyHistogram};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(h) = LatencyHistogram::decode(data) {
        let again = LatencyHistogram::decode(&h.encode().expect("a decoded histogram encodes"))
            .expect("what we encode decodes");
        assert_eq!(h, again);
    }
    let _ = CompactHistogram::decode(data);
});
