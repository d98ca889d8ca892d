//! Common and breached passwords (NIST SP 800-63B §3.1.1.2: refuse passwords from lists of
//! commonly used or compromised values). The list ships inside the binary
//! (`shared/data/common-passwords.txt`, lower-cased, sorted by bytes, one per line; its origin
//! and licence in `common-passwords.LICENSE`) and is binary-searched in place: nothing is
//! parsed or loaded at start or per request, and only the binaries that set passwords link it.

use std::cmp::Ordering;

static LIST: &str = include_str!("../data/common-passwords.txt");

/// How many passwords the bundled list holds.
pub fn len() -> usize {
    LIST.lines().count()
}

/// Whether `password` (compared lower-cased, surrounding whitespace ignored) is on the list.
pub fn is_common(password: &str) -> bool {
    contains_sorted(LIST, password.trim().to_lowercase().as_bytes())
}

/// Binary search over the lines of `text` (sorted by bytes, `\n`-separated) without
/// splitting it: O(log n) line probes.
fn contains_sorted(text: &str, needle: &[u8]) -> bool {
    let bytes = text.as_bytes();
    // Invariant: `lo` is the start of a line; every line before `lo` is less than the needle,
    // every line starting at or after `hi` is greater.
    let (mut lo, mut hi) = (0usize, bytes.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let start = bytes[lo..mid]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(lo, |i| lo + i + 1);
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| start + i);
        match bytes[start..end].cmp(needle) {
            Ordering::Equal => return true,
            Ordering::Less => lo = end + 1,
            Ordering::Greater => hi = start,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_finds_every_line_and_nothing_else() {
        let text = "a\nab\nb\nba\nc\nzz\n";
        for w in ["a", "ab", "b", "ba", "c", "zz"] {
            assert!(contains_sorted(text, w.as_bytes()), "{w}");
        }
        for w in ["", "aa", "abc", "bb", "d", "z", "zzz", "\n"] {
            assert!(!contains_sorted(text, w.as_bytes()), "{w:?}");
        }
        assert!(!contains_sorted("", b"a"));
        assert!(contains_sorted("only", b"only"));
    }

    #[test]
    fn the_bundled_list_is_sorted_and_finds_what_it_holds() {
        let lines: Vec<&str> = LIST.lines().collect();
        assert!(lines.len() >= 10_000, "{}", lines.len());
        assert!(
            lines.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
        for line in lines.iter().step_by(997) {
            assert!(is_common(line), "{line}");
        }
        for common in ["password", "123456", "qwerty", "Password", " letmein "] {
            assert!(is_common(common), "{common}");
        }
        assert!(!is_common("correct horse battery staple 7d1f"));
    }
}
