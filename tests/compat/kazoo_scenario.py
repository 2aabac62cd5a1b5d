#!/usr/bin/env python3
"""kazoo compatibility scenario for Corral (driven by tests/compat_kazoo.rs).

Runs a fixed list of sections against one ZooKeeper-compatible server with the real
kazoo client and its recipes, and prints its trace on stdout, one step a line:

    <section> TAB [step, value...]        (JSON, keys sorted, ASCII only)
    <section> TAB END                     (the section finished)

The trace is normalised so that two servers that behave alike print the same bytes:

- zxids: inside a section, each zxid is written as the distance from the first zxid the
  section saw (`z+0`, `z+3`, ...), so a server that spends zxids differently (a failed
  write, a session create) shows up, while the epoch (Corral: the Raft term) does not;
- ctime/mtime: `T`; session ids: the name of the kazoo client that owns them (`c1`, ...);
- children lists are sorted (ZooKeeper returns them in hash order);
- exceptions: kazoo's exception class name.

Usage: kazoo_scenario.py HOST:PORT [--only SECTION[,SECTION]] [--list]
Diagnostics go to stderr (kazoo logs at WARNING).
"""

import json
import logging
import os
import select
import socket
import sys
import threading
import time
import traceback

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, ZookeeperError
from kazoo.protocol.states import KazooState
from kazoo.recipe.cache import TreeCache
from kazoo.retry import KazooRetry
from kazoo.security import ACL, Id, OPEN_ACL_UNSAFE, make_acl, make_digest_acl

WAIT = 10.0  # seconds any single expected event may take

HOSTS = None
SESSIONS = {}  # session id -> client name (global: ephemeralOwner may name any client)


def wait_until(pred, timeout=WAIT, step=0.01):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


def exc_name(e):
    return type(e).__name__


class Trace:
    """One section's trace plus the clients it opened (closed when the section ends)."""

    def __init__(self, name):
        self.name = name
        self.items = []
        self.base_zxid = None
        self.clients = []
        self.lock = threading.Lock()

    # ---- recording ---------------------------------------------------------------
    def rec(self, step, *values):
        with self.lock:
            self.items.append([step] + [self.norm(v) for v in values])

    def call(self, step, fn, *args, **kwargs):
        """Runs fn, records its (normalised) result or the exception class."""
        try:
            r = fn(*args, **kwargs)
        except (KazooException, ValueError, TypeError) as e:
            self.rec(step, "raise", exc_name(e))
            return e
        self.rec(step, r)
        return r

    def z(self, zxid):
        if zxid is None:
            return None
        if self.base_zxid is None:
            self.base_zxid = zxid
        return "z%+d" % (zxid - self.base_zxid)

    def sess(self, sid):
        if sid == 0:
            return 0
        return SESSIONS.get(sid, "sess?")

    def norm(self, v):
        # ZnodeStat is a namedtuple with these fields
        if hasattr(v, "czxid") and hasattr(v, "pzxid"):
            return {
                "czxid": self.z(v.czxid),
                "mzxid": self.z(v.mzxid),
                "pzxid": self.z(v.pzxid),
                "ctime": "T",
                "mtime": "T",
                "version": v.version,
                "cversion": v.cversion,
                "aversion": v.aversion,
                "ephemeralOwner": self.sess(v.ephemeralOwner),
                "dataLength": v.dataLength,
                "numChildren": v.numChildren,
            }
        if isinstance(v, ACL):
            return ["ACL", v.perms, v.id.scheme, v.id.id]
        if isinstance(v, bytes):
            try:
                return v.decode("utf-8")
            except UnicodeDecodeError:
                return "hex:" + v.hex()
        if isinstance(v, BaseException):
            return ["exc", exc_name(v)]
        if isinstance(v, tuple) and hasattr(v, "_fields") and hasattr(v, "type") and hasattr(v, "path"):
            # WatchedEvent(type, state, path)
            return ["event", str(v.type), str(v.state), v.path]
        if isinstance(v, (list, tuple)):
            return [self.norm(x) for x in v]
        if isinstance(v, dict):
            return {str(k): self.norm(x) for k, x in v.items()}
        if isinstance(v, (str, int, float, bool)) or v is None:
            return v
        return repr(v)

    # ---- clients -------------------------------------------------------------------
    def client(self, name, hosts=None, timeout=10.0, auth=None, **kw):
        c = KazooClient(
            hosts=hosts or HOSTS,
            timeout=timeout,
            auth_data=auth,
            connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5),
            **kw,
        )
        c.start(timeout=WAIT)
        SESSIONS[c.client_id[0]] = name
        if os.environ.get("KAZOO_SCENARIO_DEBUG"):
            sys.stderr.write("session 0x%x = %s/%s\n" % (c.client_id[0], self.name, name))
        self.clients.append(c)
        return c

    def close_all(self):
        clients, self.clients = self.clients, []
        for c in clients:
            try:
                c.stop()
                c.close()
            except Exception:
                pass


class Recorder:
    """Thread-safe list of callback invocations, with waiting."""

    def __init__(self):
        self.items = []
        self.cv = threading.Condition()

    def add(self, *item):
        with self.cv:
            self.items.append(list(item))
            self.cv.notify_all()

    def wait_len(self, n, timeout=WAIT):
        with self.cv:
            self.cv.wait_for(lambda: len(self.items) >= n, timeout)
            return len(self.items) >= n

    def settle(self, quiet=0.3):
        """Waits until no new item arrived for `quiet` seconds (catches extra events)."""
        while True:
            n = len(self.items)
            time.sleep(quiet)
            if len(self.items) == n:
                return

    def take(self):
        with self.cv:
            out, self.items = self.items, []
            return out


# ---------------------------------------------------------------------------------------
# A TCP proxy between a client and the server, so a section can cut, refuse and freeze
# connections deterministically (reconnect and session-expiry sections).
# ---------------------------------------------------------------------------------------
class Proxy:
    def __init__(self, target):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.accepting = True
        self.frozen = False
        self.pairs = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if not self.accepting:
                c.close()
                continue
            try:
                u = socket.create_connection(self.target)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.pairs.append((c, u))
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()

    def _pump(self, a, b):
        socks = [a, b]
        try:
            while True:
                r, _, _ = select.select(socks, [], [], 0.05)
                for s in r:
                    d = s.recv(65536)
                    if not d:
                        raise OSError("eof")
                    if self.frozen:
                        continue  # a partition: bytes vanish in both directions
                    (b if s is a else a).sendall(d)
        except OSError:
            pass
        finally:
            for s in socks:
                try:
                    s.close()
                except OSError:
                    pass

    def drop_all(self):
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.closed = True
        self.accepting = False
        try:
            self.sock.close()
        except OSError:
            pass
        self.drop_all()


