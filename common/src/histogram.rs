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

mod v2;
use v2::Layout;

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

/// How precise a histogram is and what its counters are.
pub trait Precision: Clone + Copy + std::fmt::Debug + Default + PartialEq + 'static {
    type Count: Counter + FromPrimitive + Bounded;
    const SIGNIFICANT_DIGITS: u8;
    /// A sum of these is kept as its list of buckets while it is small,
    /// even when what is added was recorded into counters: for the
    /// histograms there is one of per user, held all run, where memory
    /// counts more than the walk over the added one's counters.
    const SUMS_AS_BUCKETS: bool;
}

/// 3 significant digits: workflow, step and tool percentiles.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Exact;

impl Precision for Exact {
    type Count = u64;
    const SIGNIFICANT_DIGITS: u8 = 3;
    const SUMS_AS_BUCKETS: bool = false;
}

/// 2 significant digits (values within 1%): one per user.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Compact;

impl Precision for Compact {
    type Count = u32;
    const SIGNIFICANT_DIGITS: u8 = 2;
    const SUMS_AS_BUCKETS: bool = true;
}

/// A latency histogram that costs nothing until its first sample, and then
/// only as much as its largest sample needs: it starts at one bucket and
/// grows (auto-resize) up to `MAX_LATENCY_US`. One decoded from the wire
/// stays a list of its recorded buckets until something records or merges
/// into it, so adding it to another histogram costs its buckets, not its
/// range (a one-second delta has tens of values in thousands of counters).
#[derive(Clone, Debug)]
pub struct Hdr<P: Precision> {
    repr: Repr<P::Count>,
    precision: PhantomData<P>,
}

#[derive(Clone, Debug)]
enum Repr<C: Counter> {
    Empty,
    /// `(highest value of the bucket, count)` of every recorded bucket of
    /// this precision, ascending, no count zero.
    Sparse(Vec<(u64, u64)>),
    Dense(Histogram<C>),
}

/// Full precision, for workflows, steps and tools.
pub type LatencyHistogram = Hdr<Exact>;
/// Per-user precision.
pub type CompactHistogram = Hdr<Compact>;

