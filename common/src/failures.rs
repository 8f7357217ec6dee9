//! Failure samples: per workflow, step and error kind, up to
//! `MESSAGES_PER_KEY` distinct messages as the target sent them, redacted and
//! bounded, so a report says *why* calls failed. Counts live in the series;
//! this holds only the words.
//!
//! Agents keep a `FailureBook` of what they already sent and send each new
//! message once, at most `MAX_SAMPLES_PER_MESSAGE` per interval; the
//! controller refuses (and counts) what goes past the same bounds.

use std::collections::BTreeMap;

use crate::error_kind::ErrorKind;
use crate::proto;
use crate::secret::redact_secrets;

/// Distinct messages kept per workflow, step and kind.
pub const MESSAGES_PER_KEY: usize = 3;
/// Longest message kept, in bytes (cut at a character boundary, then `…`).
pub const MESSAGE_BYTES: usize = 300;
/// Longest workflow or step name accepted from the wire.
pub const NAME_BYTES: usize = 200;
/// Most (workflow, step, kind) keys one book holds: scenarios have far fewer.
pub const MAX_KEYS: usize = 1024;
/// Most samples one interval or final report carries.
pub const MAX_SAMPLES_PER_MESSAGE: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FailureKey {
    pub workflow: String,
    pub step: String,
    pub kind: ErrorKind,
}

impl FailureKey {
    pub fn new(workflow: &str, step: &str, kind: ErrorKind) -> Self {
        Self {
            workflow: workflow.to_owned(),
            step: step.to_owned(),
            kind,
        }
    }
}

/// One message of one key, as it crosses the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureSample {
    pub key: FailureKey,
    pub message: String,
}

/// Why `FailureBook::add` did not keep a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// Kept; `first` when it is the key's first message.
    New { first: bool },
    /// Already known, or the key has its `MESSAGES_PER_KEY`.
    Known,
    /// The book is at `MAX_KEYS`.
    Full,
}

/// Up to `MESSAGES_PER_KEY` distinct, cleaned messages per key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FailureBook {
    entries: BTreeMap<FailureKey, Vec<String>>,
    /// Samples refused: past a message's sample bound, an unknown kind, too
    /// long a name, or a full book.
    pub refused: u64,
}

/// `text` redacted, on one line and at most `MESSAGE_BYTES` long.
pub fn clean_message(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut clean = redact_secrets(&one_line);
    if clean.len() > MESSAGE_BYTES {
        let mut cut = MESSAGE_BYTES - '…'.len_utf8();
        while !clean.is_char_boundary(cut) {
            cut -= 1;
        }
        clean.truncate(cut);
        clean.push('…');
    }
    clean
}

impl FailureBook {
    /// Adds an already cleaned message.
    pub fn add(&mut self, key: &FailureKey, message: &str) -> Added {
        let n_keys = self.entries.len();
        match self.entries.get_mut(key) {
            Some(messages) => {
                if messages.len() >= MESSAGES_PER_KEY || messages.iter().any(|m| m == message) {
                    return Added::Known;
                }
                messages.push(message.to_owned());
                Added::New { first: false }
            }
            None if n_keys >= MAX_KEYS => Added::Full,
            None => {
                self.entries.insert(key.clone(), vec![message.to_owned()]);
                Added::New { first: true }
            }
        }
    }

    /// Whether `key` needs no more messages (the agent's fast path: no
    /// message is formatted or cleaned for a key that is full).
    pub fn is_full(&self, key: &FailureKey) -> bool {
        self.entries
            .get(key)
            .is_some_and(|m| m.len() >= MESSAGES_PER_KEY)
    }