def four_letter(word):
    host, port = HOSTS.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(word)
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
    s.close()
    return out.decode()


def wchp(t, prefix):
    """`wchp` (watches by path) restricted to paths under prefix: {path: [client names]}.
    kazoo's lock nodes carry a random uuid: replaced by `<uuid>`."""
    import re
    out = {}
    path = None
    for line in four_letter(b"wchp").splitlines():
        if not line.strip():
            continue
        if line.startswith("\t") or line.startswith(" "):
            if path is not None and path.startswith(prefix):
                out.setdefault(path, []).append(t.sess(int(line.strip(), 16)))
        else:
            path = re.sub(r"[0-9a-f]{32}__", "<uuid>__", line.strip())
    return {p: sorted(v) for p, v in sorted(out.items())}


# ---------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------
def s_crud(t):
    c = t.client("c1")
    b = "/crud"
    t.call("create", c.create, b, b"root")
    t.call("create_child", c.create, b + "/a", b"A")
    t.call("get", c.get, b + "/a")
    t.call("exists", c.exists, b + "/a")
    t.call("exists_missing", c.exists, b + "/nope")
    t.call("set", c.set, b + "/a", b"A2")
    t.call("set_bad_version", c.set, b + "/a", b"x", version=7)
    t.call("set_good_version", c.set, b + "/a", b"A3", version=1)
    t.call("get_after_sets", c.get, b + "/a")
    t.call("create_exists", c.create, b + "/a")
    t.call("create_no_parent", c.create, b + "/x/y")
    t.call("create_makepath", c.create, b + "/x/y/z", b"deep", makepath=True)
    t.call("ensure_path", c.ensure_path, b + "/e1/e2/e3")
    t.call("ensure_path_again", c.ensure_path, b + "/e1/e2/e3")
    t.call("exists_ensured", c.exists, b + "/e1/e2/e3")
    t.rec("children", sorted(c.get_children(b)))
    ch, st = c.get_children(b, include_data=True)
    t.rec("children_include_data", sorted(ch), st)
    t.call("create_include_data", c.create, b + "/d", b"D", include_data=True)
    t.call("create_empty_value", c.create, b + "/empty")
    t.call("get_empty", c.get, b + "/empty")
    t.call("create_unicode", c.create, b + "/\u00fcn\u00efc\u00f8de", "\u2603".encode())
    t.call("get_unicode", c.get, b + "/\u00fcn\u00efc\u00f8de")
    t.call("create_binary", c.create, b + "/bin", bytes(range(256)))
    t.call("get_binary", c.get, b + "/bin")
    t.call("delete_not_empty", c.delete, b + "/x")
    t.call("delete_bad_version", c.delete, b + "/a", version=5)
    t.call("delete_good_version", c.delete, b + "/a", version=2)
    t.call("delete_recursive", c.delete, b + "/x", recursive=True)
    t.call("delete_missing", c.delete, b + "/nope")
    t.call("get_missing", c.get, b + "/nope")
    t.call("children_missing", c.get_children, b + "/nope")
    t.call("set_missing", c.set, b + "/nope", b"v")
    t.call("double_slash", c.create, b + "//x")
    t.call("dot_component", c.create, b + "/./x")
    t.call("trailing_slash", c.create, b + "/x/")
    t.call("sync", c.sync, b)
    t.call("parent_stat", c.exists, b)
    t.rec("children_end", sorted(c.get_children(b)))
    t.rec("zookeeper_children", sorted(c.get_children("/zookeeper")))
    t.call("zookeeper_config", lambda: c.get("/zookeeper/config")[0])
    t.call("zookeeper_quota", lambda: c.get("/zookeeper/quota")[0])
    t.call("create_under_zookeeper", c.create, "/zookeeper/mine", b"x")
    t.call("delete_zookeeper", c.delete, "/zookeeper")
    t.call("delete_root", c.delete, "/")
    # a value just under and just over jute.maxbuffer (1 MiB - 1)
    t.call("create_900k", lambda: c.create(b + "/big", b"x" * 900_000) and len(c.get(b + "/big")[0]))
    t.call("create_1100k", c.create, b + "/bigger", b"x" * 1_100_000)
    wait_until(lambda: c.connected)
    t.call("after_too_big_exists", c.exists, b + "/bigger")
    t.call("after_too_big_still_works", lambda: c.get(b + "/d")[0])


def s_seq_eph(t):
    c1 = t.client("c1")
    c2 = t.client("c2")
    b = "/seq"
    c1.create(b)
    for i in range(3):
        t.call("seq_%d" % i, c1.create, b + "/n-", b"%d" % i, sequence=True)
    t.call("delete_seq_1", c1.delete, b + "/n-0000000001")
    t.call("seq_after_delete", c1.create, b + "/n-", sequence=True)
    t.call("parent_stat", c1.exists, b)
    t.call("seq_bare", c1.create, b + "/", sequence=True)
    t.call("eph", c1.create, b + "/e", b"eph", ephemeral=True)
    t.call("eph_stat_other_client", c2.exists, b + "/e")
    t.call("eph_seq", c1.create, b + "/es-", ephemeral=True, sequence=True)
    t.call("eph_child", c1.create, b + "/e/child")
    t.call("eph_exists_again", c2.create, b + "/e", ephemeral=True)
    t.call("eph_seq_makepath", c2.create, b + "/deep/p/q-", ephemeral=True, sequence=True, makepath=True)
    t.rec("children_before_close", sorted(c2.get_children(b)))
    c1.stop()
    t.rec("children_after_c1_close", sorted(c2.get_children(b)))
    t.call("parent_stat_after_close", c2.exists, b)
    # a new session on the same client object: new session id, ephemerals gone
    c1.start(timeout=WAIT)
    SESSIONS[c1.client_id[0]] = "c1b"
    t.call("eph_after_restart", c1.create, b + "/e", ephemeral=True)
    t.call("eph_owner_after_restart", c2.exists, b + "/e")


