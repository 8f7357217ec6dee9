//! Any text given as `--scenario` (or carried by an assignment) parses or
//! fails with an error; it never panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(source) = std::str::from_utf8(data) {
        let _ = common::scenario::Scenario::parse(source, "fuzz.yaml");
    }
});
