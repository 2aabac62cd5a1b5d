//! Differential tests: seeded random operation sequences run against Apache ZooKeeper 3.8
//! (Debian's package, the reference) and against Corral; every step's observable outcome
//! is written as a normalised trace line and the two traces must be equal.
//!
//! What a step records: the reply's error code and reply-header zxid, the decoded body
//! (Stat fields, data, children sorted, ACLs, every multi sub-result), and every watch
//! notification each session received, in arrival order per session: `pre` = arrived
//! on the acting session before its reply, `post` = arrived before a barrier read sent
//! after the step (ZooKeeper queues a write's notifications on every connection before it
//! replies, so a later read on any session is ordered after them).
//!
//! Normalised: ctime/mtime (`T`), zxids (each distinct value is named `Z<n>` in order of
//! first appearance in that server's trace, so equal zxids stay equal and a server that
//! spends zxids differently diverges), session ids (`sess#<n>` in order of creation).
//!
//! Knobs (environment):
//! - `CORRAL_DIFF_TARGET`: `corral` (default), `corral-ensemble` or `zookeeper`, the server
//!   compared with Apache ZooKeeper. `corral-ensemble` is a 3-node Corral ensemble with the
//!   sessions spread over its servers (slots 0-2 on servers 1-3, the observer on server
//!   `seed % 3 + 1`), and every barrier starting with `sync` (on both sides). `zookeeper`
//!   runs ZooKeeper against itself, which proves the machinery (the traces must be
//!   deterministic) while Corral's server is unfinished. Whatever the target, a smaller run
//!   against `corral-ensemble` (`CORRAL_DIFF_ENSEMBLE_SEEDS`, default 10) is its own test.
//! - `CORRAL_DIFF_SEEDS`: how many seeds (default 30), `CORRAL_DIFF_OPS`: steps per seed
//!   (default 150), `CORRAL_DIFF_SEED`: run only this seed (to reproduce a failure),
//!   `CORRAL_DIFF_FIRST_SEED`: first seed of the range (default 1).
//! - `CORRAL_DIFF_TRACE_DIR`: write each server's full trace per seed there.
//!
//! Left out on purpose: reaping of containers and TTL nodes (timer driven; disabled on
//! both servers so runs stay deterministic), session expiry by timeout, checkWatches (a
//! ZooKeeper 3.8.0 bug, see `Gen::step`), create2 inside multi (Debian's 3.8.0 answers it as
//! a plain create), check sent alone (3.8.0 never answers it) and createTTL with a
//! non-TTL mode and a negative ttl (kills 3.8.0's server).
//!
//! Sessions: slots 0-2 act (slot 0 is logged in as alice from the start; any slot may
//! `addauth` later), slot 3 only observes through a recursive watch on the seed's base
//! and a persistent watch on `<base>/d0`. Each seed works under its own base node
//! `/s<seed>`, so seeds share one server per side and still replay identically alone.
//! `scripts/diff-report.py <trace dir>` groups the differences of many seeds.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use support::raw::{self, decode_multi, err_name, event_name, op, Acl, Enc, MultiOp, MultiResult};
use support::raw::{RawSession, Reply, Stat};
use support::Server;

/// Requested session timeout; well above any seed's duration.
const SESSION_TIMEOUT_MS: i32 = 30_000;
/// Slots 0..ACTORS act; slot OBSERVER only watches (a recursive watch on the seed's base).
const ACTORS: usize = 3;
const OBSERVER: usize = 3;
const SLOTS: usize = 4;

const ALICE_CRED: &str = "alice:pw-a";
/// `user:` + base64(sha1("alice:pw-a")), as DigestAuthenticationProvider computes it.
const ALICE_ID: &str = "alice:uLD5NOZLQJ80mnO9Vlr0fn9L2Fg=";
const BOB_CRED: &str = "bob:pw-b";
const BOB_ID: &str = "bob:xsPTa926cuj68HAo44wWaBYu4To=";

/// zoo.cfg lines for both servers: container/TTL reaping off (timer driven, so it would
/// make traces depend on timing).
const EXTRA_CFG: &[&str] = &["znode.container.checkIntervalMs=86400000"];

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

// ---------------------------------------------------------------------------------------
// Steps: generated from the seed alone, never from results, so both servers get the same.
// ---------------------------------------------------------------------------------------

/// How to decode and print a successful reply body.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// create (1): {path}
    Create,
    /// create2/createContainer/createTTL: {path, Stat}
    Create2,
    /// no body expected (delete, auth, closeSession, removeWatches…)
    Empty,
    /// {Stat} (setData, setACL, exists)
    Stat,
    /// {data, Stat}
    GetData,
    /// {children} sorted
    Children,
    /// {children, Stat}
    Children2,
    /// {acl, Stat}
    Acl,
    /// {path}
    Sync,
    Multi,
    /// {i32}
    Int,
    /// {vector<string>} sorted (getEphemerals)
    SortedStrings,
    /// vector<ClientInfo{scheme, user}> sorted
    WhoAmI,
    /// anything: printed as hex
    Raw,
}

#[derive(Clone, Debug)]
enum Action {
    Request {
        opcode: i32,
        body: Vec<u8>,
        kind: Kind,
    },
    Auth {
        cred: &'static str,
    },
    /// closeSession on the slot, then a new session in it (slot 0 logs in as alice again).
    Restart,
}

#[derive(Clone, Debug)]
struct Step {
    actor: usize,
    desc: String,
    action: Action,
}

fn acl_table(i: usize) -> (&'static str, Vec<Acl>) {
    let world = |p| Acl::new(p, "world", "anyone");
    match i {
        0 => ("open", vec![world(31)]),
        1 => ("world-read", vec![world(1)]),
        2 => ("creator-all", vec![Acl::new(31, "auth", "")]),
        3 => ("alice-all", vec![Acl::new(31, "digest", ALICE_ID)]),
        4 => (
            "alice-all+world-read",
            vec![Acl::new(31, "digest", ALICE_ID), world(1)],
        ),
        5 => ("bob-all", vec![Acl::new(31, "digest", BOB_ID)]),
        6 => ("empty", vec![]),
        7 => ("world:foo", vec![Acl::new(31, "world", "foo")]),
        8 => ("ip-local", vec![Acl::new(31, "ip", "127.0.0.1")]),
        9 => ("ip-other", vec![Acl::new(31, "ip", "10.0.0.0/8")]),
        10 => ("world-rcd", vec![world(1 | 4 | 8)]),
        11 => ("digest-no-colon", vec![Acl::new(31, "digest", "bob")]),
        12 => ("dup-open", vec![world(31), world(31)]),
        13 => ("ip-bad-mask", vec![Acl::new(31, "ip", "127.0.0.1/33")]),
        14 => (
            "alice-read+bob-all",
            vec![
                Acl::new(1, "digest", ALICE_ID),
                Acl::new(31, "digest", BOB_ID),
            ],
        ),
        _ => unreachable!(),
    }
}

struct Gen {
    rng: StdRng,
    base: String,
}

impl Gen {
    fn new(seed: u64) -> Gen {
        Gen {
            rng: StdRng::seed_from_u64(seed),
            base: format!("/s{seed}"),
        }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        *items.choose(&mut self.rng).unwrap()
    }