def s_watches(t):
    c1 = t.client("c1")
    c2 = t.client("c2")
    b = "/w"
    c2.create(b)

    data = Recorder()
    kids = Recorder()

    def on_data(d, st, ev):
        data.add(d, st.version if st else None, str(ev.type) if ev else None)

    def on_kids(children, ev=None):
        kids.add(sorted(children), str(ev.type) if ev else None)

    c1.DataWatch(b + "/a", on_data)
    c1.ChildrenWatch(b, on_kids, send_event=True)
    data.wait_len(1)
    kids.wait_len(1)
    t.rec("initial", data.take(), kids.take())

    c2.create(b + "/a", b"1")
    data.wait_len(1)
    kids.wait_len(1)
    data.settle()
    t.rec("after_create", data.take(), kids.take())

    c2.set(b + "/a", b"2")
    data.wait_len(1)
    data.settle()
    t.rec("after_set", data.take(), kids.take())

    c1.set(b + "/a", b"3")  # the watching client writes itself
    data.wait_len(1)
    data.settle()
    t.rec("after_own_set", data.take(), kids.take())

    c2.create(b + "/b")
    kids.wait_len(1)
    kids.settle()
    t.rec("after_create_b", data.take(), kids.take())

    c2.delete(b + "/a")
    data.wait_len(1)
    kids.wait_len(1)
    data.settle()
    t.rec("after_delete", data.take(), kids.take())

    # one-shot watches with the raw API
    ev = Recorder()
    t.call("exists_watch_missing", c1.exists, b + "/c", watch=lambda e: ev.add("exists", e))
    c2.create(b + "/c", b"c")
    ev.wait_len(1)
    t.call("get_watch", c1.get, b + "/c", watch=lambda e: ev.add("get", e))
    t.call("children_watch", c1.get_children, b + "/c", watch=lambda e: ev.add("children", e))
    t.call("exists_watch", c1.exists, b + "/c", watch=lambda e: ev.add("exists2", e))
    c2.set(b + "/c", b"c2")
    ev.wait_len(3)
    ev.settle()
    # re-arm after the data change, then delete: one NodeDeleted per registration
    c1.get(b + "/c", watch=lambda e: ev.add("get2", e))
    c2.delete(b + "/c")
    ev.wait_len(5)
    ev.settle()
    t.rec("oneshot_events", sorted((x[0], t.norm(x[1])) for x in ev.take()))

    # get/get_children on a missing node set no watch: creating it fires nothing
    t.call("get_watch_missing", c1.get, b + "/m", watch=lambda e: ev.add("get_missing", e))
    t.call("children_watch_missing", c1.get_children, b + "/m", watch=lambda e: ev.add("kids_missing", e))
    c2.create(b + "/m")
    ev.settle(0.5)
    t.rec("missing_node_watch_events", [(x[0], t.norm(x[1])) for x in ev.take()])

    # many watches, one event each
    n = 50
    for i in range(n):
        c2.create(b + "/many%02d" % i)
    for i in range(n):
        c1.get(b + "/many%02d" % i, watch=lambda e: ev.add("many", e.path))
    tr = c2.transaction()
    for i in range(n):
        tr.set_data(b + "/many%02d" % i, b"x")
    t.rec("multi_set_results_ok", all(not isinstance(r, Exception) for r in tr.commit()))
    ev.wait_len(n)
    ev.settle()
    t.rec("many_events", len(ev.items), sorted(set(x[1] for x in ev.take())) == [b + "/many%02d" % i for i in range(n)])

    # watch counts as the server sees them
    t.rec("wchp", wchp(t, b))


def s_txn(t):
    c = t.client("c1")
    b = "/txn"
    c.create(b)
    c.create(b + "/existing", b"e")
    tr = c.transaction()
    tr.create(b + "/t1", b"one")
    tr.create(b + "/t1/child")
    tr.set_data(b + "/existing", b"e2")
    tr.check(b + "/existing", 1)
    tr.create(b + "/seq-", sequence=True)
    tr.create(b + "/eph", ephemeral=True)
    t.rec("ok", tr.commit())
    t.call("ok_children", lambda: sorted(c.get_children(b)))

    tr = c.transaction()
    tr.create(b + "/t2")
    tr.delete(b + "/missing")
    tr.set_data(b + "/existing", b"never")
    t.rec("fail_middle", tr.commit())
    t.call("fail_middle_t2_absent", c.exists, b + "/t2")
    t.call("fail_middle_data_kept", lambda: c.get(b + "/existing")[0])

    tr = c.transaction()
    tr.check(b + "/existing", 99)
    tr.create(b + "/t3")
    t.rec("fail_check", tr.commit())

    tr = c.transaction()
    tr.delete(b + "/t1/child")
    tr.delete(b + "/t1")
    tr.create(b + "/t1", b"again")
    t.rec("delete_recreate", tr.commit())
    t.call("delete_recreate_stat", c.exists, b + "/t1")

    tr = c.transaction()
    tr.delete(b + "/t1")
    tr.delete(b + "/t1")
    t.rec("double_delete", tr.commit())

    tr = c.transaction()
    tr.create(b + "/existing")
    t.rec("create_exists", tr.commit())

    tr = c.transaction()
    tr.set_data(b + "/existing", b"v", version=42)
    tr.create(b + "/t4")
    t.rec("bad_version_first", tr.commit())

    tr = c.transaction()
    tr.create(b + "/eph/x")
    t.rec("child_of_ephemeral", tr.commit())

    tr = c.transaction()
    t.rec("empty", tr.commit())

    with c.transaction() as tr:
        tr.create(b + "/ctx")
    t.rec("context_manager", tr.committed, tr.results if hasattr(tr, "results") else None)
    t.call("parent_stat", c.exists, b)


