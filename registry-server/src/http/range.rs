//! `Range` request headers, for every protocol that serves image bytes.

use std::ops::Range;

/// What a `Range` header asks for, given the size of the file.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAsk {
    /// One byte range inside the file, half-open.
    One(Range<u64>),
    /// Not a single byte range we understand (several ranges, another unit,
    /// garbage): each protocol decides whether that means the whole file or 416.
    Ignore,
    /// A byte range outside the file: 416.
    Unsatisfiable,
}

pub fn parse(value: &str, size: u64) -> RangeAsk {
    match http_range_header::parse_range_header(value) {
        Ok(parsed) => match parsed.validate(size) {
            Ok(ranges) => match ranges.as_slice() {
                [one] => RangeAsk::One(*one.start()..*one.end() + 1),
                _ => RangeAsk::Ignore,
            },
            Err(_) => RangeAsk::Unsatisfiable,
        },
        Err(_) => RangeAsk::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_clients_send_them() {
        assert_eq!(parse("bytes=0-511", 1024), RangeAsk::One(0..512));
        assert_eq!(parse("bytes=512-1023", 1024), RangeAsk::One(512..1024));
        // The library 1.0 client's probe asks one byte past a 1024-byte file.
        assert_eq!(parse("bytes=0-1024", 1024), RangeAsk::One(0..1024));
        assert_eq!(parse("bytes=990-5000", 1000), RangeAsk::One(990..1000));
        assert_eq!(parse("bytes=1000-", 1024), RangeAsk::One(1000..1024));
        assert_eq!(parse("bytes=-24", 1024), RangeAsk::One(1000..1024));
        assert_eq!(parse("bytes=2000-3000", 1024), RangeAsk::Unsatisfiable);
        assert_eq!(parse("bytes=1000-", 1000), RangeAsk::Unsatisfiable);
        assert_eq!(parse("bytes=0-1,5-6", 1024), RangeAsk::Ignore);
        assert_eq!(parse("bytes=5-4", 1000), RangeAsk::Ignore);
        assert_eq!(parse("items=0-1", 1000), RangeAsk::Ignore);
    }
}
