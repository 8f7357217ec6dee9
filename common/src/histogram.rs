//! The one latency histogram everybody uses: microseconds, 3 significant
//! digits, from 1 µs to 1 hour (allocated lazily, grown as samples need), encoded as HdrHistogram V2 (uncompressed:
//! gRPC compression does better for less CPU, see SPEC §5).

use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};

/// Highest trackable latency; slower samples are clamped to it.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum HistogramError {
    #[error("histogram bytes are not HdrHistogram V2: {0}")]
    Decode(String),
    #[error("histogram base64 is invalid: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("histogram could not be encoded: {0}")]
    Encode(String),
}

/// A latency histogram that costs nothing until its first sample, and then
/// only as much as its largest sample needs: it starts at one bucket and
/// grows (auto-resize) up to `MAX_LATENCY_US`. An agent holds several per
/// user, so a fixed 1 µs–1 h layout (~190 KiB each) would dwarf the session.
#[derive(Clone, Debug, Default)]
pub struct LatencyHistogram {
    inner: Option<Histogram<u64>>,
}

/// The smallest highest-trackable value hdrhistogram accepts (2 × lowest).
const INITIAL_HIGHEST_US: u64 = 2;

fn fresh() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts; a failure here
    // would be a programming error caught by every test.
    let mut h = Histogram::new_with_bounds(1, INITIAL_HIGHEST_US, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid");
    h.auto(true);
    h
}

