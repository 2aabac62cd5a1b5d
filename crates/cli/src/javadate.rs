//! `java.util.Date.toString()` in the local time zone
//! (`EEE MMM dd HH:mm:ss zzz yyyy`, e.g. `Sun Nov 22 05:43:07 UTC 2026`),
//! which zkCli prints for `ctime` and `mtime`.
//!
//! The zone and its abbreviation come from the C library (`TZ`, else
//! `/etc/localtime`), the same sources the JVM reads.

use std::ffi::CStr;

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Broken-down local time of one instant.
struct LocalTime {
    year: i64,
    month: usize,
    day: i32,
    weekday: usize,
    hour: i32,
    minute: i32,
    second: i32,
    zone: String,
}

/// Formats `millis` since the epoch like `new Date(millis).toString()`.
pub fn format(millis: i64) -> String {
    let seconds = millis.div_euclid(1000);
    match local_time(seconds) {
        Some(t) => format!(
            "{} {} {:02} {:02}:{:02}:{:02} {} {}",
            DAYS[t.weekday], MONTHS[t.month], t.day, t.hour, t.minute, t.second, t.zone, t.year
        ),
        // Outside what the C library can represent: say so plainly.
        None => format!("{millis} ms since the epoch"),
    }
}

fn local_time(seconds: i64) -> Option<LocalTime> {
    let t = libc::time_t::try_from(seconds).ok()?;
    // SAFETY: `localtime_r` (which loads the zone on first use) writes only
    // into `tm`, which we own, and reports failure with NULL. `tm_zone` then
    // points at a NUL-terminated abbreviation owned by the C library that
    // outlives this call; it is copied out at once.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return None;
        }
        let zone = if tm.tm_zone.is_null() {
            "GMT".to_owned()
        } else {
            CStr::from_ptr(tm.tm_zone).to_string_lossy().into_owned()
        };
        Some(LocalTime {
            year: i64::from(tm.tm_year) + 1900,
            month: usize::try_from(tm.tm_mon).ok().filter(|m| *m < 12)?,
            day: tm.tm_mday,
            weekday: usize::try_from(tm.tm_wday).ok().filter(|d| *d < 7)?,
            hour: tm.tm_hour,
            minute: tm.tm_min,
            second: tm.tm_sec,
            zone,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_and_a_known_instant_read_like_java() {
        // Only checkable when the process runs in UTC (as CI does).
        let zone = local_time(0).map(|t| t.zone).unwrap_or_default();
        if zone != "UTC" {
            eprintln!("time zone is {zone:?}, not UTC: skipping exact comparison");
            return;
        }
        assert_eq!(format(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(format(1_795_326_187_000), "Sun Nov 22 05:43:07 UTC 2026");
        assert_eq!(format(-1), "Wed Dec 31 23:59:59 UTC 1969");
    }
}
