//! The latency histograms everybody uses: microseconds from 1 µs to 1 hour,
//! allocated lazily and grown as samples need, encoded as HdrHistogram V2
//! (uncompressed: gRPC compression does better for less CPU, see SPEC §5).
//!
//! Two precisions share one implementation: `LatencyHistogram` (3
//! significant digits, u64 counts) for everything the report calls a
//! percentile of a workflow, step or tool, and `CompactHistogram` (2
//! significant digits, u32 counts, ~8× smaller) for the per-user figures, of
//! which there is one per user.

use std::marker::PhantomData;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use hdrhistogram::{Counter, Histogram};
use num_traits::{Bounded, FromPrimitive};

/// Highest trackable latency; slower samples are clamped to it.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

#[derive(Debug, thiserror::Error)]
pub enum HistogramError {
    #[error("histogram bytes are not HdrHistogram V2: {0}")]
    Decode(String),
    #[error("histogram base64 is invalid: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("histogram could not be encoded: {0}")]
    Encode(String),
}

/// HdrHistogram's V2 cookie (plain) and V2+deflate cookie.
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_DEFLATE_COOKIE: u32 = 0x1c84_9314;
const V2_HEADER_BYTES: usize = 40;
/// The most significant digits a decoded histogram may declare.
const MAX_DECODED_DIGITS: u32 = 3;
/// The highest trackable value a decoded histogram may declare: far above
/// `MAX_LATENCY_US` (auto-resize rounds up to a bucket boundary), and low
/// enough that its counters stay within a few hundred KiB.
const MAX_DECODED_HIGHEST_US: u64 = 1 << 40;

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(b)
}

fn be_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(b)
}

/// Refuses a V2 header whose payload length, precision or range would make
/// the decoder allocate more than a histogram of ours ever needs (a 40-byte
/// header can otherwise ask for gigabytes), and deflated payloads (a small
/// one can inflate to any size; we never send them).
fn check_header(bytes: &[u8]) -> Result<(), HistogramError> {
    let bad = |why: String| Err(HistogramError::Decode(why));
    if bytes.len() < V2_HEADER_BYTES {
        return bad(format!(
            "{} bytes is shorter than a V2 header ({V2_HEADER_BYTES})",
            bytes.len()
        ));
    }
    match be_u32(bytes, 0) {
        V2_COOKIE => {}
        V2_DEFLATE_COOKIE => {
            return bad(
                "compressed (V2+deflate) histograms are not accepted; send plain V2".into(),
            );
        }
        other => return bad(format!("cookie {other:#x} is not HdrHistogram V2")),
    }
    let payload = usize::try_from(be_u32(bytes, 4)).unwrap_or(usize::MAX);
    if payload > bytes.len() - V2_HEADER_BYTES {
        return bad(format!(
            "payload of {payload} bytes announced, {} present",
            bytes.len() - V2_HEADER_BYTES
        ));
    }
    let digits = be_u32(bytes, 12);
    if digits == 0 || digits > MAX_DECODED_DIGITS {
        return bad(format!(
            "{digits} significant digits (1 to {MAX_DECODED_DIGITS} accepted)"
        ));
    }
    let (lowest, highest) = (be_u64(bytes, 16), be_u64(bytes, 24));
    if lowest == 0 || highest > MAX_DECODED_HIGHEST_US || highest < lowest.saturating_mul(2) {
        return bad(format!(
            "range {lowest}..{highest} µs is out of bounds (1..{MAX_DECODED_HIGHEST_US} accepted)"
        ));
    }
    Ok(())
}

/// How precise a histogram is and what its counters are.
pub trait Precision: Clone + Copy + std::fmt::Debug + Default + PartialEq + 'static {
    type Count: Counter + FromPrimitive + Bounded;
    const SIGNIFICANT_DIGITS: u8;
}

/// 3 significant digits: workflow, step and tool percentiles.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Exact;

impl Precision for Exact {
    type Count = u64;
    const SIGNIFICANT_DIGITS: u8 = 3;
}

/// 2 significant digits (values within 1%): one per user.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Compact;

impl Precision for Compact {
    type Count = u32;
    const SIGNIFICANT_DIGITS: u8 = 2;
}

/// A latency histogram that costs nothing until its first sample, and then
/// only as much as its largest sample needs: it starts at one bucket and
/// grows (auto-resize) up to `MAX_LATENCY_US`.
#[derive(Clone, Debug)]
pub struct Hdr<P: Precision> {
    inner: Option<Histogram<P::Count>>,
    precision: PhantomData<P>,
}

/// Full precision, for workflows, steps and tools.
pub type LatencyHistogram = Hdr<Exact>;
/// Per-user precision.
pub type CompactHistogram = Hdr<Compact>;

impl<P: Precision> Default for Hdr<P> {
    fn default() -> Self {
        Self {
            inner: None,
            precision: PhantomData,
        }
    }
}

/// The smallest highest-trackable value hdrhistogram accepts (2 × lowest).
const INITIAL_HIGHEST_US: u64 = 2;

