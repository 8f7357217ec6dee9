//! Reading HdrHistogram V2 bytes straight into counts: the header checked
//! before anything is allocated, then `(index, count)` pairs streamed off the
//! zig-zag LEB128 payload. The controller decodes thousands of histograms a
//! second; going through `hdrhistogram`'s deserializer built a second
//! histogram (and a payload buffer) per decode only to copy it.

use super::HistogramError;

/// HdrHistogram's V2 cookie (plain) and V2+deflate cookie.
pub(super) const V2_COOKIE: u32 = 0x1c84_9313;
pub(super) const V2_DEFLATE_COOKIE: u32 = 0x1c84_9314;
const V2_HEADER_BYTES: usize = 40;
/// The most significant digits a decoded histogram may declare.
const MAX_DECODED_DIGITS: u32 = 3;
/// The highest trackable value a decoded histogram may declare: far above
/// `MAX_LATENCY_US` (auto-resize rounds up to a bucket boundary), and low
/// enough that its counters stay within a few hundred KiB.
pub(super) const MAX_DECODED_HIGHEST_US: u64 = 1 << 40;

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

fn bad<T>(why: String) -> Result<T, HistogramError> {
    Err(HistogramError::Decode(why))
}

/// A checked V2 header and its payload.
#[derive(Debug)]
pub(super) struct Encoded<'a> {
    pub digits: u32,
    pub lowest: u64,
    normalizing_offset: u32,
    ratio_bits: u64,
    payload: &'a [u8],
}

/// Refuses a V2 header whose payload length, precision or range would make a
/// decoder allocate more than a histogram of ours ever needs (a 40-byte
/// header can otherwise ask for gigabytes), and deflated payloads (a small
/// one can inflate to any size; we never send them).
pub(super) fn read_header(bytes: &[u8]) -> Result<Encoded<'_>, HistogramError> {
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
    Ok(Encoded {
        digits,
        lowest,
        normalizing_offset: be_u32(bytes, 8),
        ratio_bits: be_u64(bytes, 32),
        payload: &bytes[V2_HEADER_BYTES..V2_HEADER_BYTES + payload],
    })
}

/// Where a histogram of lowest value 1 and `digits` significant digits keeps
/// each value: HdrHistogram's bucket layout, for turning indexes back into
/// values without building the histogram they came from.
#[derive(Clone, Copy, Debug)]
pub(super) struct Layout {
    /// log2 of half the sub-buckets of a bucket.
    half_magnitude: u32,
    /// Indexes a histogram up to `MAX_DECODED_HIGHEST_US` has.
    len: usize,
}

impl Layout {
    pub fn new(digits: u32) -> Layout {
        // The smallest power of two above 2 × 10^digits sub-buckets.
        let largest_single_unit = 2 * 10u64.pow(digits);
        let sub_bucket_count = largest_single_unit.next_power_of_two();
        let half_magnitude = sub_bucket_count.trailing_zeros() - 1;
        let half = 1usize << half_magnitude;
        // Buckets to cover MAX_DECODED_HIGHEST_US: each doubles the range.
        let mut buckets = 1;
        let mut untrackable = sub_bucket_count;
        while untrackable <= MAX_DECODED_HIGHEST_US {
            untrackable <<= 1;
            buckets += 1;
        }
        Layout {
            half_magnitude,
            len: (buckets + 1) * half,
        }
    }

    /// The lowest value counted at `index` (`hdrhistogram`'s `value_for`).
    pub fn value_at(self, index: usize) -> u64 {
        let half = 1u64 << self.half_magnitude;
        let bucket = (index >> self.half_magnitude) as u64;
        let sub = (index as u64 & (half - 1)) + half;
        if bucket == 0 {
            sub - half
        } else {
            sub << (bucket - 1)
        }
    }
}

impl<'a> Encoded<'a> {
    /// Whether the counts can be read by index with `Layout` (what every
    /// histogram of ours is: lowest 1, no offset, integer values).
    pub fn is_plain(&self) -> bool {
        self.lowest == 1 && self.normalizing_offset == 0 && f64::from_bits(self.ratio_bits) == 1.0
    }

    /// Every non-zero count with its index, in index order; an index past
    /// `layout` or a payload cut inside a number is an error.
    pub fn counts(&self, layout: Layout) -> Counts<'a> {
        Counts {
            payload: self.payload,
            at: 0,
            index: 0,
            len: layout.len,
        }
    }
}

pub(super) struct Counts<'a> {
    payload: &'a [u8],
    at: usize,
    index: usize,
    len: usize,
}

impl Counts<'_> {
    /// LEB128 with HdrHistogram's 9-byte form (the ninth byte is whole).
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..9 {
            let b = *self.payload.get(self.at)?;
            self.at += 1;
            if i == 8 {
                return Some(value | (u64::from(b) << 56));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        Some(value)
    }
}

impl Iterator for Counts<'_> {
    type Item = Result<(usize, u64), HistogramError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.at < self.payload.len() {
            let Some(zz) = self.varint() else {
                return Some(bad("the payload ends inside a number".into()));
            };
            let n = ((zz >> 1) as i64) ^ -((zz & 1) as i64);
            if n < 0 {
                // A run of zero counts.
                self.index = self
                    .index
                    .saturating_add(usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX));
                continue;
            }
            let index = self.index;
            self.index += 1;
            if index >= self.len {
                self.at = self.payload.len();
                return Some(bad(format!(
                    "counts run past the {} a histogram up to {MAX_DECODED_HIGHEST_US} µs has",
                    self.len
                )));
            }
            if n > 0 {
                return Some(Ok((index, n as u64)));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::Histogram;

    #[test]
    fn layout_agrees_with_hdrhistogram() {
        for digits in 1..=3u8 {
            let layout = Layout::new(u32::from(digits));
            let h = Histogram::<u64>::new_with_bounds(1, MAX_DECODED_HIGHEST_US, digits).unwrap();
            assert_eq!(layout.len, h.distinct_values(), "digits {digits}");
            for value in [
                1,
                2,
                99,
                100,
                1_000,
                2_047,
                2_048,
                4_097,
                65_537,
                3_600_000_000,
            ] {
                let lowest = h.lowest_equivalent(value);
                // The index of `value` is where the value_at of its lowest equivalent lands.
                let index = (0..layout.len)
                    .find(|&i| layout.value_at(i) == lowest)
                    .unwrap_or_else(|| panic!("no index for {value} at {digits} digits"));
                assert!(
                    layout.value_at(index + 1) > value,
                    "{value} at {digits} digits"
                );
            }
        }
    }
}