    pub fn messages(&self, key: &FailureKey) -> &[String] {
        self.entries.get(key).map_or(&[], Vec::as_slice)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&FailureKey, &[String])> {
        self.entries.iter().map(|(k, v)| (k, v.as_slice()))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds another book's messages (and refusals), within the bounds.
    /// Returns the keys that got their first message.
    pub fn merge(&mut self, other: &FailureBook) -> Vec<FailureKey> {
        let mut firsts = Vec::new();
        for (key, messages) in other.iter() {
            for m in messages {
                match self.add(key, m) {
                    Added::New { first: true } => firsts.push(key.clone()),
                    Added::New { first: false } | Added::Known => {}
                    Added::Full => self.refused += 1,
                }
            }
        }
        self.refused += other.refused;
        firsts
    }

    /// Adds samples from the wire: at most `MAX_SAMPLES_PER_MESSAGE` of them,
    /// each cleaned again (a peer is not trusted to have done it); the rest,
    /// unknown kinds and overlong names are refused and counted. Returns the
    /// keys that got their first message (for the operator's log).
    pub fn merge_proto(&mut self, samples: &[proto::FailureSample]) -> Vec<FailureKey> {
        let mut firsts = Vec::new();
        for (i, s) in samples.iter().enumerate() {
            let kind = ErrorKind::from_proto(s.kind);
            let (Some(kind), true, true) = (
                kind,
                i < MAX_SAMPLES_PER_MESSAGE,
                s.workflow.len() <= NAME_BYTES && s.step.len() <= NAME_BYTES,
            ) else {
                self.refused += 1;
                continue;
            };
            let key = FailureKey::new(&s.workflow, &s.step, kind);
            match self.add(&key, &clean_message(&s.message)) {
                Added::New { first: true } => firsts.push(key),
                Added::New { first: false } | Added::Known => {}
                Added::Full => self.refused += 1,
            }
        }
        firsts
    }
}

/// Samples in wire form, at most `MAX_SAMPLES_PER_MESSAGE`.
pub fn samples_to_proto(samples: &[FailureSample]) -> Vec<proto::FailureSample> {
    samples
        .iter()
        .take(MAX_SAMPLES_PER_MESSAGE)
        .map(|s| proto::FailureSample {
            workflow: s.key.workflow.clone(),
            step: s.key.step.clone(),
            kind: s.key.kind.to_proto() as i32,
            message: s.message.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(step: &str, kind: ErrorKind, message: &str) -> proto::FailureSample {
        proto::FailureSample {
            workflow: "wf".into(),
            step: step.into(),
            kind: kind.to_proto() as i32,
            message: message.into(),
        }
    }

    #[test]
    fn messages_are_cleaned_and_bounded() {
        assert_eq!(clean_message("HTTP 503:\n  busy"), "HTTP 503: busy");
        let long = clean_message(&"é".repeat(400));
        assert!(long.len() <= MESSAGE_BYTES, "{}", long.len());
        assert!(long.ends_with('…'));
        assert_eq!(clean_message("token=abc"), "token=***");
    }

    #[test]
    fn a_key_keeps_three_distinct_messages() {
        let mut book = FailureBook::default();
        let key = FailureKey::new("wf", "s", ErrorKind::Tool);
        assert_eq!(book.add(&key, "a"), Added::New { first: true });
        assert_eq!(book.add(&key, "a"), Added::Known);
        assert_eq!(book.add(&key, "b"), Added::New { first: false });
        assert!(!book.is_full(&key));
        book.add(&key, "c");
        assert!(book.is_full(&key));
        assert_eq!(book.add(&key, "d"), Added::Known);
        assert_eq!(book.messages(&key), ["a", "b", "c"]);
    }

    #[test]
    fn the_wire_is_bounded_and_counted() {
        let mut book = FailureBook::default();
        let mut samples: Vec<_> = (0..MAX_SAMPLES_PER_MESSAGE + 5)
            .map(|i| wire(&format!("s{i}"), ErrorKind::Http5xx, "HTTP 503"))
            .collect();
        samples.push(proto::FailureSample {
            kind: 999,
            ..wire("x", ErrorKind::Tool, "m")
        });
        let firsts = book.merge_proto(&samples);
        assert_eq!(firsts.len(), MAX_SAMPLES_PER_MESSAGE);
        assert_eq!(book.refused, 6);
        let long_name = wire(&"n".repeat(NAME_BYTES + 1), ErrorKind::Tool, "m");
        let secret = wire("s0", ErrorKind::Http5xx, "Bearer abc.def");
        let firsts = book.merge_proto(&[long_name, secret]);
        assert!(firsts.is_empty());
        assert_eq!(book.refused, 7);
        let key = FailureKey::new("wf", "s0", ErrorKind::Http5xx);
        assert_eq!(book.messages(&key), ["HTTP 503", "Bearer ***"]);
    }

    #[test]
    fn merging_books_keeps_the_bounds() {
        let key = FailureKey::new("wf", "s", ErrorKind::Expectation);
        let mut a = FailureBook::default();
        a.add(&key, "x");
        a.add(&key, "y");
        let mut b = FailureBook::default();
        b.add(&key, "y");
        b.add(&key, "z");
        b.add(&key, "w");
        b.refused = 2;
        a.merge(&b);
        assert_eq!(a.messages(&key), ["x", "y", "z"]);
        assert_eq!(a.refused, 2);
    }
}
