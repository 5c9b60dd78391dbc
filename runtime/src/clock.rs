//! Wall-clock timestamps as Apstra's status API writes them (RFC 3339, UTC, microseconds).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as `2026-01-01T00:00:00.000000Z`.
pub fn now_rfc3339() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format_unix(d.as_secs() as i64, d.subsec_micros())
}

/// Format seconds since the epoch (UTC); days to civil date per Howard Hinnant's
/// public-domain algorithm, so no date crate is needed for one format.
pub fn format_unix(secs: i64, micros: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(format_unix(0, 0), "1970-01-01T00:00:00.000000Z");
        // `date -u -d @1767225600` → 2026-01-01 00:00:00
        assert_eq!(format_unix(1_767_225_600, 5), "2026-01-01T00:00:00.000005Z");
        // A leap day: `date -u -d @1709210096` → 2024-02-29 12:34:56
        assert_eq!(format_unix(1_709_210_096, 0), "2024-02-29T12:34:56.000000Z");
    }
}
