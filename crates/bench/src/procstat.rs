//! CPU time and resident memory of processes on this machine, read from
//! Linux's /proc (the server under test, and this benchmark itself).

/// Linux reports utime/stime in USER_HZ ticks, 100 per second on every
/// architecture Corral runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime of `pid` in seconds (`None` when the process is gone or
/// this is not Linux).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// utime + stime of this process in seconds.
pub fn own_cpu_seconds() -> f64 {
    stat_cpu_seconds("/proc/self/stat").unwrap_or(0.0)
}

fn stat_cpu_seconds(path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    parse_stat_cpu(&text)
}

/// Fields 14 and 15 of /proc/<pid>/stat, counted after the `(comm)` field,
/// which may itself contain spaces and parentheses.
fn parse_stat_cpu(text: &str) -> Option<f64> {
    let after_comm = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // after_comm starts at field 3 (state): utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// Resident set size of `pid` in bytes (VmRSS), 0 when unknown.
pub fn rss_bytes(pid: u32) -> u64 {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// CPU seconds summed over `pids`.
pub fn total_cpu_seconds(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|&p| cpu_seconds(p)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "1234 (java (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 40 0";
        assert_eq!(parse_stat_cpu(line), Some(3.0));
    }

    #[test]
    fn this_process_has_a_stat_and_a_rss() {
        if cfg!(target_os = "linux") {
            assert!(cpu_seconds(std::process::id()).is_some());
            assert!(rss_bytes(std::process::id()) > 0);
        }
    }
}