    /// A node name under a top-level dir: plain names, plus the names sequential creates
    /// will produce, so later ops hit them.
    fn mid_name(&mut self) -> String {
        match self.rng.gen_range(0..10) {
            0..=5 => self.pick(&["a", "b", "c"]).to_string(),
            6..=7 => format!("s-{:010}", self.rng.gen_range(0..4)),
            8 => format!("{:010}", self.rng.gen_range(0..3)),
            _ => self.pick(&["...", ".a", "a."]).to_string(),
        }
    }

    /// A valid path in this seed's subtree; small alphabet so ops collide often.
    fn path(&mut self) -> String {
        let d = format!("{}/d{}", self.base, self.rng.gen_range(0..3));
        match self.rng.gen_range(0..100) {
            0..=3 => self.base.clone(),
            4..=24 => d,
            25..=74 => {
                let m = self.mid_name();
                format!("{d}/{m}")
            }
            _ => {
                let m = self.pick(&["a", "b"]);
                let l = self.pick(&["x", "y"]);
                format!("{d}/{m}/{l}")
            }
        }
    }

    /// A path prefix for a sequential create (the server appends 10 digits).
    fn seq_prefix(&mut self) -> String {
        let d = format!("{}/d{}", self.base, self.rng.gen_range(0..3));
        match self.rng.gen_range(0..10) {
            0..=5 => format!("{d}/s-"),
            6..=7 => format!("{d}/"),
            _ => format!("{d}/a/s-"),
        }
    }

    /// A malformed path. `for_write`: may also be "" or a system path (only used with ops
    /// that fail on them without touching the server's state or reading the root, whose
    /// Stat depends on earlier seeds).
    fn bad_path(&mut self, root_ok: bool) -> String {
        let b = self.base.clone();
        let mut choices = vec![
            format!("{b}/"),
            format!("{b}/d0/"),
            format!("{b}//d0"),
            format!("{b}/d0//a"),
            format!("{b}/./a"),
            format!("{b}/d0/."),
            format!("{b}/d0/.."),
            format!("{b}/../s0"),
            format!("{}", &b[1..]),
            "d0".to_string(),
            format!("{b}/d0/\u{1}"),
            format!("{b}/d\u{7f}"),
            format!("{b}/\u{1F600}"),
            format!("{b}/\u{E000}"),
            format!("{b}/a\u{0}b"),
        ];
        if root_ok {
            choices.extend([
                String::new(),
                "/".to_string(),
                "/zookeeper".to_string(),
                "/zookeeper/quota".to_string(),
            ]);
        }
        choices.choose(&mut self.rng).unwrap().clone()
    }

    fn data(&mut self) -> Option<Vec<u8>> {
        match self.rng.gen_range(0..20) {
            0 => None,
            1..=3 => Some(Vec::new()),
            4..=9 => Some(self.pick(&[&b"x"[..], b"hello", b"v2"]).to_vec()),
            _ => {
                let n = self.rng.gen_range(1..24);
                Some((0..n).map(|_| self.rng.gen()).collect())
            }
        }
    }

    fn version(&mut self) -> i32 {
        match self.rng.gen_range(0..10) {
            0..=3 => -1,
            4..=6 => 0,
            7..=8 => 1,
            _ => self.pick(&[2, 3, -2]),
        }
    }

    fn acl(&mut self) -> (&'static str, Vec<Acl>) {
        let i = if self.rng.gen_bool(0.6) {
            0
        } else {
            self.rng.gen_range(1..15)
        };
        acl_table(i)
    }

    fn actor(&mut self) -> usize {
        self.rng.gen_range(0..ACTORS)
    }

    /// A create request: (opcode, body, description, reply kind).
    fn create(&mut self, path_override: Option<String>) -> (i32, Vec<u8>, String, Kind) {
        let opcode = match self.rng.gen_range(0..100) {
            0..=29 => op::CREATE,
            30..=71 => op::CREATE2,
            72..=83 => op::CREATE_CONTAINER,
            _ => op::CREATE_TTL,
        };
        let mut flags = match opcode {
            op::CREATE_CONTAINER => 4,
            op::CREATE_TTL => self.pick(&[5, 5, 6]),
            _ => self.pick(&[0, 0, 0, 1, 1, 2, 3]),
        };
        // Occasionally a flag that does not fit the opcode, or no mode at all.
        if self.rng.gen_range(0..25) == 0 {
            flags = self.pick(&[0, 1, 4, 5, 6, 7, -1]);
        }
        let ttl = (opcode == op::CREATE_TTL).then(|| {
            self.pick(&[
                3_600_000i64,
                3_600_000,
                1,
                0,
                -1,
                0xFF_FFFF_FFFF,
                0x100_0000_0000,
            ])
        });
        // ZooKeeper 3.8.0 accepts createTTL with a non-TTL mode and a negative ttl, then
        // dies applying it (IllegalArgumentException in EphemeralType.toEphemeralOwner
        // kills SyncThread and the server stops). Never send that combination.
        let ttl = match ttl {
            Some(t) if t < 0 && (0..=4).contains(&flags) => Some(3_600_000),
            t => t,
        };
        let sequential = flags == 2 || flags == 3 || flags == 6;
        let path = match path_override {
            Some(p) => p,
            None if sequential && self.rng.gen_bool(0.8) => self.seq_prefix(),
            None => self.path(),
        };
        let data = self.data();
        let (acl_name, acl) = self.acl();
        let mut e = Enc::new();
        e.str(&path).opt_buf(data.as_deref()).acl(&acl).i32(flags);
        if let Some(ttl) = ttl {
            e.i64(ttl);
        }
        let name = match opcode {
            op::CREATE => "create",
            op::CREATE2 => "create2",
            op::CREATE_CONTAINER => "createContainer",
            _ => "createTTL",
        };
        let mut desc = format!(
            "{name} {} data={} acl={acl_name} flags={flags}",
            show_path(&path),
            show_data(data.as_deref())
        );
        if let Some(ttl) = ttl {
            desc.push_str(&format!(" ttl={ttl}"));
        }
        let kind = if opcode == op::CREATE {
            Kind::Create
        } else {
            Kind::Create2
        };
        (opcode, e.0, desc, kind)
    }

    fn delete_body(&mut self, path: &str) -> (Vec<u8>, String) {
        let v = self.version();
        let mut e = Enc::new();
        e.str(path).i32(v);
        (e.0, format!("delete {} v={v}", show_path(path)))
    }

    fn set_data_body(&mut self, path: &str) -> (Vec<u8>, String) {
        let v = self.version();
        let data = self.data();
        let mut e = Enc::new();
        e.str(path).opt_buf(data.as_deref()).i32(v);
        (
            e.0,
            format!(
                "setData {} data={} v={v}",
                show_path(path),
                show_data(data.as_deref())
            ),
        )
    }

    fn set_acl_body(&mut self, path: &str) -> (Vec<u8>, String) {
        let v = self.pick(&[-1, -1, 0, 1]);
        let (name, acl) = self.acl();
        let mut e = Enc::new();
        e.str(path).acl(&acl).i32(v);
        (e.0, format!("setACL {} acl={name} v={v}", show_path(path)))
    }

