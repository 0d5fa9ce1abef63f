//! Bounded capture of a command's output: past the cap, the head and the tail are kept with a
//! marker between them, so memory stays flat however much a process prints.

use std::collections::VecDeque;
use std::io;

use async_trait::async_trait;

use super::exec::{OutputSink, Stream};

/// What a tool keeps of each stream unless its `max_output_size` option says otherwise.
pub const DEFAULT_MAX_OUTPUT: usize = 1024 * 1024;

/// One stream, capped at `limit` bytes: the first half and the last half of what was written.
#[derive(Debug)]
pub struct Capped {
    limit: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
}

impl Capped {
    pub fn new(limit: usize) -> Self {
        let limit = limit.max(2);
        Capped {
            limit,
            head: Vec::new(),
            tail: VecDeque::new(),
            total: 0,
        }
    }

    fn head_cap(&self) -> usize {
        self.limit - self.limit / 2
    }

    fn tail_cap(&self) -> usize {
        self.limit / 2
    }

    pub fn push(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        let room = self.head_cap().saturating_sub(self.head.len());
        let take = room.min(data.len());
        self.head.extend_from_slice(&data[..take]);
        data = &data[take..];
        if data.is_empty() {
            return;
        }
        let cap = self.tail_cap();
        if data.len() >= cap {
            self.tail.clear();
            self.tail.extend(&data[data.len() - cap..]);
            return;
        }
        let overflow = (self.tail.len() + data.len()).saturating_sub(cap);
        self.tail.drain(..overflow);
        self.tail.extend(data);
    }

    /// Bytes written so far, kept or not.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes held in memory right now (never more than the limit).
    pub fn held(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    pub fn is_truncated(&self) -> bool {
        self.total > self.held() as u64
    }

    /// Everything kept, with a marker where bytes were dropped; `true` when something was.
    pub fn into_bytes(self) -> (Vec<u8>, bool) {
        let truncated = self.is_truncated();
        let Capped {
            limit,
            mut head,
            tail,
            total,
        } = self;
        let mut tail: Vec<u8> = tail.into();
        if !truncated {
            head.extend_from_slice(&tail);
            return (head, false);
        }
        // Never leave half a UTF-8 character on either side of the cut.
        head.truncate(complete_utf8_prefix(&head));
        let skip = tail
            .iter()
            .take(3)
            .take_while(|b| is_continuation(**b))
            .count();
        tail.drain(..skip);
        let omitted = total - (head.len() + tail.len()) as u64;
        let marker = format!(
            "\n[... {omitted} bytes omitted: output is capped at {limit} bytes \
             (the `max_output_size` tool option) ...]\n"
        );
        head.extend_from_slice(marker.as_bytes());
        head.extend_from_slice(&tail);
        (head, true)
    }

    /// As text (invalid UTF-8 replaced), decoded once at the end so characters split across
    /// chunks survive.
    pub fn into_text(self) -> (String, bool) {
        let (bytes, truncated) = self.into_bytes();
        let text = match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        (text, truncated)
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0b1100_0000 == 0b1000_0000
}

/// Length of `bytes` without a trailing incomplete UTF-8 sequence.
fn complete_utf8_prefix(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=4.min(len) {
        let b = bytes[len - back];
        if is_continuation(b) {
            continue;
        }
        let need = match b {
            0x00..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => return len,
        };
        return if back < need { len - back } else { len };
    }
    len
}

/// Both streams of one command.
#[derive(Debug)]
pub struct Capture {
    pub stdout: Capped,
    pub stderr: Capped,
}

impl Capture {
    pub fn new(limit: usize) -> Self {
        Capture {
            stdout: Capped::new(limit),
            stderr: Capped::new(limit),
        }
    }
}

#[async_trait]
impl OutputSink for Capture {
    async fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        match stream {
            Stream::Stdout => self.stdout.push(data),
            Stream::Stderr => self.stderr.push(data),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_output_is_kept_whole() {
        let mut c = Capped::new(100);
        c.push(b"hello ");
        c.push(b"world");
        assert_eq!(c.into_text(), ("hello world".to_string(), false));
    }

    #[test]
    fn exactly_the_limit_is_not_truncated() {
        let mut c = Capped::new(10);
        c.push(b"0123456789");
        assert_eq!(c.into_text(), ("0123456789".to_string(), false));
    }

    #[test]
    fn past_the_cap_head_and_tail_survive_with_a_marker() {
        let mut c = Capped::new(10);
        for chunk in [&b"abc"[..], b"defgh", b"ijklmnop", b"qrstuvwxyz"] {
            c.push(chunk);
        }
        assert_eq!(c.total(), 26);
        let (text, truncated) = c.into_text();
        assert!(truncated);
        assert!(text.starts_with("abcde\n[... 16 bytes omitted"), "{text}");
        assert!(text.ends_with("...]\nvwxyz"), "{text}");
    }

    #[test]
    fn memory_stays_bounded_under_a_flood() {
        let mut c = Capped::new(1000);
        let chunk = vec![b'y'; 64 * 1024];
        for _ in 0..2000 {
            c.push(&chunk);
            assert!(c.held() <= 1000);
        }
        assert_eq!(c.total(), 2000 * 64 * 1024);
        let (bytes, truncated) = c.into_bytes();
        assert!(truncated);
        assert!(bytes.len() < 1200, "{}", bytes.len());
    }

    #[test]
    fn cuts_never_split_a_character() {
        let mut c = Capped::new(9);
        // "é" is two bytes; the head cap (5) falls inside the third one.
        c.push("ééééééééé".as_bytes());
        let (text, truncated) = c.into_text();
        assert!(truncated);
        assert!(!text.contains('\u{fffd}'), "{text:?}");
        assert!(text.starts_with("éé\n"), "{text:?}");
        assert!(text.ends_with("]\néé"), "{text:?}");
    }

    #[test]
    fn characters_split_across_chunks_decode() {
        let bytes = "→x".as_bytes();
        let mut c = Capped::new(100);
        for b in bytes {
            c.push(&[*b]);
        }
        assert_eq!(c.into_text().0, "→x");
    }

    #[test]
    fn utf8_prefix() {
        assert_eq!(complete_utf8_prefix(b"ab"), 2);
        assert_eq!(complete_utf8_prefix("aé".as_bytes()), 3);
        assert_eq!(complete_utf8_prefix(&"aé".as_bytes()[..2]), 1);
        assert_eq!(complete_utf8_prefix(&"a→".as_bytes()[..3]), 1);
        assert_eq!(complete_utf8_prefix(&[0xff, 0xfe]), 2);
    }
}