impl<P: Precision> Default for Hdr<P> {
    fn default() -> Self {
        Self {
            repr: Repr::Empty,
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

fn record_into<P: Precision>(h: &mut Histogram<P::Count>, us: u64, count: u64) {
    // Clamped into range, so growing is the only thing that could fail,
    // and only on a platform whose usize cannot index ~50k counters.
    let count = P::Count::from_u64(count).unwrap_or_else(P::Count::max_value);
    let _ = h.record_n(us.clamp(1, MAX_LATENCY_US), count);
}

/// The entries recorded into a fresh histogram, in order, grown by
/// auto-resize: the same entries always give the same histogram.
fn densify<P: Precision>(entries: &[(u64, u64)]) -> Histogram<P::Count> {
    let mut h = fresh::<P>();
    for &(us, count) in entries {
        record_into::<P>(&mut h, us, count);
    }
    h
}

/// Two sparse histograms merge into a sparse one up to this many buckets
/// (16 bytes each); past it the sum is dense. Per-user histograms, tens of
/// buckets each, then stay a few hundred bytes where dense they would hold
/// every counter up to their largest sample (kilobytes), and a sum that
/// takes deltas all run long (a series') turns dense before walking its
/// list would cost more than recording into counters.
const SPARSE_MAX_BUCKETS: usize = 256;

/// How many distinct buckets two ascending bucket lists hold together.
fn union_len(a: &[(u64, u64)], b: &[(u64, u64)]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
        n += 1;
    }
    n + (a.len() - i) + (b.len() - j)
}

/// Two ascending bucket lists as one, the counts of a bucket in both
/// added; `len` is their `union_len`.
fn merge_sparse(a: &[(u64, u64)], b: &[(u64, u64)], len: usize) -> Vec<(u64, u64)> {
    let mut out = Vec::with_capacity(len);
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push((a[i].0, a[i].1.saturating_add(b[j].1)));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
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
    fn recorded(&self) -> Box<dyn Iterator<Item = (u64, u64)> + '_> {
        match &self.repr {
            Repr::Empty => Box::new(std::iter::empty()),
            Repr::Sparse(entries) => Box::new(entries.iter().copied()),
            Repr::Dense(h) => Box::new(
                h.iter_recorded()
                    .map(|v| (v.value_iterated_to(), v.count_at_value().as_u64())),
            ),
        }
    }

    /// The histogram to record into, made dense first.
    fn dense_mut(&mut self) -> &mut Histogram<P::Count> {
        let h = match std::mem::replace(&mut self.repr, Repr::Empty) {
            Repr::Empty => fresh::<P>(),
            Repr::Sparse(entries) => densify::<P>(&entries),
            Repr::Dense(h) => h,
        };
        self.repr = Repr::Dense(h);
        match &mut self.repr {
            Repr::Dense(h) => h,
            _ => unreachable!("just set to Dense"),
        }
    }

    /// The histogram to read, dense (a sparse one is densified for the
    /// read: reading a delta as it came off the wire is rare).
    fn view(&self) -> Option<std::borrow::Cow<'_, Histogram<P::Count>>> {
        match &self.repr {
            Repr::Empty => None,
            Repr::Sparse(entries) => Some(std::borrow::Cow::Owned(densify::<P>(entries))),
            Repr::Dense(h) if h.is_empty() => None,
            Repr::Dense(h) => Some(std::borrow::Cow::Borrowed(h)),
        }
    }

    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(MAX_LATENCY_US);
        self.record_us(us);
    }

    pub fn record_us(&mut self, us: u64) {
        self.record_n_us(us, 1);
    }

    fn record_n_us(&mut self, us: u64, count: u64) {
        record_into::<P>(self.dense_mut(), us, count);
    }

    /// Adds every sample of `other`. Merging is associative and order-free.
    pub fn merge(&mut self, other: &Hdr<P>) {
        match &other.repr {
            Repr::Empty => {}
            Repr::Sparse(entries) if matches!(self.repr, Repr::Empty) => {
                self.repr = Repr::Sparse(entries.clone());
            }
            Repr::Sparse(entries) => self.merge_buckets(entries),
            Repr::Dense(o) if o.is_empty() => {}
            Repr::Dense(_) if P::SUMS_AS_BUCKETS && !matches!(self.repr, Repr::Dense(_)) => {
                let entries: Vec<(u64, u64)> = other.recorded().collect();
                if matches!(self.repr, Repr::Empty) && entries.len() <= SPARSE_MAX_BUCKETS {
                    self.repr = Repr::Sparse(entries);
                } else {
                    self.merge_buckets(&entries);
                }
            }
            // Auto-resize grows this one to fit; it cannot fail within bounds.
            Repr::Dense(o) => {
                let _ = self.dense_mut().add(o);
            }
        }
    }

    /// Adds a list of buckets of this precision: into ours when we are a
    /// list too and the two hold at most `SPARSE_MAX_BUCKETS` together,
    /// else recorded into counters.
    fn merge_buckets(&mut self, entries: &[(u64, u64)]) {
        if let Repr::Sparse(mine) = &mut self.repr {
            let len = union_len(mine, entries);
            if len <= SPARSE_MAX_BUCKETS {
                *mine = merge_sparse(mine, entries, len);
                return;
            }
        }
        let h = self.dense_mut();
        for &(us, count) in entries {
            record_into::<P>(h, us, count);
        }
    }

    /// Adds every sample of a histogram of another precision (each at its
    /// bucket's value, so at the coarser of the two precisions).
    pub fn merge_from<Q: Precision>(&mut self, other: &Hdr<Q>) {
        if other.is_empty() {
            return;
        }
        let h = self.dense_mut();
        for (us, count) in other.recorded() {
            record_into::<P>(h, us, count);
        }
    }

    pub fn len(&self) -> u64 {
        match &self.repr {
            Repr::Empty => 0,
            Repr::Sparse(entries) => entries.iter().map(|e| e.1).fold(0, u64::saturating_add),
            Repr::Dense(h) => h.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empties it (a dense one keeps its counters for the next samples).
    pub fn reset(&mut self) {
        match &mut self.repr {
            Repr::Dense(h) => h.reset(),
            _ => self.repr = Repr::Empty,
        }
    }

    pub fn min_us(&self) -> u64 {
        self.view().map_or(0, |h| h.min())
    }

    pub fn max_us(&self) -> u64 {
        self.view().map_or(0, |h| h.max())
    }

    pub fn mean_us(&self) -> f64 {
        self.view().map_or(0.0, |h| h.mean())
    }

    /// How many recorded values are at most `us` (as the histogram's
    /// precision can tell): the cumulative bucket of a Prometheus histogram.
    pub fn count_at_most_us(&self, us: u64) -> u64 {
        self.view().map_or(0, |h| h.count_between(0, us))
    }

    /// Value at quantile `q` in 0..=1, in µs (0 when empty).
    pub fn quantile_us(&self, q: f64) -> u64 {
        self.view().map_or(0, |h| h.value_at_quantile(q))
    }

    /// HdrHistogram V2 bytes (an empty histogram is encoded too, so every
    /// reader of the format can read every value we write).
    pub fn encode(&self) -> Result<Vec<u8>, HistogramError> {
        // Rebuilt from the recorded buckets in order: the V2 header carries
        // the highest trackable value, which auto-resize takes from
        // whichever sample grew the histogram last, so the same samples
        // recorded or merged in another order would encode differently
        // (and two equal reports would not compare equal).
        let entries: Vec<(u64, u64)> = self.recorded().collect();
        let h = densify::<P>(&entries);
        let mut buf = Vec::with_capacity(64);
        V2Serializer::new()
            .serialize(&h, &mut buf)
            .map_err(|e| HistogramError::Encode(format!("{e:?}")))?;
        Ok(buf)
    }

    /// Decodes plain V2 bytes, which may come from the network: the header
    /// is checked (`v2::read_header`) before anything is allocated. A
    /// histogram of our own layout and precision is kept as its list of
    /// buckets (`Repr::Sparse`); another is recorded into one of ours.
    /// Empty input is an empty histogram.
    pub fn decode(bytes: &[u8]) -> Result<Self, HistogramError> {
        if bytes.is_empty() {
            return Ok(Self::new());
        }
        let encoded = v2::read_header(bytes)?;
        if !encoded.is_plain() {
            return Self::decode_other(bytes);
        }
        let layout = Layout::new(encoded.digits);
        // Each count at the highest value of its bucket, as `recorded()`
        // reads them.
        let highest_of = |index: usize| layout.value_at(index + 1) - 1;
        let max_count = P::Count::max_value().as_u64();
        let mut entries = Vec::new();
        for count in encoded.counts(layout) {
            let (index, n) = count?;
            entries.push((highest_of(index), n.min(max_count)));
        }
        let same_buckets = encoded.digits == u32::from(P::SIGNIFICANT_DIGITS);
        // Index 0 (the value 0) and values past the range are recorded
        // clamped, so into another bucket: only dense records them so.
        let within = entries.first().is_none_or(|e| e.0 >= 1)
            && entries.last().is_none_or(|e| e.0 <= MAX_LATENCY_US);
        let repr = if entries.is_empty() {
            Repr::Empty
        } else if same_buckets && within {
            Repr::Sparse(entries)
        } else {
            Repr::Dense(densify::<P>(&entries))
        };
        Ok(Self {
            repr,
            precision: PhantomData,
        })
    }

    /// A V2 histogram with another lowest value or value ratio than ours
    /// (written by another tool): through `hdrhistogram`'s deserializer.
    fn decode_other(bytes: &[u8]) -> Result<Self, HistogramError> {
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

    fn counters<P: Precision>(h: &Hdr<P>) -> usize {
        match &h.repr {
            Repr::Dense(h) => h.distinct_values(),
            other => panic!("not dense: {other:?}"),
        }
    }

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
            matches!(LatencyHistogram::new().repr, Repr::Empty),
            "empty costs nothing"
        );
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
        let (counters, exact) = (counters(&c), counters(&e));
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
            (forged(0, &v2::V2_DEFLATE_COOKIE.to_be_bytes()), "deflate"),
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

    #[test]
    fn payloads_cut_short_or_running_past_the_range_are_errors() {
        let bytes = hist(&[100, 2_000, 90_000]).encode().unwrap();
        // Cut inside the last number, with the payload length to match.
        let mut cut = bytes.clone();
        let last = cut.len() - 1;
        cut[last - 1] |= 0x80;
        cut[last] |= 0x80;
        let err = LatencyHistogram::decode(&cut).unwrap_err().to_string();
        assert!(err.contains("ends inside a number"), "{err}");
        // A zero run that jumps past every index a histogram has, then a count.
        let mut far = bytes[..40].to_vec();
        let run: i64 = -(1 << 20);
        let mut zz = ((run << 1) ^ (run >> 63)) as u64;
        let mut payload = Vec::new();
        while zz >= 0x80 {
            payload.push((zz as u8) | 0x80);
            zz >>= 7;
        }
        payload.push(zz as u8);
        payload.push(2); // zig-zag 1: one count
        far[4..8].copy_from_slice(&(payload.len() as u32).to_be_bytes());
        far.extend_from_slice(&payload);
        let err = LatencyHistogram::decode(&far).unwrap_err().to_string();
        assert!(err.contains("counts run past"), "{err}");
    }

    #[test]
    fn a_decoded_histogram_is_its_buckets_until_recorded_into() {
        let small = hist(&[3, 900, 900, 15_000]);
        let mut back = LatencyHistogram::decode(&small.encode().unwrap()).unwrap();
        assert!(
            matches!(&back.repr, Repr::Sparse(e) if e.len() == 3),
            "{:?}",
            back.repr
        );
        assert_eq!(back, small);
        assert_eq!(
            (back.len(), back.max_us(), back.quantile_us(0.5)),
            (small.len(), small.max_us(), small.quantile_us(0.5))
        );
        let mut merged = hist(&[40]);
        merged.merge(&back);
        assert_eq!(merged.len(), 5);
        assert_eq!(merged.max_us(), small.max_us());
        back.record_us(7);
        assert!(matches!(back.repr, Repr::Dense(_)));
        assert!(
            counters(&back) <= counters(&small),
            "{} vs {}",
            counters(&back),
            counters(&small)
        );
        assert_eq!(back.len(), 5);
        back.reset();
        assert!(back.is_empty());
    }

    #[test]
    fn decoded_histograms_merge_as_bucket_lists_up_to_a_bound() {
        let compact = |samples: &[u64]| {
            let mut h = CompactHistogram::new();
            for &us in samples {
                h.record_us(us);
            }
            h
        };
        let through_wire = |samples: &[u64]| {
            CompactHistogram::decode(&compact(samples).encode().unwrap()).unwrap()
        };
        let mut sum = through_wire(&[100, 5_000, 5_000]);
        sum.merge(&through_wire(&[5_000, 70, 2_000_000]));
        assert!(
            matches!(&sum.repr, Repr::Sparse(e) if e.len() == 4),
            "{:?}",
            sum.repr
        );
        assert_eq!(sum, compact(&[100, 5_000, 5_000, 5_000, 70, 2_000_000]));
        assert_eq!(sum.max_us(), compact(&[2_000_000]).max_us());
        // Past the bound the sum is dense, and the same histogram.
        // 1 to 300 µs: more distinct buckets than the bound at 2 digits.
        let many: Vec<u64> = (1..=300).collect();
        let mut big = through_wire(&many);
        big.merge(&through_wire(&[3]));
        assert!(matches!(big.repr, Repr::Dense(_)));
        let mut all = many.clone();
        all.push(3);
        assert_eq!(big, compact(&all));
        // Per-user sums keep recorded ones as lists too; full-precision ones add counters.
        let mut user = CompactHistogram::new();
        user.merge(&compact(&[100, 100, 9_000]));
        user.merge(&compact(&[9_000, 40]));
        assert!(
            matches!(&user.repr, Repr::Sparse(e) if e.len() == 3),
            "{:?}",
            user.repr
        );
        assert_eq!(user, compact(&[100, 100, 9_000, 9_000, 40]));
        let mut series = LatencyHistogram::new();
        series.merge(&hist(&[100, 9_000]));
        assert!(matches!(series.repr, Repr::Dense(_)));
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

        /// A valid header over any payload: an error or a histogram that
        /// re-encodes to itself, never a panic (as fuzz/histogram_decode).
        #[test]
        fn any_payload_decodes_or_fails_cleanly(
            payload in proptest::collection::vec(any::<u8>(), 0..400),
            digits in 1u32..=3,
        ) {
            let mut bytes = hist(&[100]).encode().unwrap()[..40].to_vec();
            bytes[4..8].copy_from_slice(&(payload.len() as u32).to_be_bytes());
            bytes[12..16].copy_from_slice(&digits.to_be_bytes());
            bytes.extend_from_slice(&payload);
            if let Ok(h) = LatencyHistogram::decode(&bytes) {
                let again = LatencyHistogram::decode(&h.encode().unwrap()).unwrap();
                prop_assert_eq!(&again, &h);
                prop_assert_eq!(again.len(), h.len());
            }
            // u32 counters: buckets that fold into one (values clamped, or
            // another precision) may saturate it, and hdrhistogram then
            // counts more than it holds; what holds is no panic.
            if let Ok(h) = CompactHistogram::decode(&bytes) {
                prop_assert!(h.encode().is_ok());
            }
        }

        #[test]
        fn direct_decoding_agrees_with_hdrhistograms_deserializer(
            samples in proptest::collection::vec(1u64..4_000_000_000, 0..300)
        ) {
            let exact = hist(&samples);
            let bytes = exact.encode().unwrap();
            prop_assert_eq!(LatencyHistogram::decode(&bytes).unwrap(), LatencyHistogram::decode_other(&bytes).unwrap());
            prop_assert_eq!(CompactHistogram::decode(&bytes).unwrap(), CompactHistogram::decode_other(&bytes).unwrap());
            let mut compact = CompactHistogram::new();
            compact.merge_from(&exact);
            let bytes = compact.encode().unwrap();
            let back = CompactHistogram::decode(&bytes).unwrap();
            prop_assert_eq!(&back, &CompactHistogram::decode_other(&bytes).unwrap());
            prop_assert_eq!(&back, &compact);
        }

        #[test]
        fn per_user_sums_equal_recording_all(
            parts in proptest::collection::vec(proptest::collection::vec(1u64..100_000_000, 0..120), 1..8)
        ) {
            let compact = |samples: &[u64]| {
                let mut h = CompactHistogram::new();
                for &us in samples {
                    h.record_us(us);
                }
                h
            };
            let all: Vec<u64> = parts.iter().flatten().copied().collect();
            let whole = compact(&all);
            // Recorded parts (an agent's deltas into its cumulative set) and
            // decoded ones (the controller's), alternately.
            let mut sum = CompactHistogram::new();
            for (i, p) in parts.iter().enumerate() {
                let part = compact(p);
                if i % 2 == 0 {
                    sum.merge(&part);
                } else {
                    sum.merge(&CompactHistogram::decode(&part.encode().unwrap()).unwrap());
                }
            }
            prop_assert_eq!(&sum, &whole);
            prop_assert_eq!(sum.encode().unwrap(), whole.encode().unwrap());
            prop_assert_eq!(sum.quantile_us(0.99), whole.quantile_us(0.99));
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