def s_acl(t):
    b = "/acl"
    admin = t.client("admin")
    anon = t.client("anon")
    alice = t.client("alice", auth=[("digest", "alice:pw-a")])
    admin.create(b)
    alice_all = make_digest_acl("alice", "pw-a", all=True)
    t.rec("digest_acl", alice_all)
    world_read = make_acl("world", "anyone", read=True)
    t.call("create_private", alice.create, b + "/private", b"secret", acl=[alice_all])
    t.call("anon_get", anon.get, b + "/private")
    t.call("anon_exists", lambda: anon.exists(b + "/private") is not None)
    t.call("anon_get_acls", anon.get_acls, b + "/private")
    t.call("anon_children", anon.get_children, b + "/private")
    t.call("anon_set", anon.set, b + "/private", b"x")
    t.call("anon_create_child", anon.create, b + "/private/c")
    t.call("anon_set_acls", anon.set_acls, b + "/private", OPEN_ACL_UNSAFE)
    t.call("alice_get", alice.get, b + "/private")
    t.call("alice_get_acls", alice.get_acls, b + "/private")
    t.call("anon_add_auth_alice", anon.add_auth, "digest", "alice:pw-a")
    t.call("anon_get_after_auth", lambda: anon.get(b + "/private")[0])
    t.call("wrong_password_client", lambda: t.client("bob", auth=[("digest", "alice:wrong")]).get(b + "/private"))

    t.call("create_readonly", alice.create, b + "/ro", b"r", acl=[world_read, alice_all])
    t.call("admin_read_ro", lambda: admin.get(b + "/ro")[0])
    t.call("admin_write_ro", admin.set, b + "/ro", b"x")
    t.call("alice_write_ro", alice.set, b + "/ro", b"y")
    t.call("set_acls_bad_version", alice.set_acls, b + "/ro", [world_read], version=5)
    t.call("set_acls", alice.set_acls, b + "/ro", [world_read, make_acl("world", "anyone", write=True)], version=0)
    t.call("get_acls_after", admin.get_acls, b + "/ro")
    t.call("admin_write_after", admin.set, b + "/ro", b"z")

    # "auth" scheme expands to the session's identities
    t.call("create_auth_scheme", alice.create, b + "/auth", acl=[make_acl("auth", "", all=True)])
    t.call("get_acls_auth_scheme", alice.get_acls, b + "/auth")
    t.call("create_auth_scheme_no_auth", admin.create, b + "/auth2", acl=[make_acl("auth", "", all=True)])
    # invalid ACLs
    t.call("invalid_digest_id", admin.create, b + "/bad1", acl=[make_acl("digest", "nocolon", all=True)])
    t.call("invalid_scheme", admin.create, b + "/bad2", acl=[make_acl("nosuch", "x", all=True)])
    t.call("invalid_ip", admin.create, b + "/bad3", acl=[make_acl("ip", "1.2.3.4/33", all=True)])
    t.call("ip_acl", admin.create, b + "/ip", acl=[make_acl("ip", "127.0.0.1", all=True)])
    t.call("ip_acl_read", lambda: anon.get(b + "/ip")[0])
    t.call("ip_acl_other_net", admin.create, b + "/ip2", acl=[make_acl("ip", "10.0.0.0/8", all=True)])
    t.call("ip_acl_other_net_read", anon.get, b + "/ip2")
    t.call("empty_acl_list", admin.create, b + "/noacl", acl=[])
    # create only / delete only permissions on a parent
    t.call("create_only_parent", alice.create, b + "/co", acl=[make_acl("world", "anyone", create=True, read=True)])
    t.call("create_only_child", admin.create, b + "/co/kid")
    t.call("create_only_delete", admin.delete, b + "/co/kid")
    # super user bypasses everything
    su = t.client("super", auth=[("digest", "super:su-pw")])
    t.call("super_get", lambda: su.get(b + "/private")[0])
    t.call("super_set_acls", su.set_acls, b + "/private", OPEN_ACL_UNSAFE)
    t.call("anon_get_after_super", lambda: anon.get(b + "/private")[0])
    # multi with an ACL failure
    tr = anon.transaction()
    tr.create(b + "/m1")
    tr.set_data(b + "/ro", b"q")
    tr.create(b + "/ip2/x")
    t.rec("multi_noauth", tr.commit())
    # watch delivery is filtered by READ (CVE-2024-23944 backport on Debian's 3.8.0)
    ev = Recorder()
    alice.create(b + "/hidden", acl=[alice_all])
    anon2 = t.client("anon2")
    anon2.exists(b + "/hidden", watch=lambda e: ev.add("anon", e))
    alice.exists(b + "/hidden", watch=lambda e: ev.add("alice", e))
    alice.set(b + "/hidden", b"changed")
    ev.wait_len(1)
    ev.settle(0.5)
    t.rec("acl_filtered_watch", sorted((x[0], t.norm(x[1])) for x in ev.take()))
    # DELETE is checked on the parent: anyone may delete alice's node under an open parent
    t.call("anon_delete_private", anon.delete, b + "/private")


def s_auth_failure(t):
    """Failed authentication. Last on purpose: after AuthFailed kazoo keeps creating new
    sessions (it re-sends the failing credential on every reconnect) until stopped, and
    those sessions expire 10 s later, spending zxids that would shift other sections."""
    bad1 = t.client("bad1")
    states = Recorder()
    bad1.add_listener(lambda s: states.add(str(s)))
    t.call("auth_unknown_scheme", bad1.add_auth, "nosuch", "x")
    states.wait_len(1)
    t.rec("auth_unknown_scheme_first_state", states.take()[0])
    bad1.stop()
    bad2 = t.client("bad2")
    t.call("auth_malformed_digest", bad2.add_auth, "digest", "nocolon")
    t.rec("auth_malformed_state", bad2.state)
    t.call("still_works", lambda: bad2.exists("/") is not None)


def s_lock(t):
    b = "/lock"
    c1, c2, c3 = t.client("c1"), t.client("c2"), t.client("c3")
    l1 = c1.Lock(b, "one")
    l2 = c2.Lock(b, "two")
    l3 = c3.Lock(b, "three")
    t.call("l1_acquire", l1.acquire)
    t.call("l2_try", l2.acquire, blocking=False)
    t.call("l2_timeout", l2.acquire, timeout=0.3)
    t.rec("contenders_1", l1.contenders())
    got = Recorder()

    def take(name, lock):
        lock.acquire()
        got.add(name)

    th2 = threading.Thread(target=take, args=("two", l2), daemon=True)
    th2.start()
    wait_until(lambda: len(l1.contenders()) == 2)
    th3 = threading.Thread(target=take, args=("three", l3), daemon=True)
    th3.start()
    wait_until(lambda: len(l1.contenders()) == 3)
    time.sleep(0.3)
    t.rec("contenders_3", l1.contenders())
    # no herd: each waiter watches only its predecessor
    t.rec("watches_waiting", wchp(t, b))
    t.rec("nobody_else_yet", got.take())
    l1.release()
    got.wait_len(1)
    time.sleep(0.3)
    t.rec("after_release_1", got.take(), l1.contenders())
    t.rec("watches_after_release_1", wchp(t, b))
    l2.release()
    got.wait_len(1)
    t.rec("after_release_2", got.take(), l1.contenders())
    # holder's session dies: lock passes on
    t.call("l1_again_try", l1.acquire, blocking=False)
    th1 = threading.Thread(target=take, args=("one", l1), daemon=True)
    th1.start()
    wait_until(lambda: len(l1.contenders()) == 2)
    c3.stop()
    got.wait_len(1)
    t.rec("after_holder_session_closed", got.take(), l1.contenders())
    l1.release()

    # read/write locks
    r1 = c1.ReadLock(b + "/rw", "r1")
    r2 = c2.ReadLock(b + "/rw", "r2")
    w1 = c2.WriteLock(b + "/rw", "w1")
    t.call("r1", r1.acquire, timeout=5)
    t.call("r2_shared", r2.acquire, timeout=5)
    t.call("w1_blocked", w1.acquire, timeout=0.3)
    r1.release()
    r2.release()
    t.call("w1_free", w1.acquire, timeout=5)
    t.call("r1_blocked", r1.acquire, timeout=0.3)
    w1.release()
    # semaphore
    s1 = c1.Semaphore(b + "/sem", "s1", max_leases=2)
    s2 = c2.Semaphore(b + "/sem", "s2", max_leases=2)
    c4 = t.client("c4")
    s3 = c4.Semaphore(b + "/sem", "s3", max_leases=2)
    t.call("s1", s1.acquire)
    t.call("s2", s2.acquire)
    t.call("s3_full", s3.acquire, blocking=False)
    t.rec("lease_holders", sorted(s1.lease_holders()))
    s1.release()
    t.call("s3_after_release", s3.acquire, timeout=5)
    t.rec("lease_holders_after", sorted(s1.lease_holders()))
    s2.release()
    s3.release()


