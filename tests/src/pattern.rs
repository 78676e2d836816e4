//! A tiny whole-line matcher for serial output, so test definitions stay
//! readable without a regex engine.
//!
//! A pattern matches a whole line (after `\r` and terminal escapes are
//! stripped). Everything is literal except:
//!
//! | token | matches                                   |
//! |-------|-------------------------------------------|
//! | `*`   | any run of characters, possibly empty     |
//! | `%d`  | one or more decimal digits                |
//! | `%n`  | decimal digits, not all zeros (a count that rose) |
//! | `%x`  | one or more hexadecimal digits            |
//! | `%s`  | one or more non-whitespace characters     |
//! | `%*`, `%%` | a literal `*` or `%`                 |
//!
//! So `TEST boot ... ok` is exact, `*deliberate panic*` is "contains", and
//! `Serac %s booting via pvh, %d MiB usable` is the boot line.

use std::borrow::Cow;
use std::fmt;

/// A whole-line pattern; see the module docs for the syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(Cow<'static, str>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(char),
    Any,
    Digits,
    Nonzero,
    Hex,
    NonSpace,
}

impl Tok {
    fn class_matches(self, c: char) -> bool {
        match self {
            Tok::Digits | Tok::Nonzero => c.is_ascii_digit(),
            Tok::Hex => c.is_ascii_hexdigit(),
            Tok::NonSpace => !c.is_whitespace(),
            Tok::Lit(l) => l == c,
            Tok::Any => true,
        }
    }
}

fn tokens(p: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut it = p.chars().peekable();
    while let Some(c) = it.next() {
        out.push(match c {
            '*' => Tok::Any,
            '%' => match it.peek().copied() {
                Some('d') => {
                    it.next();
                    Tok::Digits
                }
                Some('x') => {
                    it.next();
                    Tok::Hex
                }
                Some('n') => {
                    it.next();
                    Tok::Nonzero
                }
                Some('s') => {
                    it.next();
                    Tok::NonSpace
                }
                Some(e @ ('%' | '*')) => {
                    it.next();
                    Tok::Lit(e)
                }
                // An unknown escape is taken literally.
                _ => Tok::Lit('%'),
            },
            c => Tok::Lit(c),
        });
    }
    out
}

fn matches_at(toks: &[Tok], s: &[char]) -> bool {
    let Some((&t, rest)) = toks.split_first() else {
        return s.is_empty();
    };
    match t {
        Tok::Lit(c) => s.first() == Some(&c) && matches_at(rest, &s[1..]),
        Tok::Any => (0..=s.len()).any(|i| matches_at(rest, &s[i..])),
        class => {
            let run = s.iter().take_while(|&&c| class.class_matches(c)).count();
            (1..=run).rev().any(|i| {
                (class != Tok::Nonzero || s[..i].iter().any(|&c| c != '0'))
                    && matches_at(rest, &s[i..])
            })
        }
    }
}

impl Pattern {
    /// A pattern from its text.
    pub fn new(p: impl Into<Cow<'static, str>>) -> Self {
        Pattern(p.into())
    }

    /// The pattern text, as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the whole `line` matches.
    pub fn matches(&self, line: &str) -> bool {
        let s: Vec<char> = line.chars().collect();
        matches_at(&tokens(&self.0), &s)
    }
}

impl From<&'static str> for Pattern {
    fn from(p: &'static str) -> Self {
        Pattern::new(p)
    }
}

impl From<String> for Pattern {
    fn from(p: String) -> Self {
        Pattern::new(p)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn literal_is_exact() {
        let p = Pattern::new("TEST boot ... ok");
        assert!(p.matches("TEST boot ... ok"));
        assert!(!p.matches("TEST boot ... ok!"));
        assert!(!p.matches("xTEST boot ... ok"));
    }

    #[test]
    fn boot_line() {
        let p = Pattern::new("Serac %s booting via pvh, %d MiB usable");
        assert!(p.matches("Serac 0.1.0 booting via pvh, 254 MiB usable"));
        assert!(!p.matches("Serac 0.1.0 booting via multiboot2, 254 MiB usable"));
        assert!(!p.matches("Serac  booting via pvh, 254 MiB usable"));
        assert!(!p.matches("Serac 0.1.0 booting via pvh, MiB usable"));
        assert!(!p.matches("Serac 0.1.0 booting via pvh, 25x MiB usable"));
    }

    #[test]
    fn wildcards_and_classes() {
        let p = Pattern::new("PANIC at %s:%d:%d: *deliberate panic*");
        assert!(
            p.matches("PANIC at microkernel/src/test.rs:12:5: deliberate panic (serac.test=panic)")
        );
        assert!(!p.matches("PANIC at x.rs:1: deliberate panic"));
        let e = Pattern::new("EXCEPTION #%d * error=0x%x rip=0x%x*");
        assert!(e.matches("EXCEPTION #14 page fault error=0x2 rip=0xffffffff80001234 cr2=0xdead"));
        assert!(e.matches("EXCEPTION #6 invalid opcode error=0x0 rip=0x1000"));
        assert!(!e.matches("EXCEPTION #6 invalid opcode error=0x rip=0x1000"));
        assert!(Pattern::new("100%% done%*").matches("100% done*"));
        assert!(Pattern::new("*").matches(""));
        assert!(Pattern::new("a%qb").matches("a%qb"));
    }

    #[test]
    fn nonzero_counts() {
        let p = Pattern::new("drops %n, queued %d");
        assert!(p.matches("drops 1, queued 0"));
        assert!(p.matches("drops 100, queued 64"));
        assert!(p.matches("drops 007, queued 0"));
        assert!(!p.matches("drops 0, queued 0"));
        assert!(!p.matches("drops 000, queued 3"));
        assert!(!p.matches("drops , queued 3"));
    }
}
