//! Splitting a byte stream into bounded lines, for raw writers and child processes.

use super::entry::truncate;

/// Raw lines are cut to this many bytes.
pub const RAW_LINE_MAX: usize = 1024;

/// The line being assembled from a byte stream. It keeps at most a few bytes more than
/// [`RAW_LINE_MAX`] (so that a character split by the cap is not mangled) and counts the
/// rest, so memory stays bounded however long a line runs.
#[derive(Debug, Default)]
pub(crate) struct LineBuffer {
    kept: Vec<u8>,
    len: usize,
}

impl LineBuffer {
    /// Adds `bytes`, calling `on_line` with each line they complete.
    pub(crate) fn push(&mut self, bytes: &[u8], mut on_line: impl FnMut(String, Option<usize>)) {
        let mut rest = bytes;
        loop {
            let newline = rest.iter().position(|&b| b == b'\n');
            let chunk = &rest[..newline.unwrap_or(rest.len())];
            let room = (RAW_LINE_MAX + 4).saturating_sub(self.kept.len());
            self.kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            self.len += chunk.len();
            let Some(at) = newline else { break };
            let (text, original) = self.take();
            on_line(text, original);
            rest = &rest[at + 1..];
        }
    }

    /// Ends the stream: an unterminated last line is passed to `on_line`.
    pub(crate) fn finish(&mut self, mut on_line: impl FnMut(String, Option<usize>)) {
        if self.len > 0 {
            let (text, original) = self.take();
            on_line(text, original);
        }
    }

    /// Bytes of the current line so far.
    pub(crate) fn pending(&self) -> usize {
        self.len
    }

    /// The current line as text (non-UTF-8 replaced, cut to the cap) and its original
    /// length if it was cut; resets for the next line.
    fn take(&mut self) -> (String, Option<usize>) {
        let mut text = String::from_utf8_lossy(&self.kept).into_owned();
        let cut = truncate(&mut text, RAW_LINE_MAX);
        let original = (self.len > RAW_LINE_MAX).then_some(self.len).or(cut);
        self.kept.clear();
        self.len = 0;
        (text, original)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> Vec<(String, Option<usize>)> {
        let mut buf = LineBuffer::default();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.push(chunk, |t, o| out.push((t, o)));
        }
        buf.finish(|t, o| out.push((t, o)));
        out
    }

    #[test]
    fn splits_across_chunks_and_flushes_the_tail() {
        let got = lines(&[b"a\nb", b"c\n\nd"]);
        let texts: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(texts, ["a", "bc", "", "d"]);
    }

    #[test]
    fn bounds_memory_and_keeps_the_length() {
        let long = vec![b'q'; 10 * RAW_LINE_MAX];
        let got = lines(&[&long, b"\n"]);
        assert_eq!(got[0].0.len(), RAW_LINE_MAX);
        assert_eq!(got[0].1, Some(10 * RAW_LINE_MAX));
    }
}