def s_election(t):
    b = "/election"
    c1, c2 = t.client("c1"), t.client("c2")
    leaders = Recorder()
    release = {"c1": threading.Event(), "c2": threading.Event()}

    def lead(name):
        leaders.add(name)
        release[name].wait(WAIT)

    e1 = c1.Election(b, "id-one")
    e2 = c2.Election(b, "id-two")

    def quiet_run(e, *args):
        # the leader's client is stopped under it: kazoo then raises ConnectionClosedError
        try:
            e.run(*args)
        except KazooException:
            pass

    th1 = threading.Thread(target=quiet_run, args=(e1, lead, "c1"), daemon=True)
    th1.start()
    leaders.wait_len(1)
    th2 = threading.Thread(target=e2.run, args=(lead, "c2"), daemon=True)
    th2.start()
    wait_until(lambda: len(e1.contenders()) == 2)
    t.rec("contenders", e1.contenders())
    t.rec("leaders_1", leaders.take())
    # the leader's client goes away (session closed): c2 takes over
    c1.stop()
    leaders.wait_len(1)
    t.rec("leaders_after_c1_closed", leaders.take(), e2.contenders())
    release["c2"].set()
    th2.join(WAIT)
    t.rec("contenders_after_c2_done", e2.contenders())
    # cancel a waiting contender
    c3 = t.client("c3")
    e3 = c3.Election(b, "id-three")
    release["c2"].clear()
    th2 = threading.Thread(target=e2.run, args=(lead, "c2"), daemon=True)
    th2.start()
    leaders.wait_len(1)
    th3 = threading.Thread(target=e3.run, args=(lead, "c3"), daemon=True)
    th3.start()
    wait_until(lambda: len(e2.contenders()) == 2)
    e3.cancel()
    th3.join(WAIT)
    t.rec("after_cancel", leaders.take(), e2.contenders())
    release["c2"].set()
    th2.join(WAIT)


def s_barrier(t):
    b = "/barrier"
    c1, c2 = t.client("c1"), t.client("c2")
    bar1 = c1.Barrier(b + "/simple")
    bar2 = c2.Barrier(b + "/simple")
    t.call("wait_no_barrier", bar2.wait, 0.1)
    t.call("create", bar1.create)
    t.call("wait_timeout", bar2.wait, 0.3)
    res = Recorder()
    th = threading.Thread(target=lambda: res.add(bar2.wait(WAIT)), daemon=True)
    th.start()
    time.sleep(0.2)
    t.call("remove", bar1.remove)
    res.wait_len(1)
    t.rec("waiter_released", res.take())

    order = Recorder()

    def member(c, name):
        db = c.DoubleBarrier(b + "/double", 3, name)
        db.enter()
        order.add("entered", name)
        time.sleep(0.1)
        db.leave()
        order.add("left", name)

    c3 = t.client("c3")
    ths = [threading.Thread(target=member, args=(c, n), daemon=True) for c, n in ((c1, "m1"), (c2, "m2"))]
    for th in ths:
        th.start()
    time.sleep(0.5)
    t.rec("two_of_three_not_entered", order.take())
    th3 = threading.Thread(target=member, args=(c3, "m3"), daemon=True)
    th3.start()
    order.wait_len(6)
    got = order.take()
    t.rec("all_entered_then_left", sorted(x[1] for x in got if x[0] == "entered"), sorted(x[1] for x in got if x[0] == "left"))
    t.rec("entered_before_any_left", max(i for i, x in enumerate(got) if x[0] == "entered") < min(i for i, x in enumerate(got) if x[0] == "left"))
    t.rec("double_barrier_children", sorted(c1.get_children(b + "/double")) if c1.exists(b + "/double") else None)


def s_queue(t):
    b = "/queue"
    c1, c2 = t.client("c1"), t.client("c2")
    q1 = c1.Queue(b + "/q")
    q2 = c2.Queue(b + "/q")
    for v, p in ((b"a", 100), (b"b", 100), (b"urgent", 1), (b"c", 100)):
        q1.put(v, priority=p)
    t.rec("len", len(q2))
    t.rec("gets", [q2.get() for _ in range(5)])
    lq1 = c1.LockingQueue(b + "/lq")
    lq2 = c2.LockingQueue(b + "/lq")
    lq1.put(b"x")
    lq1.put_all([b"y", b"z"], priority=50)
    t.rec("locking_len", len(lq2))
    t.call("lq2_get", lq2.get, 2)
    t.call("lq1_get_other", lq1.get, 2)
    t.call("lq2_holds", lq2.holds_lock)
    t.call("lq2_consume", lq2.consume)
    t.call("lq1_consume", lq1.consume)
    t.call("lq2_get_again", lq2.get, 2)
    t.call("lq2_release", lq2.release)
    t.call("lq1_get_released", lq1.get, 2)
    t.call("lq1_consume2", lq1.consume)
    t.rec("locking_len_end", len(lq1))
    t.call("get_empty_timeout", lq1.get, 0.2)
    res = Recorder()
    th = threading.Thread(target=lambda: res.add(lq2.get(WAIT)), daemon=True)
    th.start()
    time.sleep(0.2)
    lq1.put(b"late")
    res.wait_len(1)
    t.rec("blocking_get", res.take())
    lq2.consume()


