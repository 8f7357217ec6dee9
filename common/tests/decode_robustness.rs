//! The fuzz targets' properties (`fuzz/`) on stable, over random inputs:
//! scenario text, histogram bytes and agent messages from arbitrary bytes
//! are decoded or refused with an error, never a panic; a decoded histogram
//! re-encodes to itself. `cargo fuzz` explores far more; this runs in every
//! `cargo test`.

use common::chunk::{Added, Reassembly};
use common::histogram::{CompactHistogram, LatencyHistogram};
use common::proto;
use common::scenario::Scenario;
use common::series::SeriesSet;
use proptest::prelude::*;
use prost::Message as _;

/// Bytes that start like a V2 histogram often enough to get past the cookie.
fn histogram_bytes() -> impl Strategy<Value = Vec<u8>> {
    let cookie = prop_oneof![
        Just(vec![0x1c, 0x84, 0x93, 0x13]),
        proptest::collection::vec(any::<u8>(), 4),
    ];
    (cookie, proptest::collection::vec(any::<u8>(), 0..200)).prop_map(|(mut c, rest)| {
        c.extend(rest);
        c
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn scenario_text_parses_or_fails(source in "(\\PC|\\n|  |- |: ){0,200}") {
        let _ = Scenario::parse(&source, "random.yaml");
    }

    #[test]
    fn histogram_bytes_decode_or_fail(bytes in histogram_bytes()) {
        if let Ok(h) = LatencyHistogram::decode(&bytes) {
            let again = LatencyHistogram::decode(&h.encode().unwrap()).unwrap();
            prop_assert_eq!(h, again);
        }
        let _ = CompactHistogram::decode(&bytes);
    }

    #[test]
    fn agent_messages_decode_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        use proto::agent_message::Body;
        if let Ok(msg) = proto::AgentMessage::decode(bytes.as_slice()) {
            let decoded = match msg.body {
                Some(Body::Interval(i)) => SeriesSet::from_proto(i.series, i.users),
                Some(Body::FinalReport(f)) => SeriesSet::from_proto(f.series, f.users),
                _ => Ok(SeriesSet::default()),
            };
            if let Ok(set) = decoded {
                SeriesSet::default().absorb(set);
            }
        }
    }

    #[test]
    fn chunks_reassemble_exactly_or_are_refused(
        chunks in proptest::collection::vec((0u8..3, 0u32..6, prop_oneof![0u32..6, Just(u32::MAX)]), 0..40)
    ) {
        let mut r = Reassembly::default();
        for (id, index, count) in chunks {
            let id = ["a", "b", "c"][usize::from(id)];
            if let Ok(Added::Complete { mut parts, .. }) = r.add(id, index, count, index) {
                parts.sort_unstable();
                prop_assert_eq!(parts, (0..count).collect::<Vec<_>>());
            }
        }
    }
}
