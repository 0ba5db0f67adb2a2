//! The gRPC deadline on the wire: `grpc-timeout` (gRPC over HTTP/2: 1 to 8 ASCII digits and
//! a unit, H M S m u n). Pure.
//!
//! The engine reads the client's timeout, enforces it itself, and passes what is left of it
//! to the backend on each attempt, so a retried call never outlives the client's deadline.

use std::time::Duration;

/// The timeout a `grpc-timeout` value gives, or None when it is malformed.
pub fn parse(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A `grpc-timeout` value for `left`, in the finest unit whose count fits in 8 digits
/// (rounded up, so the backend never sees a deadline earlier than zero; 0 stays 0n).
pub fn format(left: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let nanos = left.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (size, unit) in units {
        let count = nanos.div_ceil(size);
        if count <= MAX {
            return format!("{count}{unit}");
        }
    }
    format!("{MAX}H")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse("99999999n"), Some(Duration::from_nanos(99_999_999)));
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in ["", "S", "5", "5s", "-1S", "123456789S", "1.5S", "5 S"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formats_in_the_finest_unit_that_fits() {
        assert_eq!(format(Duration::from_millis(1500)), "1500000u");
        assert_eq!(format(Duration::from_secs(200)), "200000m");
        assert_eq!(format(Duration::from_secs(86_400 * 400)), "34560000S");
        assert_eq!(format(Duration::ZERO), "0n");
    }

    #[test]
    fn formatting_rounds_up() {
        assert_eq!(format(Duration::from_nanos(100_000_001)), "100001u");
    }

    #[test]
    fn a_formatted_timeout_parses_back_at_least_as_long() {
        for ms in [1u64, 999, 12_345, 3_600_000, 90_000_000_000] {
            let d = Duration::from_millis(ms);
            assert!(parse(&format(d)).unwrap() >= d);
        }
    }
}
