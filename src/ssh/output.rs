//! What a host sends back, bounded and made safe to show.
//!
//! Owns two things: `Capture`, which keeps at most the first and last `limit`
//! bytes of a stream (the middle is counted and dropped, so a host printing
//! gigabytes costs a fixed amount of memory), and `clean`, the one function
//! that turns remote bytes into text fit for a terminal, a log line or JSON.
//! It does not decide what to run or how to read a channel (that is `ssh`).

use std::collections::VecDeque;

/// Bytes kept from each end of a remote command's stdout and stderr.
pub const DEFAULT_LIMIT: usize = 64 * 1024;

/// A byte stream with its head and tail kept and its middle counted.
#[derive(Debug, Clone)]
pub struct Capture {
    limit: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
}

impl Capture {
    pub fn new(limit: usize) -> Capture {
        Capture {
            limit,
            head: Vec::new(),
            tail: VecDeque::new(),
            total: 0,
        }
    }

    pub fn push(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        let room = self.limit - self.head.len();
        if room > 0 {
            let n = room.min(data.len());
            self.head.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        if data.len() >= self.limit {
            self.tail.clear();
            self.tail.extend(&data[data.len() - self.limit..]);
            return;
        }
        let overflow = (self.tail.len() + data.len()).saturating_sub(self.limit);
        self.tail.drain(..overflow);
        self.tail.extend(data);
    }

    /// Bytes received but not kept.
    pub fn cut(&self) -> u64 {
        self.total - (self.head.len() + self.tail.len()) as u64
    }

    /// The kept bytes, exactly, when nothing was cut; else head and tail
    /// around a marker line saying how much was dropped.
    pub fn into_bytes(self) -> Vec<u8> {
        let cut = self.cut();
        let mut out = self.head;
        if cut > 0 {
            out.extend_from_slice(format!("\n… {cut} bytes cut …\n").as_bytes());
        }
        out.extend(self.tail);
        out
    }
}

/// Remote bytes as text safe to print: invalid UTF-8 becomes U+FFFD, and
/// control characters other than newline and tab (C0, DEL, C1, and the
/// bidirectional overrides that reorder what a reader sees) become visible
/// escapes such as `\x1b` or `\u{202e}`. A CR before a newline is dropped.
pub fn clean(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\t' => out.push(c),
            '\r' if chars.peek() == Some(&'\n') => {}
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            '\u{80}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_head_and_tail_and_counts_the_rest() {
        let mut c = Capture::new(4);
        c.push(b"ab");
        c.push(b"cdefgh");
        c.push(b"ijklmnopq");
        c.push(b"rs");
        assert_eq!(c.cut(), 19 - 8);
        assert_eq!(
            c.into_bytes(),
            b"abcd\n\xe2\x80\xa6 11 bytes cut \xe2\x80\xa6\npqrs"
        );
        let mut c = Capture::new(4);
        c.push(b"abcdefgh");
        assert_eq!(c.into_bytes(), b"abcdefgh", "up to 2 x limit is kept whole");
    }

    #[test]
    fn clean_escapes_control_characters() {
        assert_eq!(
            clean(b"ok\tline\r\n\x1b[31mred\x07\x7f\r"),
            "ok\tline\n\\x1b[31mred\\x07\\x7f\\x0d"
        );
        assert_eq!(clean("a\u{9b}b\u{202e}c".as_bytes()), "a\\u{9b}b\\u{202e}c");
        assert_eq!(clean(b"\xffz"), "\u{fffd}z");
    }
}