def s_counter(t):
    b = "/counter"
    c1, c2 = t.client("c1"), t.client("c2")
    k1 = c1.Counter(b + "/int")
    k2 = c2.Counter(b + "/int")
    k1 += 5
    k2 -= 2
    t.rec("value", k1.value, k2.value, k1.pre_value, k1.post_value, k2.pre_value, k2.post_value)
    kf = c1.Counter(b + "/float", default=0.5)
    kf += 1.25
    t.rec("float", kf.value, c1.get(b + "/float")[0])
    kc = c1.Counter(b + "/curator", support_curator=True)
    kc += 7
    t.rec("curator_style", kc.value, c1.get(b + "/curator")[0])

    def bump(k, n):
        for _ in range(n):
            k += 1  # noqa: F841 (Counter.__add__ mutates the node)

    ths = [threading.Thread(target=bump, args=(k, 25), daemon=True) for k in (c1.Counter(b + "/race"), c2.Counter(b + "/race"))]
    for th in ths:
        th.start()
    for th in ths:
        th.join(60)
    t.rec("contended", c1.Counter(b + "/race").value, c1.exists(b + "/race").version)


def s_party(t):
    b = "/party"
    c1, c2 = t.client("c1"), t.client("c2")
    p1 = c1.Party(b + "/p", "alpha")
    p2 = c2.Party(b + "/p", "beta")
    t.rec("empty", len(p1), sorted(p1))
    p1.join()
    p2.join()
    t.rec("joined", len(p1), sorted(p2))
    p1.leave()
    t.rec("one_left", len(p2), sorted(p2))
    s1 = c1.ShallowParty(b + "/s", "gamma")
    s2 = c2.ShallowParty(b + "/s", "delta")
    s1.join()
    s2.join()
    t.rec("shallow", len(s1), sorted(s2))
    c2.stop()
    t.rec("after_c2_closed", len(p1), sorted(p1), len(s1), sorted(s1))


def s_cache(t):
    b = "/cache"
    c1, c2 = t.client("c1"), t.client("c2")
    c2.ensure_path(b + "/pre/x")
    tc = TreeCache(c1, b)
    ev = Recorder()
    tc.listen(lambda e: ev.add(e.event_type, e.event_data.path if e.event_data else None,
                                e.event_data.data if e.event_data else None))
    tc.start()

    def settle(step):
        ev.settle(0.4)
        evs = ev.take()
        # initial/concurrent events may arrive in any order
        t.rec(step, sorted(evs, key=lambda x: (str(x[0]), str(x[1]))))

    ev.wait_len(4)
    settle("initial")
    c2.create(b + "/n1", b"v1")
    ev.wait_len(1)
    settle("create")
    c2.set(b + "/n1", b"v2")
    ev.wait_len(1)
    settle("update")
    c2.create(b + "/n1/deep/er", b"d", makepath=True)
    ev.wait_len(2)
    settle("create_deep")
    c2.delete(b + "/n1", recursive=True)
    ev.wait_len(3)
    settle("delete_recursive")
    t.rec("cache_children", sorted(tc.get_children(b) or []))
    t.call("cache_data", lambda: tc.get_data(b + "/pre/x").data)
    tc.close()


def s_reconnect(t):
    b = "/reconnect"
    proxy = Proxy(HOSTS)
    try:
        states = Recorder()
        c1 = t.client("c1", hosts=proxy.addr)
        c1.add_listener(lambda s: states.add(str(s)))
        c2 = t.client("c2")
        c1.create(b)
        c1.create(b + "/x", b"0")
        t.call("eph", c1.create, b + "/eph", ephemeral=True)
        data = Recorder()
        kids = Recorder()
        c1.DataWatch(b + "/x", lambda d, st, ev: data.add(d, st.version if st else None, str(ev.type) if ev else None))
        c1.ChildrenWatch(b, lambda ch: kids.add(sorted(ch)))
        data.wait_len(1)
        kids.wait_len(1)
        t.rec("initial", data.take(), kids.take())
        sid = c1.client_id[0]

        # cut the connection and refuse new ones; change things meanwhile
        proxy.accepting = False
        proxy.drop_all()
        states.wait_len(1)
        t.rec("state_after_cut", states.take())
        c2.set(b + "/x", b"1")
        c2.create(b + "/new")
        t.call("eph_survives_disconnect", lambda: t.sess(c2.exists(b + "/eph").ephemeralOwner))
        proxy.accepting = True
        states.wait_len(1)
        t.rec("state_after_reconnect", states.take(), c1.client_id[0] == sid)
        # kazoo sends no setWatches; its DataWatch/ChildrenWatch re-read on reconnect
        data.wait_len(1)
        kids.wait_len(1)
        data.settle(0.5)
        t.rec("watchers_after_reconnect", data.take(), kids.take())
        c2.set(b + "/x", b"2")
        data.wait_len(1)
        data.settle(0.3)
        t.rec("watch_after_reconnect_fires", data.take())
        t.call("eph_after_reconnect", lambda: t.sess(c2.exists(b + "/eph").ephemeralOwner))
        # a request sent while the connection is down fails with ConnectionLoss
        proxy.accepting = False
        proxy.drop_all()
        states.wait_len(1)
        t.rec("state_after_cut_2", states.take())
        # kazoo queues a request made while disconnected and sends it after reconnecting
        pending = c1.get_async(b + "/x")
        time.sleep(0.3)
        proxy.accepting = True
        try:
            r = pending.get(timeout=WAIT)
            t.rec("request_while_down", "ok", r[0])
        except Exception as e:  # ConnectionLoss / SessionExpired ...
            t.rec("request_while_down", "raise", exc_name(e))
        states.wait_len(1)
        t.rec("state_after_reconnect_2", states.take())
        t.call("works_after", lambda: c1.get(b + "/x")[0])
    finally:
        # close the sessions while the proxy still forwards: a session left behind would
        # expire later and spend a zxid in the middle of another section
        t.close_all()
        proxy.close()


