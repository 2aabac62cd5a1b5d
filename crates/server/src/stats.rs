//! Server counters reported by `srvr`, `stat` and `mntr`. Lock-free: every
//! connection task updates them on its own path.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

pub struct ServerStats {
    pub started: Instant,
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub latency_min_ms: AtomicI64,
    pub latency_max_ms: AtomicI64,
    latency_total_ms: AtomicU64,
    latency_count: AtomicU64,
    pub auth_failed: AtomicU64,
    pub outstanding_requests: AtomicI64,
    /// The newest snapshot made or loaded: its last zxid and when (Unix
    /// seconds), for the admin server's `last_snapshot`.
    last_snapshot: parking_lot::Mutex<Option<(i64, i64)>>,
}

impl Default for ServerStats {
    fn default() -> Self {
        ServerStats {
            started: Instant::now(),
            packets_received: AtomicU64::new(0),
            packets_sent: AtomicU64::new(0),
            latency_min_ms: AtomicI64::new(i64::MAX),
            latency_max_ms: AtomicI64::new(0),
            latency_total_ms: AtomicU64::new(0),
            latency_count: AtomicU64::new(0),
            auth_failed: AtomicU64::new(0),
            outstanding_requests: AtomicI64::new(0),
            last_snapshot: parking_lot::Mutex::new(None),
        }
    }
}

impl ServerStats {
    pub fn record_latency(&self, ms: i64) {
        self.latency_min_ms.fetch_min(ms, Ordering::Relaxed);
        self.latency_max_ms.fetch_max(ms, Ordering::Relaxed);
        self.latency_total_ms
            .fetch_add(ms.max(0) as u64, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    /// (min, avg, max) request latency in ms; 0 when nothing was measured.
    pub fn latency(&self) -> (i64, f64, i64) {
        let count = self.latency_count.load(Ordering::Relaxed);
        if count == 0 {
            return (0, 0.0, 0);
        }
        let total = self.latency_total_ms.load(Ordering::Relaxed);
        (
            self.latency_min_ms.load(Ordering::Relaxed),
            total as f64 / count as f64,
            self.latency_max_ms.load(Ordering::Relaxed),
        )
    }

    /// Notes a snapshot that now holds the tree up to `zxid`.
    pub fn snapshot_taken(&self, zxid: i64) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        *self.last_snapshot.lock() = Some((zxid, now));
    }

    /// The newest snapshot's (zxid, Unix seconds), if there is one.
    pub fn last_snapshot(&self) -> Option<(i64, i64)> {
        *self.last_snapshot.lock()
    }

    pub fn reset(&self) {
        self.packets_received.store(0, Ordering::Relaxed);
        self.packets_sent.store(0, Ordering::Relaxed);
        self.latency_min_ms.store(i64::MAX, Ordering::Relaxed);
        self.latency_max_ms.store(0, Ordering::Relaxed);
        self.latency_total_ms.store(0, Ordering::Relaxed);
        self.latency_count.store(0, Ordering::Relaxed);
    }
}
