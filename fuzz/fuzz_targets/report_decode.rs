//! Agent messages as the controller decodes them: interval and final-report
//! series and users from arbitrary bytes are refused past the bounds of
//! `common::limits` or decoded and merged, never a panic.
#![no_main]

use common::proto;
use common::proto::agent_message::Body;
use common::series::SeriesSet;
use prost::Message as _;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(msg) = proto::AgentMessage::decode(data) else {
        return;
    };
    let decoded = match msg.body {
        Some(Body::Interval(i)) => SeriesSet::from_proto(i.series, i.users),
        Some(Body::FinalReport(f)) => SeriesSet::from_proto(f.series, f.users),
        _ => return,
    };
    if let Ok(set) = decoded {
        let mut merged = SeriesSet::default();
        merged.merge(&set);
        merged.absorb(set);
    }
});