    fn path_watch_body(path: &str, watch: bool) -> Vec<u8> {
        let mut e = Enc::new();
        e.str(path).bool(watch);
        e.0
    }

    fn path_body(path: &str) -> Vec<u8> {
        let mut e = Enc::new();
        e.str(path);
        e.0
    }

    /// A request on `path` for a "read or write by path" op, chosen at random.
    fn op_on_path(&mut self, path: String, root_ok: bool) -> (i32, Vec<u8>, String, Kind) {
        let choice = if root_ok {
            // "", "/", "/zookeeper…": only ops that can't change or read root state.
            self.rng.gen_range(0..2)
        } else {
            self.rng.gen_range(0..12)
        };
        match choice {
            0 => self.create(Some(path)),
            1 => {
                let (b, d) = self.delete_body(&path);
                (op::DELETE, b, d, Kind::Empty)
            }
            2 => {
                let (b, d) = self.set_data_body(&path);
                (op::SET_DATA, b, d, Kind::Stat)
            }
            3 => {
                let w = self.rng.gen_bool(0.5);
                let d = format!("exists {} watch={w}", show_path(&path));
                (op::EXISTS, Self::path_watch_body(&path, w), d, Kind::Stat)
            }
            4 => {
                let w = self.rng.gen_bool(0.5);
                let d = format!("getData {} watch={w}", show_path(&path));
                (
                    op::GET_DATA,
                    Self::path_watch_body(&path, w),
                    d,
                    Kind::GetData,
                )
            }
            5 => {
                let w = self.rng.gen_bool(0.5);
                let d = format!("getChildren {} watch={w}", show_path(&path));
                (
                    op::GET_CHILDREN,
                    Self::path_watch_body(&path, w),
                    d,
                    Kind::Children,
                )
            }
            6 => {
                let w = self.rng.gen_bool(0.5);
                let d = format!("getChildren2 {} watch={w}", show_path(&path));
                (
                    op::GET_CHILDREN2,
                    Self::path_watch_body(&path, w),
                    d,
                    Kind::Children2,
                )
            }
            7 => {
                let d = format!("getACL {}", show_path(&path));
                (op::GET_ACL, Self::path_body(&path), d, Kind::Acl)
            }
            8 => {
                let (b, d) = self.set_acl_body(&path);
                (op::SET_ACL, b, d, Kind::Stat)
            }
            9 => {
                let d = format!("sync {}", show_path(&path));
                (op::SYNC, Self::path_body(&path), d, Kind::Sync)
            }
            10 => {
                let d = format!("getAllChildrenNumber {}", show_path(&path));
                (
                    op::GET_ALL_CHILDREN_NUMBER,
                    Self::path_body(&path),
                    d,
                    Kind::Int,
                )
            }
            _ => {
                let mode = self.rng.gen_range(0..2);
                let mut e = Enc::new();
                e.str(&path).i32(mode);
                let d = format!("addWatch {} mode={mode}", show_path(&path));
                (op::ADD_WATCH, e.0, d, Kind::Raw)
            }
        }
    }

    fn multi(&mut self) -> (i32, Vec<u8>, String, Kind) {
        let n = self.rng.gen_range(1..=4);
        let mut ops = Vec::new();
        let mut descs = Vec::new();
        for _ in 0..n {
            let path = self.path();
            let (opcode, body, desc) = match self.rng.gen_range(0..10) {
                0..=3 => {
                    // create2 inside multi is avoided: Debian's 3.8.0 mishandles it (a
                    // bug fixed in later 3.8.x, see ZOOKEEPER-BEHAVIOUR.md §9).
                    let (mut opcode, body, desc, _) = self.create(None);
                    if opcode == op::CREATE2 {
                        opcode = op::CREATE;
                    }
                    (opcode, body, desc.replacen("create2", "create", 1))
                }
                4..=5 => {
                    let (b, d) = self.delete_body(&path);
                    (op::DELETE, b, d)
                }
                6..=7 => {
                    let (b, d) = self.set_data_body(&path);
                    (op::SET_DATA, b, d)
                }
                _ => {
                    let v = self.version();
                    let mut e = Enc::new();
                    e.str(&path).i32(v);
                    (op::CHECK, e.0, format!("check {} v={v}", show_path(&path)))
                }
            };
            ops.push(MultiOp { opcode, body });
            descs.push(desc);
        }
        let body = raw::encode_multi(&ops);
        (
            op::MULTI,
            body,
            format!("multi [{}]", descs.join("; ")),
            Kind::Multi,
        )
    }

    fn multi_read(&mut self) -> (i32, Vec<u8>, String, Kind) {
        let n = self.rng.gen_range(1..=3);
        let mut ops = Vec::new();
        let mut descs = Vec::new();
        for _ in 0..n {
            let path = self.path();
            let w = self.rng.gen_bool(0.3);
            let (opcode, name) = if self.rng.gen_bool(0.5) {
                (op::GET_DATA, "getData")
            } else {
                (op::GET_CHILDREN, "getChildren")
            };
            ops.push(MultiOp {
                opcode,
                body: Self::path_watch_body(&path, w),
            });
            descs.push(format!("{name} {} watch={w}", show_path(&path)));
        }
        (
            op::MULTI_READ,
            raw::encode_multi(&ops),
            format!("multiRead [{}]", descs.join("; ")),
            Kind::Multi,
        )
    }

    fn step(&mut self) -> Step {
        let actor = self.actor();
        let roll = self.rng.gen_range(0..1000);
        let (opcode, body, desc, kind) = match roll {
            0..=269 => self.create(None),
            270..=389 => {
                let p = self.path();
                let (b, d) = self.delete_body(&p);
                (op::DELETE, b, d, Kind::Empty)
            }
            390..=489 => {
                let p = self.path();
                let (b, d) = self.set_data_body(&p);
                (op::SET_DATA, b, d, Kind::Stat)
            }
            490..=699 => {
                // reads and the rest of the per-path ops
                let p = self.path();
                self.op_on_path(p, false)
            }
            700..=779 => self.multi(),
            780..=799 => self.multi_read(),
            800..=869 => {
                let root_ok = self.rng.gen_bool(0.25);
                let p = self.bad_path(root_ok);
                self.op_on_path(p, root_ok)
            }
            870..=899 => {
                let p = self.path();
                // checkWatches (17) is left out: ZooKeeper 3.8.0 answers Ok when *any*
                // session has a watch of that type on the path (WatchManager.containsWatcher
                // ignores the watcher at the leaf), a bug Corral need not copy.
                let opcode = op::REMOVE_WATCHES;
                let ty = self.rng.gen_range(1..=3);
                let mut e = Enc::new();
                e.str(&p).i32(ty);
                let name = if opcode == op::CHECK_WATCHES {
                    "checkWatches"
                } else {
                    "removeWatches"
                };
                (
                    opcode,
                    e.0,
                    format!("{name} {} type={ty}", show_path(&p)),
                    Kind::Raw,
                )
            }
            900..=929 => {
                let p = if self.rng.gen_bool(0.7) {
                    self.path()
                } else {
                    format!("{}/d", self.base)
                };
                (
                    op::GET_EPHEMERALS,
                    Self::path_body(&p),
                    format!("getEphemerals {}", show_path(&p)),
                    Kind::SortedStrings,
                )
            }
            930..=949 => {
                let cred = self.pick(&[ALICE_CRED, BOB_CRED]);
                return Step {
                    actor,
                    desc: format!("addauth digest {cred}"),
                    action: Action::Auth { cred },
                };
            }
            950..=969 => (op::WHO_AM_I, Vec::new(), "whoAmI".into(), Kind::WhoAmI),
            _ => {
                return Step {
                    actor,
                    desc: "restart session".into(),
                    action: Action::Restart,
                }
            }
        };
        Step {
            actor,
            desc,
            action: Action::Request { opcode, body, kind },
        }
    }
}