def s_expiry(t):
    b = "/expiry"
    proxy = Proxy(HOSTS)
    try:
        observer = t.client("observer")
        observer.create(b)
        states = Recorder()
        victim = t.client("victim", hosts=proxy.addr, timeout=4.0)
        victim.add_listener(lambda s: states.add(str(s)))
        t.rec("negotiated_timeout", victim._session_timeout)
        victim.create(b + "/eph", b"mine", ephemeral=True)
        victim.create(b + "/eph-seq-", ephemeral=True, sequence=True)
        victim.create(b + "/persistent", b"stays")
        idle_states = Recorder()
        idle = t.client("idle", timeout=4.0)
        idle.add_listener(lambda s: idle_states.add(str(s)))
        idle.create(b + "/idle", ephemeral=True)
        gone = Recorder()
        observer.exists(b + "/eph", watch=lambda e: gone.add(e))
        observer.get_children(b, watch=lambda e: gone.add(e))
        # partition: the server hears nothing from the victim and expires its session
        proxy.frozen = True
        proxy.accepting = False
        start = time.time()
        gone.wait_len(2, timeout=30)
        elapsed = time.time() - start
        t.rec("expired_within_bounds", 3.0 <= elapsed <= 12.0 if gone.items else "never")
        sys.stderr.write("expiry after %.2fs\n" % elapsed)
        t.rec("observer_events", sorted(t.norm(e) for e in gone.take()))
        t.rec("children_after_expiry", sorted(observer.get_children(b)))
        t.rec("idle_client_untouched", idle_states.take(), t.sess(observer.exists(b + "/idle").ephemeralOwner))
        t.call("parent_stat", observer.exists, b)
        # heal: the victim reconnects, is told its session expired, and kazoo makes a new one
        proxy.frozen = False
        proxy.drop_all()
        proxy.accepting = True
        wait_until(lambda: "LOST" in [x[0] for x in states.items], timeout=20)
        wait_until(lambda: victim.connected, timeout=WAIT)
        states.settle(0.3)
        seen = [x[0] for x in states.take()]
        # SUSPENDED may repeat while kazoo retries; collapse runs
        collapsed = [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]
        t.rec("victim_states", collapsed)
        SESSIONS[victim.client_id[0]] = "victim2"
        t.call("victim_new_session_create", victim.create, b + "/eph", ephemeral=True)
        t.call("victim_new_owner", lambda: t.sess(observer.exists(b + "/eph").ephemeralOwner))

        # expire a session the way kazoo's own test-suite does: a second client
        # attaches to the same session id and closes it
        c3 = t.client("c3")
        c3.create(b + "/c3eph", ephemeral=True)
        sid, pw = c3.client_id
        st3 = Recorder()
        c3.add_listener(lambda s: st3.add(str(s)))
        twin = KazooClient(hosts=HOSTS, timeout=10.0, client_id=(sid, pw))
        twin.start(timeout=WAIT)
        t.rec("twin_same_session", twin.client_id[0] == sid)
        twin.stop()
        twin.close()
        t.call("c3eph_after_twin_close", observer.exists, b + "/c3eph")
        wait_until(lambda: "LOST" in [x[0] for x in st3.items], timeout=20)
        t.rec("c3_states", [x[0] for x in st3.take()][:2])
        # a wrong password for an existing session is an expired session too
        c4 = t.client("c4")
        bad = KazooClient(hosts=HOSTS, timeout=10.0, client_id=(c4.client_id[0], b"\x00" * 16))
        # kazoo's reaction to the "expired" answer is racy (a new session, or an exception
        # from start()); what matters is that it never gets c4's session
        try:
            bad.start(timeout=5)
            attached = bad.client_id is not None and bad.client_id[0] == c4.client_id[0]
        except Exception:
            attached = False
        t.rec("wrong_password_attached", attached)
        try:
            bad.stop()
            bad.close()
        except Exception:
            pass
        t.call("c4_still_alive", lambda: c4.exists("/") is not None)
    finally:
        t.close_all()
        proxy.close()


def s_fourlw(t):
    c = t.client("c1")
    t.rec("server_version_major_minor", list(c.server_version()[:2]))
    t.rec("ruok", c.command(b"ruok"))
    t.rec("isro", c.command(b"isro"))

    def kv(text, sep):
        out = {}
        for line in text.splitlines():
            if sep in line:
                k, v = line.split(sep, 1)
                out[k.strip()] = v.strip()
        return out

    c.ensure_path("/fourlw/a")
    c.create("/fourlw/e", ephemeral=True)
    c.get("/fourlw/a", watch=lambda e: None)
    c.get_children("/fourlw", watch=lambda e: None)
    mntr = kv(c.command(b"mntr"), "\t")
    documented = [
        "zk_version", "zk_avg_latency", "zk_max_latency", "zk_min_latency",
        "zk_packets_received", "zk_packets_sent", "zk_num_alive_connections",
        "zk_outstanding_requests", "zk_server_state", "zk_znode_count", "zk_watch_count",
        "zk_ephemerals_count", "zk_approximate_data_size", "zk_open_file_descriptor_count",
        "zk_max_file_descriptor_count", "zk_uptime", "zk_global_sessions", "zk_local_sessions",
    ]
    t.rec("mntr_missing_keys", [k for k in documented if k not in mntr])
    t.rec("mntr_values", {k: mntr.get(k) for k in ("zk_server_state", "zk_watch_count", "zk_ephemerals_count", "zk_outstanding_requests")})
    t.rec("mntr_numeric", {k: mntr.get(k, "").replace(".", "", 1).isdigit() for k in documented if k not in ("zk_version", "zk_server_state")})
    t.rec("mntr_version_prefix", mntr.get("zk_version", "")[:4])
    srvr = kv(c.command(b"srvr"), ":")
    t.rec("srvr_keys", sorted(srvr))
    t.rec("srvr_mode", srvr.get("Mode"))
    t.rec("srvr_zxid_hex", srvr.get("Zxid", "").startswith("0x"))
    stat = c.command(b"stat")
    t.rec("stat_has_clients_section", "Clients:" in stat, "Node count:" in stat)
    envi = kv(c.command(b"envi"), "=")
    t.rec("envi_keys_present", [k for k in ("zookeeper.version", "host.name", "os.name", "os.arch", "os.version", "user.name", "user.home", "user.dir", "os.memory.free", "os.memory.max", "os.memory.total") if k in envi])
    conf = kv(c.command(b"conf"), "=")
    t.rec("conf", {k: conf.get(k) for k in ("tickTime", "maxClientCnxns", "minSessionTimeout", "maxSessionTimeout", "serverId", "secureClientPort")})
    wchs = c.command(b"wchs")
    t.rec("wchs_shape", [line.split()[1:] if i == 0 else line.split(":")[0] for i, line in enumerate(wchs.splitlines()) if line])
    wchc = c.command(b"wchc")
    t.rec("wchc_paths", sorted(l.strip() for l in wchc.splitlines() if l.startswith("\t") and l.strip().startswith("/fourlw")))
    t.rec("wchp", wchp(t, "/fourlw"))
    cons = c.command(b"cons")
    t.rec("cons_has_session", ("sid=0x%x" % c.client_id[0]) in cons)
    t.rec("dirs_keys", sorted(kv(c.command(b"dirs"), ":")))
    t.rec("unknown_word", c.command(b"xxxx"))


