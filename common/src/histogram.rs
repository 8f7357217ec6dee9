//! The one latency histogram everybody uses: microseconds, 3 significant
//! digits, from 1 µs to 1 hour, encoded as HdrHistogram V2 (uncompressed:
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

#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    inner: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for LatencyHistogram {
    fn eq(&self, other: &Self) -> bool {
        self.inner.len() == other.inner.len()
            && self
                .inner
                .iter_recorded()
                .zip(other.inner.iter_recorded())
                .all(|(a, b)| {
                    a.value_iterated_to() == b.value_iterated_to()
                        && a.count_at_value() == b.count_at_value()
                })
            && self.inner.iter_recorded().count() == other.inner.iter_recorded().count()
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        // The bounds are constants that hdrhistogram accepts; a failure here
        // would be a programming error caught by every test.
        let inner = Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        Self { inner }
    }

    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(MAX_LATENCY_US);
        self.record_us(us);
    }

    pub fn record_us(&mut self, us: u64) {
        self.inner.saturating_record(us.clamp(1, MAX_LATENCY_US));
    }

    /// Adds every sample of `other`. Merging is associative and order-free.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Same bounds on both sides, so `add` cannot fail.
        let _ = self.inner.add(&other.inner);
    }

    pub fn len(&self) -> u64 {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    pub fn reset(&mut self) {
        self.inner.reset();
    }

    pub fn min_us(&self) -> u64 {
        if self.is_empty() { 0 } else { self.inner.min() }
    }

    pub fn max_us(&self) -> u64 {
        self.inner.max()
    }

    pub fn mean_us(&self) -> f64 {
        self.inner.mean()
    }

    /// Value at quantile `q` in 0..=1, in µs (0 when empty).
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.is_empty() {
            0
        } else {
            self.inner.value_at_quantile(q)
        }
    }

    /// HdrHistogram V2 bytes.
    pub fn encode(&self) -> Result<Vec<u8>, HistogramError> {
        let mut buf = Vec::with_capacity(64);
        V2Serializer::new()
            .serialize(&self.inner, &mut buf)
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
            out.inner.saturating_record_n(
                v.value_iterated_to().clamp(1, MAX_LATENCY_US),
                v.count_at_value(),
            );
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