/// The steps of one seed: a fixed prologue (log in, create the seed's base, observer
/// watches it recursively), then `n` random steps.
fn steps_for_seed(seed: u64, n: usize) -> Vec<Step> {
    let mut g = Gen::new(seed);
    let base = g.base.clone();
    let mut steps = vec![
        Step {
            actor: 0,
            desc: format!("addauth digest {ALICE_CRED}"),
            action: Action::Auth { cred: ALICE_CRED },
        },
        Step {
            actor: 0,
            desc: format!("create {base} (open, persistent)"),
            action: Action::Request {
                opcode: op::CREATE,
                body: {
                    let mut e = Enc::new();
                    e.str(&base).buf(b"").acl(&acl_table(0).1).i32(0);
                    e.0
                },
                kind: Kind::Create,
            },
        },
        Step {
            actor: OBSERVER,
            desc: format!("addWatch {base} recursive"),
            action: Action::Request {
                opcode: op::ADD_WATCH,
                body: {
                    let mut e = Enc::new();
                    e.str(&base).i32(1);
                    e.0
                },
                kind: Kind::Raw,
            },
        },
        Step {
            actor: OBSERVER,
            desc: format!("addWatch {base}/d0 persistent"),
            action: Action::Request {
                opcode: op::ADD_WATCH,
                body: {
                    let mut e = Enc::new();
                    e.str(&format!("{base}/d0")).i32(0);
                    e.0
                },
                kind: Kind::Raw,
            },
        },
    ];
    // A few open nodes so that deeper paths are reachable early.
    for p in ["d0", "d1", "d2", "d0/a", "d1/b"] {
        let path = format!("{base}/{p}");
        let mut e = Enc::new();
        e.str(&path).buf(b"").acl(&acl_table(0).1).i32(0);
        steps.push(Step {
            actor: 1,
            desc: format!("create {path} (open, persistent)"),
            action: Action::Request {
                opcode: op::CREATE2,
                body: e.0,
                kind: Kind::Create2,
            },
        });
    }
    steps.extend((0..n).map(|_| g.step()));
    steps
}

fn show_path(p: &str) -> String {
    if p.chars().all(|c| (' '..='~').contains(&c)) && !p.is_empty() {
        p.to_string()
    } else {
        format!("{p:?}")
    }
}

