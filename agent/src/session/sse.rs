//! An incremental `text/event-stream` reader for the answer to one POST:
//! bytes go in as they arrive, the data of each complete `message` event
//! comes out; `id`, `retry`, comments and other event types are skipped.

use std::ops::Range;

/// The data of one event: a range of the buffer when it had one `data:`
/// line (the usual case, no copy), else the lines joined with `\n`.
#[derive(Debug, PartialEq, Eq)]
pub enum Data {
    Slice(Range<usize>),
    Joined(Vec<u8>),
}

impl Data {
    pub fn bytes<'a>(&'a self, buf: &'a [u8]) -> &'a [u8] {
        match self {
            Data::Slice(r) => &buf[r.clone()],
            Data::Joined(v) => v,
        }
    }
}

/// Parser state over a growing buffer the caller owns.
#[derive(Debug, Default)]
pub struct SseReader {
    /// Where the next unread line starts.
    pos: usize,
    /// Data lines of the event being read.
    data: Option<Data>,
    /// The event being read named a type other than `message`.
    other_type: bool,
}

impl SseReader {
    /// The next complete event's data in `buf[..]`, reading on from where
    /// the last call stopped. `eof` says no more bytes will come, so a
    /// last line without a terminator and an event without its blank line
    /// still count.
    pub fn next_event(&mut self, buf: &[u8], eof: bool) -> Option<Data> {
        loop {
            let rest = &buf[self.pos..];
            let (line_len, term_len) = match memchr::memchr2(b'\n', b'\r', rest) {
                Some(i) if rest[i] == b'\r' => match rest.get(i + 1) {
                    Some(b'\n') => (i, 2),
                    Some(_) => (i, 1),
                    // A `\r` at the end may be half of `\r\n`: wait for the next byte.
                    None if !eof => return None,
                    None => (i, 1),
                },
                Some(i) => (i, 1),
                None if eof && !rest.is_empty() => (rest.len(), 0),
                None if eof => return self.dispatch(),
                None => return None,
            };
            let start = self.pos;
            self.pos += line_len + term_len;
            if line_len == 0 {
                if let Some(data) = self.dispatch() {
                    return Some(data);
                }
                continue;
            }
            self.field(buf, start..start + line_len);
        }
    }

    /// Whether everything in a buffer of `len` bytes has been read and no
    /// event is half-read, so the buffer may start over.
    pub fn at_boundary(&self, len: usize) -> bool {
        self.pos == len && self.data.is_none() && !self.other_type
    }

    /// Ends the current event; its data if it was a `message` with data.
    fn dispatch(&mut self) -> Option<Data> {
        let data = self.data.take();
        let other = std::mem::take(&mut self.other_type);
        if other { None } else { data }
    }

    fn field(&mut self, buf: &[u8], line: Range<usize>) {
        let text = &buf[line.clone()];
        if text[0] == b':' {
            return; // a comment (keep-alive)
        }
        let (name, value) = match memchr::memchr(b':', text) {
            Some(i) => {
                let skip = if text.get(i + 1) == Some(&b' ') { 2 } else { 1 };
                (&text[..i], line.start + i + skip..line.end)
            }
            None => (text, line.end..line.end),
        };
        match name {
            b"data" => {
                self.data = Some(match self.data.take() {
                    None => Data::Slice(value),
                    Some(earlier) => {
                        let mut joined = earlier.bytes(buf).to_vec();
                        joined.push(b'\n');
                        joined.extend_from_slice(&buf[value]);
                        Data::Joined(joined)
                    }
                });
            }
            b"event" => self.other_type = &buf[value] != b"message",
            // `id` and `retry` matter for resuming a stream, which we do not do.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one after another and collects every event's data.
    fn check(chunks: &[&str], expected: &[&str]) {
        let mut buf = Vec::new();
        let mut reader = SseReader::default();
        let mut got = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            buf.extend_from_slice(chunk.as_bytes());
            let eof = i + 1 == chunks.len();
            while let Some(data) = reader.next_event(&buf, eof) {
                got.push(String::from_utf8(data.bytes(&buf).to_vec()).unwrap());
            }
        }
        assert_eq!(got, expected, "{chunks:?}");
    }

    #[test]
    fn reads_events_across_chunks_and_line_endings() {
        // rmcp's shape: a priming event (id, retry, empty data) then the message.
        check(
            &[
                "id: 0/0\nretry: 3000\ndata: \n\n",
                "data: {\"id\":1}\nid: 0/1\n\n",
            ],
            &["", "{\"id\":1}"],
        );
        check(&["data: a\r\n\r\ndata: b\r\r"], &["a", "b"]);
        // A `\r\n` split across chunks is one line ending, not two.
        check(&["data: a\r", "\n\r\n"], &["a"]);
        check(&["da", "ta:x", "yz\n", "\n"], &["xyz"]);
        // Several data lines join with `\n`; a missing space after the colon is fine.
        check(&["data:{\ndata: \"a\":1}\n\n"], &["{\n\"a\":1}"]);
        // Comments, unknown fields and other event types are skipped.
        check(
            &[": ping\n\nevent: endpoint\ndata: /x\n\nfoo: bar\nevent: message\ndata: m\n\n"],
            &["m"],
        );
        // No data, no event; an event cut off by the end of the stream still counts.
        check(&["id: 5\n\n", "data: last"], &["last"]);
        check(&[""], &[]);
    }
}
