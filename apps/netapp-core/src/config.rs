//! `key=value` words separated by white space, as the apps read them from
//! a small image. Unknown keys are errors, so a typo is not silently
//! ignored.

/// Most concurrent clients loadgen runs (`conns=`): Ilwaco's 32 sockets
/// less what its resolver and listeners may hold. Here so that the host
/// side that writes loadgen's config can check against it.
pub const LOADGEN_MAX_CONNS: usize = 24;

/// Why a config does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError<'a> {
    /// A word without `=`.
    NotKeyValue(&'a str),
    /// A key the app does not know.
    UnknownKey(&'a str),
    /// A value that is not what the key takes.
    BadValue(&'a str),
    /// Not UTF-8.
    NotText,
}

/// The `(key, value)` words of `text`; `#` starts a comment to the end of
/// the line.
pub fn words(text: &str) -> impl Iterator<Item = Result<(&str, &str), ConfigError<'_>>> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .map(|w| w.split_once('=').ok_or(ConfigError::NotKeyValue(w)))
}

/// A decimal integer.
pub fn int(v: &str) -> Result<u64, ConfigError<'_>> {
    v.parse().map_err(|_| ConfigError::BadValue(v))
}

/// A decimal fraction such as `0.8` or `1` (at most 9 decimals).
pub fn fraction(v: &str) -> Result<f64, ConfigError<'_>> {
    let bad = || ConfigError::BadValue(v);
    let (i, f) = v.split_once('.').unwrap_or((v, ""));
    if i.is_empty() && f.is_empty() || f.len() > 9 {
        return Err(bad());
    }
    let ip: u64 = if i.is_empty() {
        0
    } else {
        i.parse().map_err(|_| bad())?
    };
    let fp: u64 = if f.is_empty() {
        0
    } else {
        f.parse().map_err(|_| bad())?
    };
    if !f.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let mut div = 1.0;
    for _ in 0..f.len() {
        div *= 10.0;
    }
    Ok(ip as f64 + fp as f64 / div)
}

/// `yes` or `no`.
pub fn yes_no(v: &str) -> Result<bool, ConfigError<'_>> {
    match v {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(ConfigError::BadValue(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn words_and_values() {
        let w: Vec<_> = words("a=1 b=x # c=2\n\n  d=0.25").collect();
        assert_eq!(w, [Ok(("a", "1")), Ok(("b", "x")), Ok(("d", "0.25"))]);
        assert_eq!(
            words("oops").next(),
            Some(Err(ConfigError::NotKeyValue("oops")))
        );
        assert_eq!(fraction("0.8"), Ok(0.8));
        assert_eq!(fraction("2"), Ok(2.0));
        assert_eq!(fraction(".5"), Ok(0.5));
        assert!(fraction("1.-5").is_err() && fraction("").is_err() && fraction("x").is_err());
        assert_eq!(int("12"), Ok(12));
        assert!(int("-1").is_err());
        assert_eq!(yes_no("yes"), Ok(true));
        assert!(yes_no("y").is_err());
    }
}