fn fresh<P: Precision>() -> Histogram<P::Count> {
    // The bounds are constants that hdrhistogram accepts; a failure here
    // would be a programming error caught by every test.
    let mut h = Histogram::new_with_bounds(1, INITIAL_HIGHEST_US, P::SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid");
    h.auto(true);
    h
}

impl<P: Precision> PartialEq for Hdr<P> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.recorded().eq(other.recorded())
    }
}

impl<P: Precision> Hdr<P> {
    pub fn new() -> Self {
        Self::default()
    }

    /// `(value, count)` of every recorded bucket, in value order.
    fn recorded(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.inner.iter().flat_map(|h| {
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value().as_u64()))
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
        let count = P::Count::from_u64(count).unwrap_or_else(P::Count::max_value);
        let _ = self
            .inner
            .get_or_insert_with(fresh::<P>)
            .record_n(us.clamp(1, MAX_LATENCY_US), count);
    }

    /// Adds every sample of `other`. Merging is associative and order-free.
    pub fn merge(&mut self, other: &Hdr<P>) {
        if let Some(o) = other.inner.as_ref().filter(|o| !o.is_empty()) {
            // Auto-resize grows this one to fit; it cannot fail within bounds.
            let _ = self.inner.get_or_insert_with(fresh::<P>).add(o);
        }
    }

    /// Adds every sample of a histogram of another precision (each at its
    /// bucket's value, so at the coarser of the two precisions).
    pub fn merge_from<Q: Precision>(&mut self, other: &Hdr<Q>) {
        for (us, count) in other.recorded() {
            self.record_n_us(us, count);
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

    fn non_empty(&self) -> Option<&Histogram<P::Count>> {
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

    /// How many recorded values are at most `us` (as the histogram's
    /// precision can tell): the cumulative bucket of a Prometheus histogram.
    pub fn count_at_most_us(&self, us: u64) -> u64 {
        self.non_empty().map_or(0, |h| h.count_between(0, us))
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
                empty = fresh::<P>();
                &empty
            }
        };
        V2Serializer::new()
            .serialize(h, &mut buf)
            .map_err(|e| HistogramError::Encode(format!("{e:?}")))?;
        Ok(buf)
    }

    /// Decodes plain V2 bytes, which may come from the network: the header
    /// is checked (`check_header`) before anything is allocated. Empty input
    /// is an empty histogram.
    pub fn decode(bytes: &[u8]) -> Result<Self, HistogramError> {
        if bytes.is_empty() {
            return Ok(Self::new());
        }
        check_header(bytes)?;
        let decoded: Histogram<P::Count> = Deserializer::new()
            .deserialize(&mut &bytes[..])
            .map_err(|e| HistogramError::Decode(format!("{e:?}")))?;
        let mut out = Self::new();
        for v in decoded.iter_recorded() {
            out.record_n_us(v.value_iterated_to(), v.count_at_value().as_u64());
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
    fn compact_is_small_and_within_one_percent() {
        let mut c = CompactHistogram::new();
        let mut e = LatencyHistogram::new();
        for us in [120, 900, 4_000, 15_000, 15_000, 90_000] {
            c.record_us(us);
            e.record_us(us);
        }
        let counters = c.inner.as_ref().unwrap().distinct_values();
        let exact = e.inner.as_ref().unwrap().distinct_values();
        assert!(counters * 4 < exact, "{counters} vs {exact}");
        for q in [0.5, 0.9, 0.99] {
            let (a, b) = (c.quantile_us(q) as f64, e.quantile_us(q) as f64);
            assert!((a - b).abs() / b <= 0.011, "q{q}: {a} vs {b}");
        }
        let back = CompactHistogram::decode(&c.encode().unwrap()).unwrap();
        assert_eq!(back, c);
        let mut from_exact = CompactHistogram::new();
        from_exact.merge_from(&e);
        assert_eq!(
            from_exact, c,
            "recording into it or merging an exact one agree"
        );
    }

    /// A valid header with one field changed.
    fn forged(at: usize, value: &[u8]) -> Vec<u8> {
        let mut bytes = hist(&[100, 2_000]).encode().unwrap();
        bytes[at..at + value.len()].copy_from_slice(value);
        bytes
    }

    #[test]
    fn headers_that_would_allocate_too_much_are_refused() {
        let cases: [(Vec<u8>, &str); 6] = [
            (forged(24, &u64::MAX.to_be_bytes()), "out of bounds"),
            (forged(12, &5u32.to_be_bytes()), "significant digits"),
            (forged(16, &0u64.to_be_bytes()), "out of bounds"),
            (forged(4, &u32::MAX.to_be_bytes()), "payload"),
            (forged(0, &V2_DEFLATE_COOKIE.to_be_bytes()), "deflate"),
            (
                vec![0x1c, 0x84, 0x93, 0x13, 0, 0],
                "shorter than a V2 header",
            ),
        ];
        for (bytes, expected) in cases {
            let err = LatencyHistogram::decode(&bytes).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
            assert!(CompactHistogram::decode(&bytes).is_err());
        }
        let grown = hist(&[MAX_LATENCY_US]);
        assert_eq!(
            LatencyHistogram::decode(&grown.encode().unwrap()).unwrap(),
            grown
        );
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