fn show_data(d: Option<&[u8]>) -> String {
    match d {
        None => "null".into(),
        Some(d) if d.iter().all(|b| (b' '..=b'~').contains(b) && *b != b'"') => {
            format!("\"{}\"", String::from_utf8_lossy(d))
        }
        Some(d) => format!("0x{}", hex(d)),
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------
// Running steps against one server and writing the normalised trace.
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Norm {
    zxids: HashMap<i64, usize>,
    sessions: HashMap<i64, usize>,
}

impl Norm {
    fn z(&mut self, z: i64) -> String {
        if z <= 0 {
            return z.to_string();
        }
        let n = self.zxids.len();
        format!("Z{}", self.zxids.entry(z).or_insert(n))
    }

    fn sess(&mut self, id: i64) -> String {
        if id == 0 {
            return "0".into();
        }
        let n = self.sessions.len();
        format!("sess#{}", self.sessions.entry(id).or_insert(n))
    }

    fn stat(&mut self, s: &Stat) -> String {
        let c = self.z(s.czxid);
        let m = self.z(s.mzxid);
        let p = self.z(s.pzxid);
        let owner = self.sess(s.ephemeral_owner);
        format!(
            "{{czxid={c} mzxid={m} pzxid={p} ctime=T mtime=T v={} cv={} av={} owner={owner} len={} nc={}}}",
            s.version, s.cversion, s.aversion, s.data_length, s.num_children
        )
    }

    fn reply(&mut self, kind: Kind, r: &Reply) -> String {
        let z = self.z(r.zxid);
        let mut out = format!("{} z={z}", err_name(r.err));
        if r.err != 0 {
            if !r.body.is_empty() {
                out.push_str(&format!(" unexpected-body=0x{}", hex(&r.body)));
            }
            return out;
        }
        match self.body(kind, r) {
            Ok(s) if s.is_empty() => {}
            Ok(s) => {
                out.push(' ');
                out.push_str(&s);
            }
            Err(e) => out.push_str(&format!(" undecodable({e}) body=0x{}", hex(&r.body))),
        }
        out
    }

    fn body(&mut self, kind: Kind, r: &Reply) -> std::io::Result<String> {
        let mut d = r.dec();
        let s = match kind {
            Kind::Create | Kind::Sync => d.str()?,
            Kind::Create2 => {
                let p = d.str()?;
                let st = d.stat()?;
                format!("{p} {}", self.stat(&st))
            }
            Kind::Empty => String::new(),
            Kind::Stat => {
                let st = d.stat()?;
                self.stat(&st)
            }
            Kind::GetData => {
                let data = d.buf()?;
                let st = d.stat()?;
                format!("data={} {}", show_data(data.as_deref()), self.stat(&st))
            }
            Kind::Children | Kind::SortedStrings => {
                let mut c = d.strings()?;
                c.sort();
                format!("[{}]", c.join(","))
            }
            Kind::Children2 => {
                let mut c = d.strings()?;
                c.sort();
                let st = d.stat()?;
                format!("[{}] {}", c.join(","), self.stat(&st))
            }
            Kind::Acl => {
                let acl = d.acl()?;
                let st = d.stat()?;
                // Sorted: an `auth` ACL expands to the session's ids in ZooKeeper's
                // hash-set order, which Corral has no reason to copy.
                let mut acl: Vec<String> = acl
                    .iter()
                    .map(|a| format!("{}:{}:{}", a.perms, a.scheme, a.id))
                    .collect();
                acl.sort();
                format!("acl=[{}] {}", acl.join(","), self.stat(&st))
            }
            Kind::Int => d.i32()?.to_string(),
            Kind::WhoAmI => {
                let n = d.i32()?;
                let mut v = Vec::new();
                for _ in 0..n {
                    let scheme = d.str()?;
                    let user = d.str()?;
                    v.push(format!("{scheme}:{user}"));
                }
                v.sort();
                format!("[{}]", v.join(","))
            }
            Kind::Multi => {
                let results = decode_multi(&r.body)?;
                let parts: Vec<String> = results.iter().map(|m| self.multi_result(m)).collect();
                return Ok(format!("[{}]", parts.join("; ")));
            }
            Kind::Raw if r.body.is_empty() => String::new(),
            Kind::Raw => return Ok(format!("body=0x{}", hex(&r.body))),
        };
        if d.remaining() != 0 {
            return Ok(format!("{s} trailing={}B", d.remaining()));
        }
        Ok(s)
    }

    fn multi_result(&mut self, m: &MultiResult) -> String {
        match m {
            MultiResult::Create { path } => format!("create {path}"),
            MultiResult::Create2 { path, stat } => format!("create2 {path} {}", self.stat(stat)),
            MultiResult::Delete => "delete".into(),
            MultiResult::SetData { stat } => format!("setData {}", self.stat(stat)),
            MultiResult::Check => "check".into(),
            MultiResult::GetData { data, stat } => {
                format!(
                    "getData data={} {}",
                    show_data(data.as_deref()),
                    self.stat(stat)
                )
            }
            MultiResult::GetChildren { children } => {
                let mut c = children.clone();
                c.sort();
                format!("getChildren [{}]", c.join(","))
            }
            MultiResult::Error { header_err, err } => {
                if header_err == err {
                    format!("error {}", err_name(*err))
                } else {
                    format!(
                        "error {} (header says {})",
                        err_name(*err),
                        err_name(*header_err)
                    )
                }
            }
            MultiResult::Unknown { ty, header_err } => {
                format!("unknown-type {ty} err={}", err_name(*header_err))
            }
        }
    }
}

/// Where the sessions of a run connect, and how a step waits for its effects.
#[derive(Clone, Copy)]
struct Layout {
    /// Sessions spread over the servers (at most as many as there are actors): slot `i`
    /// (an actor) on server `i % n`, the observer on server `seed % n`, and the actors'
    /// barriers start with `sync`, because a server other than the one that acknowledged a
    /// write may not have applied it yet (ZooKeeper guarantees sequential consistency per
    /// session only); once every server has synced, the observer's plain barrier is
    /// ordered after the step's events too. Both servers of a comparison run the same
    /// requests: on a single server the syncs change nothing.
    spread: bool,
}

impl Layout {
    fn slot_addr(self, addrs: &[SocketAddr], slot: usize, seed: u64) -> SocketAddr {
        let n = addrs.len();
        if slot == OBSERVER {
            addrs[(seed as usize) % n]
        } else {
            addrs[slot % n]
        }
    }
}

/// Runs the steps of `seed` on the server(s) at `addrs`; one string per step (the request,
/// its outcome, the events). An I/O failure (a dropped connection, a timeout) ends the
/// trace with a `!!` line.
fn run_trace(addrs: &[SocketAddr], layout: Layout, seed: u64, steps: &[Step]) -> Vec<String> {
    let mut norm = Norm::default();
    let mut trace = Vec::with_capacity(steps.len());
    let mut slots: Vec<Option<RawSession>> = Vec::new();
    for i in 0..SLOTS {
        let addr = layout.slot_addr(addrs, i, seed);
        match RawSession::connect(addr, SESSION_TIMEOUT_MS) {
            Ok(s) => {
                norm.sess(s.session_id);
                slots.push(Some(s));
            }
            Err(e) => {
                trace.push(format!("!! connect slot {i}: {e}"));
                return trace;
            }
        }
    }
    for step in steps {
        match run_step(&mut norm, &mut slots, layout, step) {
            Ok(line) => trace.push(line),
            Err(line) => {
                trace.push(line);
                break;
            }
        }
    }
    for s in slots.into_iter().flatten() {
        let _ = s.close();
    }
    trace
}

/// A read whose reply is ordered after every notification the session's server queued
/// for it before; with `sync` first, after every write the leader had committed when the
/// sync reached it (so a write acknowledged by another server has been applied here).
fn barrier(s: &mut RawSession, sync: bool) -> std::io::Result<()> {
    if sync {
        let r = s.request(op::SYNC, &Gen::path_body("/"))?;
        if r.err != 0 {
            return Err(std::io::Error::other(format!(
                "barrier sync / failed: {}",
                err_name(r.err)
            )));
        }
    }
    s.barrier()
}

fn run_step(
    norm: &mut Norm,
    slots: &mut [Option<RawSession>],
    layout: Layout,
    step: &Step,
) -> Result<String, String> {
    let a = step.actor;
    let mut line = format!("s{a} {} -> ", step.desc);
    let io = |what: &str, e: std::io::Error| format!("!! {what}: {e}");
    let mut sort_events = false;
    let pre = match &step.action {
        Action::Request { opcode, body, kind } => {
            let s = slots[a].as_mut().expect("slot");
            let r = s
                .request(*opcode, body)
                .map_err(|e| format!("{line}{}", io("request", e)))?;
            line.push_str(&norm.reply(*kind, &r));
            s.take_events()
        }
        Action::Auth { cred } => {
            let s = slots[a].as_mut().expect("slot");
            let r = s
                .auth("digest", cred.as_bytes())
                .map_err(|e| format!("{line}{}", io("auth", e)))?;
            line.push_str(&norm.reply(Kind::Empty, &r));
            s.take_events()
        }
        Action::Restart => {
            // Ephemerals of the closed session go in one transaction in ZooKeeper's
            // hash-set order, so the events of this step are compared as a sorted list.
            sort_events = true;
            let mut old = slots[a].take().expect("slot");
            let mut pre = old.take_events();
            let r = old
                .request(op::CLOSE_SESSION, &[])
                .map_err(|e| format!("{line}{}", io("closeSession", e)))?;
            pre.extend(old.take_events());
            line.push_str(&format!("close {}", norm.reply(Kind::Empty, &r)));
            let addr = old.addr;
            drop(old);
            let mut new = RawSession::connect(addr, SESSION_TIMEOUT_MS)
                .map_err(|e| format!("{line}{}", io("reconnect", e)))?;
            line.push_str(&format!("; new {}", norm.sess(new.session_id)));
            if a == 0 {
                let r = new
                    .auth("digest", ALICE_CRED.as_bytes())
                    .map_err(|e| format!("{line}{}", io("auth", e)))?;
                line.push_str(&format!("; addauth alice {}", norm.reply(Kind::Empty, &r)));
            }
            slots[a] = Some(new);
            pre
        }
    };
    let mut ev_lines = Vec::new();
    let mut fmt_event = |slot: usize, tag: &str, e: &raw::Event| {
        format!(
            "  s{slot} {tag} {} {} state={} z={}",
            event_name(e.ty),
            show_path(&e.path),
            e.state,
            norm.z(e.zxid)
        )
    };
    for e in &pre {
        ev_lines.push(fmt_event(a, "pre", e));
    }
    for (i, s) in slots.iter_mut().enumerate() {
        let s = s.as_mut().expect("slot");
        // The observer shares a server with an actor whose barrier (and sync) came first.
        let sync = layout.spread && i != OBSERVER;
        barrier(s, sync).map_err(|e| format!("{line}\n  !! barrier on s{i}: {e}"))?;
        for e in s.take_events() {
            ev_lines.push(fmt_event(i, "post", &e));
        }
    }
    if sort_events {
        ev_lines.sort();
    }
    for l in ev_lines {
        line.push('\n');
        line.push_str(&l);
    }
    Ok(line)
}

// ---------------------------------------------------------------------------------------
// Comparing.
// ---------------------------------------------------------------------------------------

struct Mismatch {
    seed: u64,
    report: String,
}

/// Compares two traces of one seed; `None` when equal.
fn compare(
    seed: u64,
    steps: &[Step],
    a: &[String],
    b: &[String],
    names: (&str, &str),
) -> Option<Mismatch> {
    let n = a.len().max(b.len());
    for i in 0..n {
        let la = a.get(i).map(String::as_str).unwrap_or("<trace ended>");
        let lb = b.get(i).map(String::as_str).unwrap_or("<trace ended>");
        if la != lb {
            let mut report = format!(
                "seed {seed}: traces differ at step {i} (rerun with CORRAL_DIFF_SEED={seed})\n"
            );
            let from = i.saturating_sub(6);
            report.push_str("--- context (equal on both) ---\n");
            for (j, l) in a.iter().enumerate().take(i).skip(from) {
                report.push_str(&format!("{j:04} {l}\n"));
            }
            report.push_str(&format!("--- {} ---\n{i:04} {la}\n", names.0));
            report.push_str(&format!("--- {} ---\n{i:04} {lb}\n", names.1));
            if let Some(s) = steps.get(i) {
                report.push_str(&format!("(step {i} was: s{} {})\n", s.actor, s.desc));
            }
            return Some(Mismatch { seed, report });
        }
    }
    None
}

fn write_trace(dir: &str, seed: u64, name: &str, trace: &[String]) {
    let _ = std::fs::create_dir_all(dir);
    let text: String = trace
        .iter()
        .enumerate()
        .map(|(i, l)| format!("{i:04} {l}\n"))
        .collect();
    let path = format!("{dir}/seed{seed}-{name}.trace");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {path}: {e}"));
}

/// The seeds to run: `CORRAL_DIFF_SEED` alone, else `CORRAL_DIFF_FIRST_SEED` (default 1)
/// and the `count_var` following ones (default `count_default`).
fn seeds_from_env(count_var: &str, count_default: u64) -> Vec<u64> {
    match std::env::var("CORRAL_DIFF_SEED") {
        Ok(s) => vec![s.trim().parse().expect("CORRAL_DIFF_SEED is a number")],
        Err(_) => {
            let first = env_u64("CORRAL_DIFF_FIRST_SEED", 1);
            let n = env_u64(count_var, count_default);
            (first..first + n).collect()
        }
    }
}

/// Runs `seeds` against Apache ZooKeeper and against `target` (see [`Server::start_named`])
/// and panics, naming the seeds and the first differing step of each, unless every trace
/// is equal. When `target` is an ensemble, its sessions are spread over its servers.
fn run_differential(target: &str, seeds: &[u64], ops: usize) {
    let trace_dir = std::env::var("CORRAL_DIFF_TRACE_DIR").ok();
    let Some(reference) = Server::start_named("zookeeper", EXTRA_CFG) else {
        return;
    };
    let Some(other) = Server::start_named(target, EXTRA_CFG) else {
        return;
    };
    let names = (
        format!("{} (reference)", reference.name()),
        format!("{} (under test)", other.name()),
    );
    let layout = Layout {
        spread: other.addrs().len() > 1,
    };
    let started = Instant::now();
    let all_steps: Vec<Vec<Step>> = seeds.iter().map(|&s| steps_for_seed(s, ops)).collect();

    // Both servers run every seed at the same time, each from its own thread.
    let (addrs_a, addrs_b) = (reference.addrs(), other.addrs());
    let (traces_a, traces_b) = std::thread::scope(|scope| {
        let run = |addrs: Vec<SocketAddr>| {
            let all_steps = &all_steps;
            move || {
                seeds
                    .iter()
                    .zip(all_steps)
                    .map(|(&seed, st)| run_trace(&addrs, layout, seed, st))
                    .collect::<Vec<_>>()
            }
        };
        let ha = scope.spawn(run(addrs_a));
        let hb = scope.spawn(run(addrs_b));
        (
            ha.join().expect("reference run"),
            hb.join().expect("run under test"),
        )
    });

    let mut mismatches = Vec::new();
    for (k, &seed) in seeds.iter().enumerate() {
        if let Some(dir) = &trace_dir {
            write_trace(dir, seed, reference.name(), &traces_a[k]);
            write_trace(
                dir,
                seed,
                &format!("{}-under-test", other.name()),
                &traces_b[k],
            );
        }
        // A broken reference run is a harness problem, not a difference.
        if let Some(l) = traces_a[k].iter().find(|l| l.contains("!!")) {
            panic!(
                "seed {seed}: the reference server failed: {l}\nZooKeeper log:\n{}",
                reference.log()
            );
        }
        if let Some(m) = compare(
            seed,
            &all_steps[k],
            &traces_a[k],
            &traces_b[k],
            (&names.0, &names.1),
        ) {
            mismatches.push(m);
        }
    }
    let steps_total: usize = all_steps.iter().map(Vec::len).sum();
    eprintln!(
        "differential: {} seeds x {ops} ops ({steps_total} steps) against {} in {:.1?}; {} seed(s) differ",
        seeds.len(),
        other.name(),
        started.elapsed(),
        mismatches.len()
    );
    if !mismatches.is_empty() {
        for m in mismatches.iter().take(5) {
            eprintln!("\n{}", m.report);
        }
        let list: Vec<String> = mismatches.iter().map(|m| m.seed.to_string()).collect();
        if !matches!(other, Server::Zk(_)) {
            eprintln!("\n--- last lines of {}'s log(s) ---", other.name());
            eprintln!("{}", other.log_tail(40));
        }
        panic!(
            "{} of {} seeds differ from Apache ZooKeeper: {}",
            mismatches.len(),
            seeds.len(),
            list.join(", ")
        );
    }
}

/// Seeded random operation sequences (creates of every mode incl. TTL and container,
/// deletes/sets with right and wrong versions, reads of present and missing nodes, multi
/// with failures, digest ACLs, malformed paths, session close, one-shot, persistent and
/// recursive watches) give the same observable results on Corral as on Apache ZooKeeper.
#[test]
fn random_operation_sequences_match_apache_zookeeper() {
    let target = std::env::var("CORRAL_DIFF_TARGET").unwrap_or_else(|_| "corral".into());
    let seeds = seeds_from_env("CORRAL_DIFF_SEEDS", 30);
    let ops = env_u64("CORRAL_DIFF_OPS", 150) as usize;
    run_differential(&target, &seeds, ops);
}

/// The same sequences on a 3-node Corral ensemble, one acting session per server and the
/// watching session on one of them (which one depends on the seed), give the same traces
/// as a standalone Apache ZooKeeper: writes are forwarded to the leader, applied on every
/// server in the same order with the same zxids, and watches fire on whichever server
/// holds the watching session. `CORRAL_DIFF_ENSEMBLE_SEEDS` (default 10) seeds; skipped
/// when `CORRAL_DIFF_TARGET` already is `corral-ensemble` (the test above runs it).
#[test]
fn random_operation_sequences_on_a_corral_ensemble_match_apache_zookeeper() {
    if std::env::var("CORRAL_DIFF_TARGET").is_ok_and(|t| t == "corral-ensemble") {
        return;
    }
    let seeds = seeds_from_env("CORRAL_DIFF_ENSEMBLE_SEEDS", 10);
    let ops = env_u64("CORRAL_DIFF_OPS", 150) as usize;
    run_differential("corral-ensemble", &seeds, ops);
}

// ---------------------------------------------------------------------------------------
// The same comparison through an independent client library (zookeeper-client): a fixed
// scenario, so the handshake, pings, watcher dispatch and multi decoding of a real client
// are exercised against both servers.
// ---------------------------------------------------------------------------------------

fn client_stat(norm: &mut Norm, s: &zookeeper_client::Stat) -> String {
    norm.stat(&Stat {
        czxid: s.czxid,
        mzxid: s.mzxid,
        ctime: s.ctime,
        mtime: s.mtime,
        version: s.version,
        cversion: s.cversion,
        aversion: s.aversion,
        ephemeral_owner: s.ephemeral_owner,
        data_length: s.data_length,
        num_children: s.num_children,
        pzxid: s.pzxid,
    })
}

fn client_event(e: &zookeeper_client::WatchedEvent) -> String {
    format!("{:?} {} {:?}", e.event_type, e.path, e.session_state)
}

/// Waits up to `ms` for a one-shot watcher.
async fn oneshot(w: zookeeper_client::OneshotWatcher, ms: u64) -> String {
    match tokio::time::timeout(std::time::Duration::from_millis(ms), w.changed()).await {
        Ok(e) => client_event(&e),
        Err(_) => "no event".into(),
    }
}

/// Takes the events already delivered to a persistent watcher (call after a read on the
/// same session, which the server orders after them).
async fn drain(w: &mut zookeeper_client::PersistentWatcher) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(e) = tokio::time::timeout(std::time::Duration::from_millis(150), w.changed()).await
    {
        out.push(client_event(&e));
    }
    out
}

/// `addrs`: the sessions c1, c2, c3 go to `addrs[0]`, `addrs[1 % n]`, `addrs[2 % n]`; a
/// session reading what another one wrote syncs first (needed when they are on different
/// servers of an ensemble, harmless otherwise).
async fn client_scenario(addrs: &[SocketAddr]) -> Vec<String> {
    use zookeeper_client::{Acls, AddWatchMode, Client, CreateMode, MultiWriteResult};
    let mut n = Norm::default();
    let mut t: Vec<String> = Vec::new();
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let at = |i: usize| addrs[i % addrs.len()];
    let c1 = support::connect(at(0)).await;
    let c2 = support::connect_with(
        at(1),
        Client::connector().with_auth("digest", ALICE_CRED.as_bytes()),
    )
    .await;
    let c3 = support::connect(at(2)).await;
    for c in [&c1, &c2, &c3] {
        n.sess(c.session_id().0);
    }
    macro_rules! rec {
        ($label:expr, $v:expr) => {{
            let line = format!("{}: {}", $label, $v);
            t.push(line);
        }};
    }

    let r = c1.create("/zc", b"root", &open).await;
    rec!(
        "c1 create /zc",
        fmt_res(&mut n, r.map(|(s, q)| (Some(s), q.into_i64())))
    );
    c2.sync("/zc").await.expect("sync");
    let (_, _, w_data) = c2
        .get_and_watch_data("/zc")
        .await
        .expect("get_and_watch_data");
    let (missing, w_exists) = c2
        .check_and_watch_stat("/zc/e")
        .await
        .expect("check_and_watch_stat");
    rec!(
        "c2 exists /zc/e",
        format!("{:?}", missing.map(|s| client_stat(&mut n, &s)))
    );
    let (_, _, w_child) = c2
        .get_and_watch_children("/zc")
        .await
        .expect("watch children");
    let mut pw = c3
        .watch("/zc", AddWatchMode::Persistent)
        .await
        .expect("persistent watch");
    let mut rw = c3
        .watch("/zc/r", AddWatchMode::PersistentRecursive)
        .await
        .expect("recursive watch");

    let eph = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    let r = c1.create("/zc/e", b"", &eph).await;
    rec!(
        "c1 create /zc/e ephemeral",
        fmt_res(&mut n, r.map(|(s, q)| (Some(s), q.into_i64())))
    );
    rec!("c2 exists watch", oneshot(w_exists, 5000).await);
    rec!("c2 child watch", oneshot(w_child, 5000).await);
    let r = c1.set_data("/zc", b"v1", Some(0)).await;
    rec!(
        "c1 setData /zc v=0",
        fmt_res(&mut n, r.map(|s| (Some(s), -1)))
    );
    rec!("c2 data watch", oneshot(w_data, 5000).await);
    let r = c1.set_data("/zc", b"bad", Some(0)).await;
    rec!(
        "c1 setData /zc v=0 again",
        fmt_res(&mut n, r.map(|s| (Some(s), -1)))
    );

    let seq = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
    for _ in 0..2 {
        let r = c1.create("/zc/s-", b"", &seq).await;
        rec!(
            "c1 create /zc/s- sequential",
            fmt_res(&mut n, r.map(|(s, q)| (Some(s), q.into_i64())))
        );
    }
    let container = CreateMode::Container.with_acls(Acls::anyone_all());
    let r = c1.create("/zc/r", b"", &container).await;
    rec!(
        "c1 create /zc/r container",
        fmt_res(&mut n, r.map(|(s, q)| (Some(s), q.into_i64())))
    );
    let r = c1.create("/zc/r/x", b"x", &open).await;
    rec!(
        "c1 create /zc/r/x",
        fmt_res(&mut n, r.map(|(s, q)| (Some(s), q.into_i64())))
    );
    let ttl = CreateMode::Persistent
        .with_acls(Acls::anyone_all())
        .with_ttl(std::time::Duration::from_secs(3600));
    let r = c1.create("/zc/t", b"", &ttl).await;
    rec!(
        "c1 create /zc/t ttl=1h",
        fmt_res(&mut n, r.map(|(s, q)| (Some(s), q.into_i64())))
    );
    let r = c1.delete("/zc/r/x", Some(5)).await;
    rec!(
        "c1 delete /zc/r/x v=5",
        fmt_res(&mut n, r.map(|()| (None, -1)))
    );
    let r = c1.delete("/zc/r/x", Some(0)).await;
    rec!(
        "c1 delete /zc/r/x v=0",
        fmt_res(&mut n, r.map(|()| (None, -1)))
    );

    let mut m = c1.new_multi_writer();
    m.add_create("/zc/m1", b"", &open).unwrap();
    m.add_set_data("/zc/nope", b"", None).unwrap();
    rec!(
        "c1 multi [create /zc/m1, setData /zc/nope]",
        format!("{:?}", m.commit().await.map(|v| v.len()))
    );
    let r = c1.check_stat("/zc/m1").await;
    rec!("c1 exists /zc/m1", format!("{:?}", r.map(|s| s.is_some())));
    let mut m = c1.new_multi_writer();
    m.add_create("/zc/m2", b"m", &open).unwrap();
    m.add_set_data("/zc", b"v2", Some(1)).unwrap();
    m.add_check_version("/zc", 2).unwrap();
    m.add_delete("/zc/m2", None).unwrap();
    let r = m.commit().await.map(|v| {
        v.iter()
            .map(|x| match x {
                // zookeeper-client sends create2 inside multi; Debian's 3.8.0 answers it
                // as a plain create (path, no Stat), 3.8.4 with a Stat: compare the path.
                MultiWriteResult::Create { path, .. } => format!("create {path}"),
                MultiWriteResult::SetData { stat } => {
                    format!("setData {}", client_stat(&mut n, stat))
                }
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>()
    });
    rec!(
        "c1 multi [create, setData, check, delete]",
        format!("{r:?}")
    );

    let creator = CreateMode::Persistent.with_acls(Acls::creator_all());
    let r = c2.create("/zc/secret", b"s", &creator).await;
    rec!(
        "c2 create /zc/secret creator-all",
        fmt_res(&mut n, r.map(|(s, q)| (Some(s), q.into_i64())))
    );
    c1.sync("/zc").await.expect("sync");
    let r = c1.get_data("/zc/secret").await;
    rec!(
        "c1 getData /zc/secret",
        fmt_res(&mut n, r.map(|(_, s)| (Some(s), -1)))
    );
    let r = c2.get_data("/zc/secret").await;
    rec!(
        "c2 getData /zc/secret",
        fmt_res(&mut n, r.map(|(_, s)| (Some(s), -1)))
    );
    let r = c2.get_acl("/zc/secret").await.map(|(acl, _)| {
        acl.iter()
            .map(|a| format!("{}:{}", a.scheme(), a.id()))
            .collect::<Vec<_>>()
    });
    rec!("c2 getACL /zc/secret", format!("{r:?}"));
    let mut users = c2.list_auth_users().await.map(|u| {
        u.iter()
            .map(|u| format!("{}:{}", u.scheme(), u.user()))
            .collect::<Vec<_>>()
    });
    if let Ok(u) = users.as_mut() {
        u.sort();
    }
    rec!("c2 whoAmI", format!("{users:?}"));
    let mut reader = c1.new_multi_reader();
    reader.add_get_data("/zc").unwrap();
    reader.add_get_children("/zc").unwrap();
    reader.add_get_data("/zc/nope").unwrap();
    let r = reader.commit().await.map(|v| {
        v.into_iter()
            .map(|x| match x {
                zookeeper_client::MultiReadResult::Data { data, stat } => {
                    format!(
                        "data {:?} {}",
                        String::from_utf8_lossy(&data),
                        client_stat(&mut n, &stat)
                    )
                }
                zookeeper_client::MultiReadResult::Children { mut children } => {
                    children.sort();
                    format!("children {children:?}")
                }
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>()
    });
    rec!("c1 multiRead", format!("{r:?}"));
    rec!(
        "c1 descendants /zc",
        format!("{:?}", c1.count_descendants_number("/zc").await)
    );
    rec!(
        "c1 ephemerals /zc",
        format!("{:?}", c1.list_ephemerals("/zc").await)
    );

    // The ephemeral vanishes when its session closes; a watcher in another session sees it.
    let (_, w_gone) = c2
        .check_and_watch_stat("/zc/e")
        .await
        .expect("exists watch");
    drop(c1);
    rec!(
        "c2 exists watch after c1 closed",
        oneshot(w_gone, 10_000).await
    );
    let r = c2.check_stat("/zc/e").await;
    rec!("c2 exists /zc/e", format!("{:?}", r.map(|s| s.is_some())));

    c3.sync("/").await.expect("sync");
    let _ = c3.check_stat("/").await;
    rec!("c3 persistent /zc events", drain(&mut pw).await.join(" | "));
    rec!(
        "c3 recursive /zc/r events",
        drain(&mut rw).await.join(" | ")
    );
    let r = c3.get_children("/zc").await.map(|(mut c, s)| {
        c.sort();
        format!("{c:?} {}", client_stat(&mut n, &s))
    });
    rec!("c3 getChildren2 /zc", format!("{r:?}"));
    t
}

/// Formats a client result whose success carries an optional Stat and a sequence number.
fn fmt_res(
    n: &mut Norm,
    r: Result<(Option<zookeeper_client::Stat>, i64), zookeeper_client::Error>,
) -> String {
    match r {
        Ok((stat, seq)) => {
            let stat = stat.map(|s| client_stat(n, &s)).unwrap_or_default();
            if seq >= 0 {
                format!("Ok seq={seq} {stat}")
            } else {
                format!("Ok {stat}")
            }
        }
        Err(e) => format!("Err({e:?})"),
    }
}

/// A scripted session through zookeeper-client (create of every mode, one-shot and
/// persistent watches, version checks, multi, creator ACL, multiRead, ephemerals removed
/// on close) reads the same on Corral as on Apache ZooKeeper.
#[test]
fn zookeeper_client_scenario_matches_apache_zookeeper() {
    let target = std::env::var("CORRAL_DIFF_TARGET").unwrap_or_else(|_| "corral".into());
    let Some(reference) = Server::start_named("zookeeper", EXTRA_CFG) else {
        return;
    };
    let Some(other) = Server::start_named(&target, EXTRA_CFG) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let a = rt.block_on(client_scenario(&reference.addrs()));
    let b = rt.block_on(client_scenario(&other.addrs()));
    if let Ok(dir) = std::env::var("CORRAL_DIFF_TRACE_DIR") {
        write_trace(&dir, 0, "client-scenario-reference", &a);
        write_trace(&dir, 0, "client-scenario-under-test", &b);
    }
    let names = (
        reference.name().to_string(),
        format!("{} (under test)", other.name()),
    );
    if let Some(m) = compare(0, &[], &a, &b, (&names.0, &names.1)) {
        panic!(
            "zookeeper-client scenario differs:\n{}\nfull reference trace:\n{}",
            m.report,
            a.join("\n")
        );
    }
}

/// The comparison itself: equal traces pass, and the first differing step is reported
/// with the seed and both lines.
#[test]
fn a_trace_difference_names_the_seed_the_step_and_both_lines() {
    let a = vec![
        "s0 create /x -> Ok".to_string(),
        "s1 delete /x -> Ok".to_string(),
    ];
    let mut b = a.clone();
    assert!(compare(7, &[], &a, &b, ("zk", "corral")).is_none());
    b[1] = "s1 delete /x -> NoNode".into();
    let m = compare(7, &[], &a, &b, ("zk", "corral")).expect("a difference");
    assert_eq!(m.seed, 7);
    assert!(m.report.contains("step 1"), "{}", m.report);
    assert!(m.report.contains("CORRAL_DIFF_SEED=7"), "{}", m.report);
    assert!(
        m.report.contains("-> Ok") && m.report.contains("-> NoNode"),
        "{}",
        m.report
    );
    b.pop();
    let m = compare(7, &[], &a, &b[..1], ("zk", "corral")).expect("a shorter trace");
    assert!(m.report.contains("<trace ended>"), "{}", m.report);
}