impl PartialEq for LatencyHistogram {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.recorded().eq(other.recorded())
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        Self { inner: None }
    }

    /// `(value, count)` of every recorded bucket, in value order.
    fn recorded(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.inner.iter().flat_map(|h| {
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
        })
    }

    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(MAX_LATENCY_US);
        self.record_us(us);
    }

    pub fn record_us(&mut self, us: u64) {
        self.record_n_us(us, 1);
    }

    fn record_n_us(&mut self, us: u64, count: u64) {
        // Clamped into range, so growing is the only thing that could fail,
        // and only on a platform whose usize cannot index ~50k counters.
        let _ = self
            .inner
            .get_or_insert_with(fresh)
            .record_n(us.clamp(1, MAX_LATENCY_US), count);
    }

    /// Adds every sample of `other`. Merging is associative and order-free.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        if let Some(o) = other.inner.as_ref().filter(|o| !o.is_empty()) {
            // Auto-resize grows this one to fit; it cannot fail within bounds.
            let _ = self.inner.get_or_insert_with(fresh).add(o);
        }
    }

    pub fn len(&self) -> u64 {
        self.inner.as_ref().map_or(0, |h| h.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&mut self) {
        if let Some(h) = &mut self.inner {
            h.reset();
        }
    }

    fn non_empty(&self) -> Option<&Histogram<u64>> {
        self.inner.as_ref().filter(|h| !h.is_empty())
    }

    pub fn min_us(&self) -> u64 {
        self.non_empty().map_or(0, |h| h.min())
    }

    pub fn max_us(&self) -> u64 {
        self.non_empty().map_or(0, |h| h.max())
    }

    pub fn mean_us(&self) -> f64 {
        self.non_empty().map_or(0.0, |h| h.mean())
    }

    /// Value at quantile `q` in 0..=1, in µs (0 when empty).
    pub fn quantile_us(&self, q: f64) -> u64 {
        self.non_empty().map_or(0, |h| h.value_at_quantile(q))
    }

    /// HdrHistogram V2 bytes (an empty histogram is encoded too, so every
    /// reader of the format can read every value we write).
    pub fn encode(&self) -> Result<Vec<u8>, HistogramError> {
        let mut buf = Vec::with_capacity(64);
        let empty;
        let h = match &self.inner {
            Some(h) => h,
            None => {
                empty = fresh();
                &empty
            }
        };
        V2Serializer::new()
            .serialize(h, &mut buf)
            .map_err(|e| HistogramError::Encode(format!("{e:?}")))?;
        Ok(buf)
    }

    /// Decodes V2 bytes (V2+deflate is accepted too). Empty input is an
    /// empty histogram.
    pub fn decode(bytes: &[u8]) -> Result<Self, HistogramError> {
        if bytes.is_empty() {
            return Ok(Self::new());
        }
        let decoded: Histogram<u64> = Deserializer::new()
            .deserialize(&mut &bytes[..])
            .map_err(|e| HistogramError::Decode(format!("{e:?}")))?;
        let mut out = Self::new();
        for v in decoded.iter_recorded() {
            out.record_n_us(v.value_iterated_to(), v.count_at_value());
        }
        Ok(out)
    }

    pub fn to_base64(&self) -> Result<String, HistogramError> {
        Ok(base64::engine::general_purpose::STANDARD.encode(self.encode()?))
    }

    pub fn from_base64(text: &str) -> Result<Self, HistogramError> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(text)?;
        Self::decode(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hist(samples: &[u64]) -> LatencyHistogram {
        let mut h = LatencyHistogram::new();
        for &s in samples {
            h.record_us(s);
        }
        h
    }

    #[test]
    fn empty_histogram_reads_as_zero() {
        let h = LatencyHistogram::new();
        assert_eq!(h.quantile_us(0.99), 0);
        assert_eq!(h.min_us(), 0);
        assert_eq!(LatencyHistogram::decode(&[]).unwrap(), h);
    }

    #[test]
    fn clamps_out_of_range_samples() {
        let h = hist(&[0, u64::MAX]);
        assert_eq!(h.len(), 2);
        assert_eq!(h.min_us(), 1);
        assert!(h.max_us() >= MAX_LATENCY_US);
    }

    #[test]
    fn size_follows_the_largest_sample() {
        assert!(
            LatencyHistogram::new().inner.is_none(),
            "empty costs nothing"
        );
        let counters = |h: &LatencyHistogram| h.inner.as_ref().unwrap().distinct_values();
        // Up to ~16 ms: 5 buckets of 1024 counters, 40 KiB, not ~190 KiB.
        let small = hist(&[3, 900, 15_000]);
        assert!(counters(&small) <= 5 * 1024, "{}", counters(&small));
        let mut grown = small.clone();
        grown.merge(&hist(&[60_000_000]));
        assert!(counters(&grown) > counters(&small));
        assert_eq!(grown.max_us(), hist(&[60_000_000]).max_us());
        assert_eq!(grown.len(), 4);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(LatencyHistogram::decode(b"not a histogram").is_err());
        assert!(LatencyHistogram::from_base64("%%%").is_err());
    }

    proptest! {
        #[test]
        fn encode_decode_round_trips(samples in proptest::collection::vec(1u64..10_000_000, 0..200)) {
            let h = hist(&samples);
            let back = LatencyHistogram::decode(&h.encode().unwrap()).unwrap();
            prop_assert_eq!(&back, &h);
            let back = LatencyHistogram::from_base64(&h.to_base64().unwrap()).unwrap();
            prop_assert_eq!(back, h);
        }

        #[test]
        fn merging_parts_equals_recording_all(
            parts in proptest::collection::vec(proptest::collection::vec(1u64..100_000_000, 0..50), 1..8)
        ) {
            let all: Vec<u64> = parts.iter().flatten().copied().collect();
            let whole = hist(&all);
            // Merge in the given order, through the wire format, as the controller does.
            let mut merged = LatencyHistogram::new();
            for p in &parts {
                merged.merge(&LatencyHistogram::decode(&hist(p).encode().unwrap()).unwrap());
            }
            prop_assert_eq!(&merged, &whole);
            // And in reverse order.
            let mut reversed = LatencyHistogram::new();
            for p in parts.iter().rev() {
                reversed.merge(&hist(p));
            }
            prop_assert_eq!(&reversed, &whole);
            for q in [0.5, 0.9, 0.95, 0.99] {
                prop_assert_eq!(merged.quantile_us(q), whole.quantile_us(q));
            }
        }
    }
}