def s_fourlw_details(t):
    """Details of four-letter-word answers where Corral is known to differ."""
    c = t.client("c1")

    def kv(text, sep):
        out = {}
        for line in text.splitlines():
            if sep in line:
                k, v = line.split(sep, 1)
                out[k.strip()] = v.strip()
        return out

    # ZooKeeper counts the connection that asked (the 4lw connection) as alive
    # (at least 2 with one client; more when earlier 4lw sockets are not reaped yet)
    t.rec("mntr_counts_asking_connection", int(kv(c.command(b"mntr"), "\t").get("zk_num_alive_connections", "0")) >= 2)
    t.rec("srvr_counts_asking_connection", int(kv(c.command(b"srvr"), ":").get("Connections", "0")) >= 2)
    # Java's user.name comes from the OS account, not from $USER
    envi = kv(c.command(b"envi"), "=")
    t.rec("envi_user_name_nonempty", bool(envi.get("user.name")))
    # `stat`/`srvr` average latency: ZooKeeper rounds it to at most 4 decimals
    lat = kv(c.command(b"srvr"), ":").get("Latency min/avg/max", "")
    avg = lat.split("/")[1] if lat.count("/") == 2 else ""
    t.rec("srvr_avg_latency_decimals_at_most_4", len(avg.split(".")[1]) <= 4 if "." in avg else True)
    # `cons` lists the asking connection too; after `crst` ZooKeeper resets lop/lzxid
    c.get("/")
    cons = c.command(b"cons")
    t.rec("cons_lists_asking_connection", "[0](queued=0,recved=1,sent=0)" in cons)
    c.command(b"crst")
    cons = c.command(b"cons")
    mine = [l for l in cons.splitlines() if ("sid=0x%x" % c.client_id[0]) in l]
    t.rec("cons_after_crst", ["lop=NA" in l and "lzxid=0xffffffffffffffff" in l for l in mine])
    # `dump` shows expiry buckets and a connections section
    dump = c.command(b"dump")
    t.rec("dump_sections", [l.split("(")[0] for l in dump.splitlines() if l and not l.startswith("\t") and not l.startswith("0x") and "expire at" not in l])
    t.rec("dump_has_expiry_buckets", "expire at" in dump)
    # "Sessions with Ephemerals" lists only sessions that own ephemerals
    eph_part = dump.split("ephemeral nodes dump:")[-1].split("Connections dump:")[0].splitlines()
    empty = 0
    for i, line in enumerate(eph_part):
        if line.startswith("0x") and (i + 1 >= len(eph_part) or not eph_part[i + 1].startswith("\t")):
            empty += 1
    t.rec("dump_sessions_without_ephemerals_listed", empty)
    # the trace mask
    t.rec("gtmk", c.command(b"gtmk").strip())


def s_big(t):
    """Large replies and many pipelined requests."""
    c = t.client("c1")
    b = "/big"
    c.create(b)
    # 3000 pipelined creates: replies come back in request order
    order = []
    lock = threading.Lock()

    def done(a):
        with lock:
            try:
                order.append(a.get())
            except Exception as e:
                order.append(exc_name(e))

    asyncs = []
    for i in range(3000):
        a = c.create_async(b + "/n-", b"v", sequence=True)
        a.rawlink(done)
        asyncs.append(a)
    for a in asyncs:
        a.get(timeout=60)
    wait_until(lambda: len(order) == 3000)
    t.rec("pipelined_creates_in_order", order == sorted(order), len(set(order)), order[0], order[-1])
    # a children list of ~380 KB
    t.rec("children_count", len(c.get_children(b)))
    st = c.exists(b)
    t.rec("parent_stat", st)
    # one multi of 1000 operations (a ~60 KB request, a ~30 KB reply)
    tr = c.transaction()
    for i in range(1000):
        tr.set_data(b + "/n-%010d" % i, b"w")
    res = tr.commit()
    t.rec("multi_1000", len(res), all(not isinstance(r, Exception) for r in res), res[-1])
    # a multi whose last op fails: nothing applied, every result reported
    tr = c.transaction()
    for i in range(1000, 1999):
        tr.delete(b + "/n-%010d" % i)
    tr.delete(b + "/missing")
    res = tr.commit()
    t.rec("multi_1000_fail", len(res), sorted(set(exc_name(r) for r in res)))
    t.rec("children_after_failed_multi", len(c.get_children(b)))
    # delete everything with multis of 500
    kids = sorted(c.get_children(b))
    for i in range(0, len(kids), 500):
        tr = c.transaction()
        for k in kids[i:i + 500]:
            tr.delete(b + "/" + k)
        tr.commit()
    t.rec("children_at_end", len(c.get_children(b)))
    st = c.exists(b)
    t.rec("parent_stat_at_end", st)
    # many async reads mixed with writes on one session stay ordered
    results = []
    asyncs = []
    for i in range(200):
        asyncs.append(("set", c.set_async(b, b"%d" % i)))
        asyncs.append(("get", c.get_async(b)))
    for kind, a in asyncs:
        r = a.get(timeout=60)
        results.append(r.version if kind == "set" else int(r[0]))
    t.rec("read_your_writes", results == [x for i in range(200) for x in (i + 1, i)])


SECTIONS = [
    ("crud", s_crud),
    ("seq_eph", s_seq_eph),
    ("watches", s_watches),
    ("txn", s_txn),
    ("acl", s_acl),
    ("lock", s_lock),
    ("election", s_election),
    ("barrier", s_barrier),
    ("queue", s_queue),
    ("counter", s_counter),
    ("party", s_party),
    ("cache", s_cache),
    ("reconnect", s_reconnect),
    ("expiry", s_expiry),
    ("fourlw", s_fourlw),
    ("fourlw_details", s_fourlw_details),
    ("big", s_big),
    ("auth_failure", s_auth_failure),
]


def main():
    global HOSTS
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    args = sys.argv[1:]
    if "--list" in args:
        print("\n".join(n for n, _ in SECTIONS))
        return
    HOSTS = args[0]
    only = None
    if "--only" in args:
        only = set(args[args.index("--only") + 1].split(","))
    for name, fn in SECTIONS:
        if only and name not in only:
            continue
        t = Trace(name)
        start = time.time()
        try:
            fn(t)
        except Exception as e:
            t.rec("SECTION-ABORTED", exc_name(e), str(e)[:200])
            traceback.print_exc(file=sys.stderr)
        finally:
            t.close_all()
        sys.stderr.write("section %s: %.2fs\n" % (name, time.time() - start))
        for item in t.items:
            print(name + "\t" + json.dumps(item, sort_keys=True, ensure_ascii=True))
        print(name + "\tEND", flush=True)


if __name__ == "__main__":
    main()
