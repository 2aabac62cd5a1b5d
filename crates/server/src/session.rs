//! Session bookkeeping on this server: ids, passwords, timeouts and expiry
//! deadlines (ZooKeeper's `SessionTrackerImpl` with its tick-sized expiry
//! buckets). Session creation and close are log entries; this module only
//! decides *when* a session has expired and remembers which connection holds
//! it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::watch::ConnId;

/// Length of a session password on the wire.
pub const PASSWORD_LEN: usize = 16;

/// ZooKeeper's `superSecret`: mixed into the session id to derive its password.
const SUPER_SECRET: i64 = 0xB3415C00;

/// The password of a session, derived from its id the way ZooKeeper does
/// (`new Random(sessionId ^ superSecret).nextBytes(passwd)`), so any server of
/// an ensemble can check it without storing it.
pub fn session_password(session_id: i64) -> [u8; PASSWORD_LEN] {
    let mut rng = JavaRandom::new(session_id ^ SUPER_SECRET);
    let mut out = [0u8; PASSWORD_LEN];
    let mut i = 0;
    while i < PASSWORD_LEN {
        let mut rnd = rng.next_int();
        let n = (PASSWORD_LEN - i).min(4);
        for _ in 0..n {
            out[i] = rnd as u8;
            rnd >>= 8;
            i += 1;
        }
    }
    out
}

/// `java.util.Random`'s linear congruential generator.
struct JavaRandom {
    seed: i64,
}

impl JavaRandom {
    const MULTIPLIER: i64 = 0x5DEECE66D;
    const MASK: i64 = (1 << 48) - 1;

    fn new(seed: i64) -> JavaRandom {
        JavaRandom {
            seed: (seed ^ Self::MULTIPLIER) & Self::MASK,
        }
    }

    fn next_int(&mut self) -> i32 {
        self.seed = (self.seed.wrapping_mul(Self::MULTIPLIER).wrapping_add(0xB)) & Self::MASK;
        (self.seed >> 16) as i32
    }
}

/// The ConnectResponse that accepts `session_id`. It carries a readOnly
/// byte (always false) only when the request carried one.
pub fn accepted_response(
    session_id: i64,
    timeout_ms: i32,
    read_only_byte: bool,
) -> corral_proto::records::ConnectResponse {
    corral_proto::records::ConnectResponse {
        protocol_version: 0,
        timeout_ms,
        session_id,
        passwd: session_password(session_id).to_vec(),
        read_only: read_only_byte.then_some(false),
    }
}

/// The ConnectResponse of a read-only server (no quorum, `readonlymode.enabled`):
/// its readOnly byte is true, which clients report as CONNECTED_RO / ConnectedReadOnly.
pub fn read_only_response(
    session_id: i64,
    timeout_ms: i32,
) -> corral_proto::records::ConnectResponse {
    corral_proto::records::ConnectResponse {
        read_only: Some(true),
        ..accepted_response(session_id, timeout_ms, true)
    }
}

/// The first session id of a server, as ZooKeeper builds it: the current time
/// shifted into the middle bits and the server id in the top byte.
pub fn initial_session_id(server_id: u64, now_ms: i64) -> i64 {
    let base = ((now_ms as u64) << 24) >> 8;
    (base | (server_id << 56)) as i64
}

/// One live session as this server tracks it.
#[derive(Debug)]
pub struct TrackedSession {
    pub timeout_ms: i32,
    pub deadline: Instant,
    /// The connection currently attached to it on this server, if any.
    pub conn: Option<ConnId>,
    /// Expired or closing: requests are dropped, reattach is refused.
    pub closing: bool,
}

/// Expiry tracking: every packet of a session moves its deadline.
pub struct SessionTracker {
    tick: Duration,
    origin: Instant,
    sessions: HashMap<i64, TrackedSession>,
}

impl SessionTracker {
    pub fn new(tick: Duration) -> SessionTracker {
        SessionTracker {
            tick,
            origin: Instant::now(),
            sessions: HashMap::new(),
        }
    }

    /// `(floor((now + timeout) / tick) + 1) × tick`, as ZooKeeper rounds.
    fn deadline(&self, timeout_ms: i32) -> Instant {
        let tick_ms = self.tick.as_millis().max(1) as u64;
        let now_ms = self.origin.elapsed().as_millis() as u64;
        let target = now_ms + timeout_ms.max(0) as u64;
        self.origin + Duration::from_millis((target / tick_ms + 1) * tick_ms)
    }

    pub fn add(&mut self, session_id: i64, timeout_ms: i32, conn: Option<ConnId>) {
        let deadline = self.deadline(timeout_ms);
        self.sessions.insert(
            session_id,
            TrackedSession {
                timeout_ms,
                deadline,
                conn,
                closing: false,
            },
        );
    }

    pub fn remove(&mut self, session_id: i64) -> Option<TrackedSession> {
        self.sessions.remove(&session_id)
    }

    pub fn get(&self, session_id: i64) -> Option<&TrackedSession> {
        self.sessions.get(&session_id)
    }

    pub fn get_mut(&mut self, session_id: i64) -> Option<&mut TrackedSession> {
        self.sessions.get_mut(&session_id)
    }

    /// Moves the deadline; false when the session is unknown or closing.
    pub fn touch(&mut self, session_id: i64) -> bool {
        let Some(timeout) = self.sessions.get(&session_id).map(|s| s.timeout_ms) else {
            return false;
        };
        let deadline = self.deadline(timeout);
        match self.sessions.get_mut(&session_id) {
            Some(s) if !s.closing => {
                s.deadline = deadline;
                true
            }
            _ => false,
        }
    }

    /// Gives every live session a full timeout from now.
    pub fn touch_all(&mut self) {
        let ids: Vec<i64> = self.sessions.keys().copied().collect();
        for id in ids {
            self.touch(id);
        }
    }

    /// Sets a new timeout (a reattach negotiates again) and touches.
    pub fn set_timeout(&mut self, session_id: i64, timeout_ms: i32) {
        if let Some(s) = self.sessions.get_mut(&session_id) {
            s.timeout_ms = timeout_ms;
        }
        self.touch(session_id);
    }

    /// Sessions past their deadline, now marked closing.
    pub fn take_expired(&mut self, now: Instant) -> Vec<i64> {
        let mut out = Vec::new();
        for (id, s) in self.sessions.iter_mut() {
            if !s.closing && s.deadline <= now {
                s.closing = true;
                out.push(*id);
            }
        }
        out.sort_unstable();
        out
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&i64, &TrackedSession)> {
        self.sessions.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_random_matches_the_jdk() {
        // new java.util.Random(42).nextInt() == -1170105035
        let mut r = JavaRandom::new(42);
        assert_eq!(r.next_int(), -1170105035);
        assert_eq!(r.next_int(), 234785527);
    }

    #[test]
    fn passwords_are_stable_per_session() {
        assert_eq!(session_password(5), session_password(5));
        assert_ne!(session_password(5), session_password(6));
    }

    #[test]
    fn sessions_expire_after_their_deadline() {
        let mut t = SessionTracker::new(Duration::from_millis(10));
        t.add(1, 20, None);
        assert!(t.take_expired(Instant::now()).is_empty());
        let later = Instant::now() + Duration::from_millis(100);
        assert_eq!(t.take_expired(later), vec![1]);
        assert!(!t.touch(1), "a closing session cannot be touched");
    }
}
