// Curator + ZooKeeper Java client compatibility scenario for Corral
// (driven by tests/compat_curator.rs, compiled at test time with javac).
//
// Runs a fixed list of sections against one ZooKeeper-compatible server and prints its
// trace on stdout, one step a line: `<section> TAB [step, value...]` (JSON, ASCII only),
// then `<section> TAB END` when the section finished.
// Normalised as in kazoo_scenario.py: zxids as distance from the section's first zxid
// (`z+3`), times as `T`, session ids as client names, children sorted, exceptions as
// KeeperException code names (or the exception's simple class name), Curator's protection
// prefix `_c_<uuid>-` and lock-node uuids as `<uuid>`.
//
// Usage: java -cp <classes>:<curator+zookeeper jars> CuratorScenario HOST:PORT [SECTION,...]

import java.io.*;
import java.lang.reflect.*;
import java.net.*;
import java.nio.charset.StandardCharsets;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;

import org.apache.curator.framework.*;
import org.apache.curator.framework.api.*;
import org.apache.curator.framework.api.transaction.*;
import org.apache.curator.framework.recipes.atomic.*;
import org.apache.curator.framework.recipes.cache.*;
import org.apache.curator.framework.recipes.leader.*;
import org.apache.curator.framework.recipes.locks.*;
import org.apache.curator.framework.recipes.nodes.*;
import org.apache.curator.framework.recipes.shared.*;
import org.apache.curator.framework.recipes.watch.*;
import org.apache.curator.framework.state.*;
import org.apache.curator.retry.*;
import org.apache.zookeeper.*;
import org.apache.zookeeper.data.*;

public class CuratorScenario {
    static String HOSTS;
    static final long WAIT_MS = 10_000;
    static final Map<Long, String> SESSIONS = new ConcurrentHashMap<>();

    // ---------------------------------------------------------------------------------
    // JSON
    // ---------------------------------------------------------------------------------
    static String json(Object v) {
        StringBuilder sb = new StringBuilder();
        json(sb, v);
        return sb.toString();
    }

    @SuppressWarnings("unchecked")
    static void json(StringBuilder sb, Object v) {
        if (v == null) {
            sb.append("null");
        } else if (v instanceof String) {
            String s = (String) v;
            sb.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                if (c == '"' || c == '\\') sb.append('\\').append(c);
                else if (c < 0x20 || c > 0x7e) sb.append(String.format("\\u%04x", (int) c));
                else sb.append(c);
            }
            sb.append('"');
        } else if (v instanceof Number || v instanceof Boolean) {
            sb.append(v.toString());
        } else if (v instanceof Map) {
            sb.append('{');
            boolean first = true;
            for (Map.Entry<String, Object> e : new TreeMap<>((Map<String, Object>) v).entrySet()) {
                if (!first) sb.append(", ");
                first = false;
                json(sb, e.getKey());
                sb.append(": ");
                json(sb, e.getValue());
            }
            sb.append('}');
        } else if (v instanceof List) {
            sb.append('[');
            boolean first = true;
            for (Object x : (List<Object>) v) {
                if (!first) sb.append(", ");
                first = false;
                json(sb, x);
            }
            sb.append(']');
        } else {
            json(sb, v.toString());
        }
    }

    static List<Object> list(Object... xs) {
        return new ArrayList<>(Arrays.asList(xs));
    }

    static String clean(String s) {
        if (s == null) return null;
        s = s.replaceAll("_c_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-", "_c_<uuid>-");
        return s;
    }

    static String excName(Throwable e) {
        if (e instanceof KeeperException) return ((KeeperException) e).code().name();
        return e.getClass().getSimpleName();
    }

    // ---------------------------------------------------------------------------------
    // Trace
    // ---------------------------------------------------------------------------------
    interface Call {
        Object run() throws Exception;
    }

    static class Trace {
        final String name;
        final List<Object> items = Collections.synchronizedList(new ArrayList<>());
        Long base = null;
        final List<AutoCloseable> closers = new ArrayList<>();

        Trace(String name) {
            this.name = name;
        }

        void rec(String step, Object... values) {
            List<Object> item = list(step);
            for (Object v : values) item.add(norm(v));
            items.add(item);
        }

        Object call(String step, Call c) {
            try {
                Object r = c.run();
                rec(step, r);
                return r;
            } catch (Exception e) {
                rec(step, "raise", excName(e));
                return null;
            }
        }

        synchronized String z(long zxid) {
            if (zxid == 0) return "0"; // system nodes (/zookeeper/config) were never created by a txn
            if (base == null) base = zxid;
            long d = zxid - base;
            return "z" + (d >= 0 ? "+" : "") + d;
        }

        Object sess(long sid) {
            if (sid == 0) return 0;
            String n = SESSIONS.get(sid);
            return n == null ? "sess?" : n;
        }

        Object norm(Object v) {
            if (v == null) return null;
            if (v instanceof Stat) {
                Stat s = (Stat) v;
                Map<String, Object> m = new TreeMap<>();
                m.put("czxid", z(s.getCzxid()));
                m.put("mzxid", z(s.getMzxid()));
                m.put("pzxid", z(s.getPzxid()));
                m.put("ctime", "T");
                m.put("mtime", "T");
                m.put("version", s.getVersion());
                m.put("cversion", s.getCversion());
                m.put("aversion", s.getAversion());
                m.put("ephemeralOwner", sess(s.getEphemeralOwner()));
                m.put("dataLength", s.getDataLength());
                m.put("numChildren", s.getNumChildren());
                return m;
            }
            if (v instanceof byte[]) return new String((byte[]) v, StandardCharsets.UTF_8);
            if (v instanceof String) return clean((String) v);
            if (v instanceof Number || v instanceof Boolean) return v;
            if (v instanceof Enum) return ((Enum<?>) v).name();
            if (v instanceof KeeperException) return list("exc", ((KeeperException) v).code().name());
            if (v instanceof Throwable) return list("exc", v.getClass().getSimpleName());
            if (v instanceof ACL) {
                ACL a = (ACL) v;
                return list("ACL", a.getPerms(), a.getId().getScheme(), a.getId().getId());
            }
            if (v instanceof WatchedEvent) {
                WatchedEvent e = (WatchedEvent) v;
                return list("event", e.getType().name(), e.getState().name(), e.getPath());
            }
            if (v instanceof ClientInfo) {
                ClientInfo c = (ClientInfo) v;
                return list(c.getAuthScheme(), c.getUser());
            }
            if (v instanceof CuratorTransactionResult) {
                CuratorTransactionResult r = (CuratorTransactionResult) v;
                return list(r.getType().name(), r.getForPath(), clean(r.getResultPath()), norm(r.getResultStat()), r.getError());
            }
            if (v instanceof OpResult) {
                OpResult r = (OpResult) v;
                if (r instanceof OpResult.CreateResult) {
                    OpResult.CreateResult c = (OpResult.CreateResult) r;
                    return list("create", r.getType(), c.getPath(), norm(c.getStat()));
                }
                if (r instanceof OpResult.SetDataResult) return list("setData", r.getType(), norm(((OpResult.SetDataResult) r).getStat()));
                if (r instanceof OpResult.DeleteResult) return list("delete", r.getType());
                if (r instanceof OpResult.CheckResult) return list("check", r.getType());
                if (r instanceof OpResult.ErrorResult) return list("error", r.getType(), KeeperException.Code.get(((OpResult.ErrorResult) r).getErr()).name());
                if (r instanceof OpResult.GetDataResult) {
                    OpResult.GetDataResult g = (OpResult.GetDataResult) r;
                    return list("getData", r.getType(), norm(g.getData()), norm(g.getStat()));
                }
                if (r instanceof OpResult.GetChildrenResult) {
                    List<String> ch = new ArrayList<>(((OpResult.GetChildrenResult) r).getChildren());
                    Collections.sort(ch);
                    return list("getChildren", r.getType(), ch);
                }
                return list("op", r.getType());
            }
            if (v instanceof ChildData) {
                ChildData d = (ChildData) v;
                return list(d.getPath(), d.getData() == null ? null : new String(d.getData(), StandardCharsets.UTF_8));
            }
            if (v instanceof Map) {
                Map<String, Object> m = new TreeMap<>();
                for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) m.put(String.valueOf(e.getKey()), norm(e.getValue()));
                return m;
            }
            if (v instanceof Collection) {
                List<Object> out = new ArrayList<>();
                for (Object x : (Collection<?>) v) out.add(norm(x));
                return out;
            }
            if (v instanceof Object[]) {
                List<Object> out = new ArrayList<>();
                for (Object x : (Object[]) v) out.add(norm(x));
                return out;
            }
            return clean(v.toString());
        }

        CuratorFramework curator(String name) throws Exception {
            return curator(name, HOSTS, null, 10_000);
        }

        CuratorFramework curator(String name, String hosts, String digest, int sessionMs) throws Exception {
            CuratorFrameworkFactory.Builder b = CuratorFrameworkFactory.builder()
                    .connectString(hosts)
                    .sessionTimeoutMs(sessionMs)
                    .connectionTimeoutMs(10_000)
                    .retryPolicy(new RetryForever(50));
            if (digest != null) b.authorization("digest", digest.getBytes(StandardCharsets.UTF_8));
            CuratorFramework c = b.build();
            c.start();
            if (!c.blockUntilConnected(10, TimeUnit.SECONDS)) throw new IllegalStateException("curator did not connect");
            SESSIONS.put(c.getZookeeperClient().getZooKeeper().getSessionId(), name);
            synchronized (closers) {
                closers.add(c);
            }
            return c;
        }

        ZooKeeper zk(String name, Watcher w) throws Exception {
            return zk(name, HOSTS, 10_000, w);
        }

        ZooKeeper zk(String name, String hosts, int timeout, Watcher w) throws Exception {
            CountDownLatch connected = new CountDownLatch(1);
            ZooKeeper z = new ZooKeeper(hosts, timeout, e -> {
                // the caller's watcher first, so that the first SyncConnected is recorded
                // before zk() returns
                if (w != null) w.process(e);
                if (e.getState() == Watcher.Event.KeeperState.SyncConnected) connected.countDown();
            });
            if (!connected.await(WAIT_MS, TimeUnit.MILLISECONDS)) throw new IllegalStateException("zk did not connect");
            SESSIONS.put(z.getSessionId(), name);
            synchronized (closers) {
                closers.add(z);
            }
            return z;
        }

        void closeAll() {
            List<AutoCloseable> cs;
            synchronized (closers) {
                cs = new ArrayList<>(closers);
            }
            Collections.reverse(cs);
            for (AutoCloseable c : cs) {
                try {
                    c.close();
                } catch (Exception ignored) {
                }
            }
        }
    }

    /** Thread-safe list of observations, with waiting. */
    static class Rec {
        final List<Object> items = new ArrayList<>();

        synchronized void add(Object... item) {
            items.add(item.length == 1 ? item[0] : list(item));
            notifyAll();
        }

        synchronized boolean waitLen(int n) throws InterruptedException {
            long deadline = System.currentTimeMillis() + WAIT_MS;
            while (items.size() < n) {
                long left = deadline - System.currentTimeMillis();
                if (left <= 0) return false;
                wait(left);
            }
            return true;
        }

        void settle(long quietMs) throws InterruptedException {
            while (true) {
                int n;
                synchronized (this) {
                    n = items.size();
                }
                Thread.sleep(quietMs);
                synchronized (this) {
                    if (items.size() == n) return;
                }
            }
        }

        synchronized List<Object> take() {
            List<Object> out = new ArrayList<>(items);
            items.clear();
            return out;
        }

        synchronized int size() {
            return items.size();
        }

        /** Waits until `value` has been recorded (or the wait times out). */
        synchronized boolean waitFor(Object value) throws InterruptedException {
            long deadline = System.currentTimeMillis() + WAIT_MS;
            while (!items.contains(value)) {
                long left = deadline - System.currentTimeMillis();
                if (left <= 0) return false;
                wait(left);
            }
            return true;
        }
    }

    /** Drops consecutive repeats: clients may report the same state twice while retrying. */
    static List<Object> collapse(List<Object> xs) {
        List<Object> out = new ArrayList<>();
        for (Object x : xs) if (out.isEmpty() || !out.get(out.size() - 1).equals(x)) out.add(x);
        return out;
    }

    /** A watcher recording only node events (the Java client also hands every watcher the
     * connection-state events, which say nothing about the server). */
    static Watcher typed(Rec ev, String name) {
        return e -> {
            if (e.getType() != Watcher.Event.EventType.None) ev.add(name, e);
        };
    }

    /** Waits until none of the recorders got anything new for quietMs. */
    static void settleAll(Rec[] recs, long quietMs) throws InterruptedException {
        while (true) {
            int n = 0;
            for (Rec r : recs) n += r.size();
            Thread.sleep(quietMs);
            int m = 0;
            for (Rec r : recs) m += r.size();
            if (m == n) return;
        }
    }

    static boolean waitUntil(Call pred) throws Exception {
        long deadline = System.currentTimeMillis() + WAIT_MS;
        while (System.currentTimeMillis() < deadline) {
            if (Boolean.TRUE.equals(pred.run())) return true;
            Thread.sleep(10);
        }
        return Boolean.TRUE.equals(pred.run());
    }

    static List<String> sorted(Collection<String> xs) {
        List<String> l = new ArrayList<>();
        for (String x : xs) l.add(clean(x));
        Collections.sort(l);
        return l;
    }

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String fourLetter(String word) throws IOException {
        String[] hp = HOSTS.split(":");
        try (Socket s = new Socket(hp[0], Integer.parseInt(hp[1]))) {
            s.setSoTimeout(5000);
            s.getOutputStream().write(word.getBytes(StandardCharsets.US_ASCII));
            s.getOutputStream().flush();
            return new String(s.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    /** `wchp` restricted to paths under prefix: path -> sorted client names. */
    static Map<String, Object> wchp(Trace t, String prefix) throws IOException {
        Map<String, List<String>> out = new TreeMap<>();
        String path = null;
        for (String line : fourLetter("wchp").split("\n")) {
            if (line.trim().isEmpty()) continue;
            if (line.startsWith("\t") || line.startsWith(" ")) {
                if (path != null && path.startsWith(prefix)) {
                    out.computeIfAbsent(path, k -> new ArrayList<>()).add(String.valueOf(t.sess(Long.decode(line.trim()))));
                }
            } else {
                path = clean(line.trim()).replaceAll("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>");
            }
        }
        Map<String, Object> m = new TreeMap<>();
        for (Map.Entry<String, List<String>> e : out.entrySet()) {
            Collections.sort(e.getValue());
            m.put(e.getKey(), e.getValue());
        }
        return m;
    }

    // ---------------------------------------------------------------------------------
    // A TCP proxy that can cut and refuse connections (reconnect sections).
    // ---------------------------------------------------------------------------------
    static class Proxy implements AutoCloseable {
        final ServerSocket server;
        final String targetHost;
        final int targetPort;
        volatile boolean accepting = true;
        final List<Socket> open = Collections.synchronizedList(new ArrayList<>());

        Proxy(String target) throws IOException {
            String[] hp = target.split(":");
            targetHost = hp[0];
            targetPort = Integer.parseInt(hp[1]);
            server = new ServerSocket(0, 16, InetAddress.getByName("127.0.0.1"));
            Thread t = new Thread(this::acceptLoop, "proxy-accept");
            t.setDaemon(true);
            t.start();
        }

        String addr() {
            return "127.0.0.1:" + server.getLocalPort();
        }

        void acceptLoop() {
            while (!server.isClosed()) {
                try {
                    Socket c = server.accept();
                    if (!accepting) {
                        c.close();
                        continue;
                    }
                    Socket u = new Socket(targetHost, targetPort);
                    open.add(c);
                    open.add(u);
                    pump(c, u);
                    pump(u, c);
                } catch (IOException e) {
                    // closed
                }
            }
        }

        void pump(Socket from, Socket to) {
            Thread t = new Thread(() -> {
                byte[] buf = new byte[65536];
                try {
                    InputStream in = from.getInputStream();
                    OutputStream out = to.getOutputStream();
                    int n;
                    while ((n = in.read(buf)) > 0) {
                        out.write(buf, 0, n);
                        out.flush();
                    }
                } catch (IOException ignored) {
                } finally {
                    try {
                        from.close();
                    } catch (IOException ignored) {
                    }
                    try {
                        to.close();
                    } catch (IOException ignored) {
                    }
                }
            }, "proxy-pump");
            t.setDaemon(true);
            t.start();
        }

        void dropAll() {
            List<Socket> s;
            synchronized (open) {
                s = new ArrayList<>(open);
                open.clear();
            }
            for (Socket x : s) {
                try {
                    x.close();
                } catch (IOException ignored) {
                }
            }
        }

        public void close() throws IOException {
            accepting = false;
            server.close();
            dropAll();
        }
    }

    // ---------------------------------------------------------------------------------
    // Sections
    // ---------------------------------------------------------------------------------
    static void sCrud(Trace t) throws Exception {
        CuratorFramework c = t.curator("c1");
        String b = "/cur-crud";
        t.call("create", () -> c.create().forPath(b, b("root")));
        t.call("create_parents", () -> c.create().creatingParentsIfNeeded().forPath(b + "/a/b/c", b("deep")));
        t.call("create_exists", () -> c.create().forPath(b + "/a"));
        t.call("create_no_parent", () -> c.create().forPath(b + "/x/y"));
        t.call("seq1", () -> c.create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath(b + "/seq-"));
        t.call("seq2", () -> c.create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath(b + "/seq-", b("two")));
        t.call("protected_eph_seq", () -> c.create().withProtection().withMode(CreateMode.EPHEMERAL_SEQUENTIAL).forPath(b + "/prot-", b("p")));
        t.call("protected_plain", () -> c.create().withProtection().forPath(b + "/protp", b("p")));
        t.call("protected_parents", () -> c.create().creatingParentsIfNeeded().withProtection().withMode(CreateMode.EPHEMERAL).forPath(b + "/pp/q/r", b("p")));
        t.call("parent_containers", () -> c.create().creatingParentContainersIfNeeded().forPath(b + "/cont/x/y", b("y")));
        t.call("container", () -> c.create().withMode(CreateMode.CONTAINER).forPath(b + "/cont2"));
        t.call("ttl", () -> c.create().withTtl(600_000).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(b + "/ttl", b("t")));
        t.call("ttl_seq", () -> c.create().withTtl(600_000).withMode(CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL).forPath(b + "/ttls-", b("t")));
        t.call("ttl_zero", () -> c.create().withTtl(0).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(b + "/ttl0"));
        t.call("ttl_stat", () -> c.checkExists().forPath(b + "/ttl"));
        t.call("container_stat", () -> c.checkExists().forPath(b + "/cont2"));
        t.call("or_set_data_new", () -> c.create().orSetData().forPath(b + "/osd", b("1")));
        t.call("or_set_data_existing", () -> c.create().orSetData().forPath(b + "/osd", b("2")));
        t.call("osd_value", () -> c.getData().forPath(b + "/osd"));
        Stat st = new Stat();
        t.call("create_storing_stat", () -> c.create().storingStatIn(st).forPath(b + "/st", b("s")));
        t.rec("create_stat", st);
        Stat st2 = new Stat();
        t.call("get_storing_stat", () -> c.getData().storingStatIn(st2).forPath(b + "/a/b/c"));
        t.rec("get_stat", st2);
        t.call("set_v0", () -> c.setData().withVersion(0).forPath(b + "/a/b/c", b("d2")));
        t.call("set_v0_again", () -> c.setData().withVersion(0).forPath(b + "/a/b/c", b("d3")));
        t.call("set_missing", () -> c.setData().forPath(b + "/missing", b("x")));
        t.call("exists_missing", () -> c.checkExists().forPath(b + "/missing"));
        t.call("children", () -> sorted(c.getChildren().forPath(b)));
        t.call("delete_not_empty", () -> {
            c.delete().forPath(b + "/a");
            return "deleted";
        });
        t.call("delete_children_if_needed", () -> {
            c.delete().deletingChildrenIfNeeded().forPath(b + "/a");
            return "deleted";
        });
        t.call("delete_missing", () -> {
            c.delete().forPath(b + "/missing");
            return "deleted";
        });
        t.call("delete_quietly", () -> {
            c.delete().quietly().forPath(b + "/missing");
            return "quiet";
        });
        t.call("delete_guaranteed", () -> {
            c.delete().guaranteed().forPath(b + "/osd");
            return "deleted";
        });
        t.call("delete_bad_version", () -> {
            c.delete().withVersion(3).forPath(b + "/st");
            return "deleted";
        });
        t.call("get_acl", () -> c.getACL().forPath(b));
        t.call("set_acl", () -> c.setACL().withACL(ZooDefs.Ids.READ_ACL_UNSAFE).forPath(b + "/st"));
        t.call("write_after_read_only", () -> c.setData().forPath(b + "/st", b("no")));
        t.call("set_acl_invalid", () -> c.setACL().withACL(Collections.singletonList(new ACL(31, new Id("digest", "nocolon")))).forPath(b + "/st"));
        Rec sync = new Rec();
        c.sync().inBackground((cl, e) -> sync.add(e.getType().name(), e.getResultCode(), e.getPath())).forPath(b);
        sync.waitLen(1);
        t.rec("sync", sync.take());
        Rec bg = new Rec();
        c.create().inBackground((cl, e) -> bg.add(e.getType().name(), KeeperException.Code.get(e.getResultCode()).name(), e.getPath(), clean(e.getName()), t.norm(e.getStat()))).forPath(b + "/bg", b("bg"));
        bg.waitLen(1);
        c.create().inBackground((cl, e) -> bg.add(e.getType().name(), KeeperException.Code.get(e.getResultCode()).name(), e.getPath(), e.getName())).forPath(b + "/bg");
        bg.waitLen(2);
        c.getChildren().inBackground((cl, e) -> bg.add(e.getType().name(), e.getResultCode(), sorted(e.getChildren()))).forPath(b);
        bg.waitLen(3);
        t.rec("background", bg.take());
        Stat cs = new Stat();
        t.call("get_config", () -> c.getConfig().storingStatIn(cs).forEnsemble());
        t.rec("config_stat", cs);
        t.call("config_node_acl", () -> c.getACL().forPath("/zookeeper/config"));
        t.call("set_config_node", () -> c.setData().forPath("/zookeeper/config", b("x")));
        t.call("reconfig_standalone", () -> c.reconfig().joining("server.5=127.0.0.1:1234:1235;1236").forEnsemble());
        // namespaces are client-side chroots
        CuratorFramework ns = c.usingNamespace("cur-ns");
        t.call("ns_create", () -> ns.create().creatingParentsIfNeeded().forPath("/x/y", b("n")));
        t.call("ns_visible_from_root", () -> sorted(c.getChildren().forPath("/cur-ns/x")));
        t.call("ns_children", () -> sorted(ns.getChildren().forPath("/")));
        t.call("parent_stat", () -> c.checkExists().forPath(b));
    }

    static void sJava(Trace t) throws Exception {
        ZooKeeper z = t.zk("j1", null);
        String b = "/cur-java";
        t.call("create", () -> z.create(b, b("j"), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT));
        Stat st = new Stat();
        t.call("create2", () -> z.create(b + "/c2", b("x"), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT, st));
        t.rec("create2_stat", st);
        Stat ttlSt = new Stat();
        t.call("create_ttl", () -> z.create(b + "/ttl", b("t"), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_WITH_TTL, ttlSt, 100_000));
        t.rec("create_ttl_stat", ttlSt);
        t.call("create_ttl_bad_mode", () -> z.create(b + "/ttlbad", b("t"), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT, new Stat(), 100_000));
        t.call("create_eph", () -> z.create(b + "/e1", b("e"), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL));
        t.call("create_eph_seq", () -> z.create(b + "/es-", b("e"), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL_SEQUENTIAL));
        t.call("create_container", () -> z.create(b + "/cont", b("c"), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.CONTAINER));
        t.call("container_child", () -> z.create(b + "/cont/k", b(""), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT));
        t.call("get_ephemerals_all", () -> sorted(z.getEphemerals()));
        t.call("get_ephemerals_prefix", () -> sorted(z.getEphemerals(b + "/e")));
        t.call("get_ephemerals_none", () -> sorted(z.getEphemerals("/nothing-here")));
        t.call("all_children_number", () -> z.getAllChildrenNumber(b));
        t.call("all_children_number_missing", () -> z.getAllChildrenNumber(b + "/missing"));
        t.call("whoami", () -> {
            List<Object> out = new ArrayList<>();
            for (ClientInfo ci : z.whoAmI()) out.add(ci.getAuthScheme() + ":" + ci.getUser());
            Collections.sort((List) out);
            return out;
        });
        z.addAuthInfo("digest", b("alice:pw-a"));
        t.call("whoami_after_auth", () -> {
            List<Object> out = new ArrayList<>();
            for (ClientInfo ci : z.whoAmI()) out.add(ci.getAuthScheme() + ":" + ci.getUser());
            Collections.sort((List) out);
            return out;
        });
        t.call("multi_read", () -> z.multi(Arrays.asList(Op.getData(b + "/c2"), Op.getChildren(b), Op.getData(b + "/missing"), Op.getChildren(b + "/cont"))));
        t.call("multi_ok", () -> z.multi(Arrays.asList(
                Op.create(b + "/m1", b("1"), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                Op.create(b + "/m-", b("1"), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_SEQUENTIAL),
                Op.setData(b + "/m1", b("2"), 0),
                Op.check(b + "/m1", 1),
                Op.create(b + "/mttl", b("1"), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_WITH_TTL, 100_000),
                Op.create(b + "/mcont", b("1"), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.CONTAINER),
                Op.delete(b + "/m1", 1))));
        t.call("multi_fail", () -> {
            try {
                z.multi(Arrays.asList(
                        Op.create(b + "/f1", b("1"), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT),
                        Op.setData(b + "/c2", b("2"), 7),
                        Op.delete(b + "/missing", -1)));
                return "no exception";
            } catch (KeeperException e) {
                return list(e.code().name(), e.getPath(), t.norm(e.getResults()));
            }
        });
        t.call("multi_fail_nothing_applied", () -> z.exists(b + "/f1", false));
        t.call("multi_empty", () -> z.multi(new ArrayList<>()));
        // watches
        Rec ev = new Rec();
        t.call("exists_watch_missing", () -> z.exists(b + "/w", e -> ev.add("exists", e)));
        t.call("get_watch", () -> z.getData(b + "/c2", e -> ev.add("data", e), null));
        t.call("children_watch", () -> sorted(z.getChildren(b + "/c2", e -> ev.add("children", e))));
        z.create(b + "/w", b(""), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        z.setData(b + "/c2", b("y"), -1);
        z.create(b + "/c2/kid", b(""), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        ev.waitLen(3);
        ev.settle(200);
        t.rec("oneshot_events", ev.take());
        // removeWatches
        Watcher dw = e -> ev.add("removable", e);
        z.getData(b + "/c2", dw, null);
        z.getChildren(b + "/c2", dw);
        t.call("remove_data_watch", () -> {
            z.removeWatches(b + "/c2", dw, Watcher.WatcherType.Data, false);
            return "ok";
        });
        t.call("remove_data_watch_again", () -> {
            z.removeWatches(b + "/c2", dw, Watcher.WatcherType.Data, false);
            return "ok";
        });
        t.call("remove_any_watch", () -> {
            z.removeWatches(b + "/c2", dw, Watcher.WatcherType.Any, false);
            return "ok";
        });
        t.call("remove_all_watches_none", () -> {
            z.removeAllWatches(b + "/nothing", Watcher.WatcherType.Any, false);
            return "ok";
        });
        ev.settle(200);
        t.rec("removed_events", ev.take());
        // negotiated session timeouts
        ZooKeeper shortZ = t.zk("short", HOSTS, 1000, null);
        t.rec("timeout_1000", shortZ.getSessionTimeout());
        ZooKeeper longZ = t.zk("long", HOSTS, 100_000, null);
        t.rec("timeout_100000", longZ.getSessionTimeout());
        t.call("config", () -> z.getConfig(false, null));
        t.call("sync_cb", () -> {
            Rec r = new Rec();
            z.sync(b, (rc, path, ctx) -> r.add(rc, path), null);
            r.waitLen(1);
            return r.take();
        });
        t.call("set_acl_bad_version", () -> z.setACL(b + "/c2", ZooDefs.Ids.OPEN_ACL_UNSAFE, 3));
        t.call("set_acl", () -> z.setACL(b + "/c2", ZooDefs.Ids.OPEN_ACL_UNSAFE, 0));
        t.call("get_acl_stat", () -> {
            Stat s = new Stat();
            List<ACL> acl = z.getACL(b + "/c2", s);
            return list(t.norm(acl), t.norm(s));
        });
        t.call("parent_stat", () -> z.exists(b, false));
    }

    static void sTxn(Trace t) throws Exception {
        CuratorFramework c = t.curator("c1");
        String b = "/cur-txn";
        c.create().forPath(b);
        c.create().forPath(b + "/existing", b("e"));
        t.call("ok", () -> c.transaction().forOperations(
                c.transactionOp().create().forPath(b + "/t1", b("one")),
                c.transactionOp().create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath(b + "/s-", b("s")),
                c.transactionOp().setData().withVersion(0).forPath(b + "/existing", b("e2")),
                c.transactionOp().check().withVersion(1).forPath(b + "/existing"),
                c.transactionOp().create().withMode(CreateMode.EPHEMERAL).forPath(b + "/eph"),
                c.transactionOp().delete().forPath(b + "/t1")));
        t.call("ok_children", () -> sorted(c.getChildren().forPath(b)));
        t.call("fail_no_node", () -> c.transaction().forOperations(
                c.transactionOp().create().forPath(b + "/t2"),
                c.transactionOp().delete().forPath(b + "/missing"),
                c.transactionOp().setData().forPath(b + "/existing", b("never"))));
        t.call("fail_no_node_absent", () -> c.checkExists().forPath(b + "/t2"));
        t.call("fail_check", () -> c.transaction().forOperations(
                c.transactionOp().check().withVersion(42).forPath(b + "/existing"),
                c.transactionOp().create().forPath(b + "/t3")));
        t.call("fail_exists", () -> c.transaction().forOperations(
                c.transactionOp().create().forPath(b + "/existing")));
        t.call("fail_ephemeral_parent", () -> c.transaction().forOperations(
                c.transactionOp().create().forPath(b + "/eph/kid")));
        t.call("fail_not_empty", () -> c.transaction().forOperations(
                c.transactionOp().create().forPath(b + "/p"),
                c.transactionOp().create().forPath(b + "/p/k"),
                c.transactionOp().delete().forPath(b + "/p")));
        t.call("create_ttl_and_container", () -> c.transaction().forOperations(
                c.transactionOp().create().withTtl(100_000).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(b + "/ttl", b("t")),
                c.transactionOp().create().withMode(CreateMode.CONTAINER).forPath(b + "/cont", b("c"))));
        t.call("ttl_stat", () -> c.checkExists().forPath(b + "/ttl"));
        t.call("data_after", () -> c.getData().forPath(b + "/existing"));
        t.call("parent_stat", () -> c.checkExists().forPath(b));
    }

    static void sLocks(Trace t) throws Exception {
        String b = "/cur-locks";
        CuratorFramework c1 = t.curator("c1"), c2 = t.curator("c2"), c3 = t.curator("c3");
        InterProcessMutex m1 = new InterProcessMutex(c1, b + "/mutex");
        InterProcessMutex m2 = new InterProcessMutex(c2, b + "/mutex");
        InterProcessMutex m3 = new InterProcessMutex(c3, b + "/mutex");
        t.call("m1_acquire", () -> m1.acquire(5, TimeUnit.SECONDS));
        t.call("m1_reentrant", () -> m1.acquire(5, TimeUnit.SECONDS));
        t.call("m2_timeout", () -> m2.acquire(300, TimeUnit.MILLISECONDS));
        t.call("participants_1", () -> m1.getParticipantNodes().size());
        Rec got = new Rec();
        ExecutorService pool = Executors.newCachedThreadPool();
        // InterProcessMutex belongs to the thread that acquired it: each waiter thread
        // acquires, reports, waits to be told, and releases
        CountDownLatch release3 = new CountDownLatch(1);
        pool.submit(() -> {
            m2.acquire();
            got.add("m2");
            return null; // c2 is closed while holding it
        });
        waitUntil(() -> m1.getParticipantNodes().size() == 2);
        Future<?> m3done = pool.submit(() -> {
            m3.acquire();
            got.add("m3");
            release3.await();
            m3.release();
            return null;
        });
        waitUntil(() -> m1.getParticipantNodes().size() == 3);
        Thread.sleep(300);
        t.rec("waiting_watches", wchp(t, b + "/mutex"));
        t.rec("nobody_yet", got.take());
        m1.release();
        t.rec("still_held_after_one_release", m1.isAcquiredInThisProcess(), got.take());
        m1.release();
        got.waitLen(1);
        Thread.sleep(300);
        t.rec("after_release", got.take(), m1.getParticipantNodes().size());
        t.rec("watches_after_release", wchp(t, b + "/mutex"));
        // the holder's session goes away: the next waiter gets the lock
        c2.close();
        got.waitLen(1);
        t.rec("after_holder_closed", got.take());
        release3.countDown();
        t.call("m3_released", () -> {
            m3done.get(5, TimeUnit.SECONDS);
            return true;
        });

        // read/write lock
        InterProcessReadWriteLock rw1 = new InterProcessReadWriteLock(c1, b + "/rw");
        CuratorFramework c4 = t.curator("c4");
        InterProcessReadWriteLock rw3 = new InterProcessReadWriteLock(c3, b + "/rw");
        InterProcessReadWriteLock rw4 = new InterProcessReadWriteLock(c4, b + "/rw");
        t.call("read1", () -> rw1.readLock().acquire(5, TimeUnit.SECONDS));
        t.call("read2_shared", () -> rw3.readLock().acquire(5, TimeUnit.SECONDS));
        t.call("write_blocked", () -> rw4.writeLock().acquire(300, TimeUnit.MILLISECONDS));
        rw1.readLock().release();
        rw3.readLock().release();
        t.call("write_free", () -> rw4.writeLock().acquire(5, TimeUnit.SECONDS));
        t.call("read_blocked_by_write", () -> rw1.readLock().acquire(300, TimeUnit.MILLISECONDS));
        t.call("write_reentrant_read", () -> rw4.readLock().acquire(5, TimeUnit.SECONDS));
        rw4.readLock().release();
        rw4.writeLock().release();
        t.call("read_after_write", () -> rw1.readLock().acquire(5, TimeUnit.SECONDS));
        rw1.readLock().release();

        // semaphores
        InterProcessSemaphoreV2 s1 = new InterProcessSemaphoreV2(c1, b + "/sem", 2);
        InterProcessSemaphoreV2 s3 = new InterProcessSemaphoreV2(c3, b + "/sem", 2);
        InterProcessSemaphoreV2 s4 = new InterProcessSemaphoreV2(c4, b + "/sem", 2);
        Lease l1 = s1.acquire(5, TimeUnit.SECONDS);
        Lease l3 = s3.acquire(5, TimeUnit.SECONDS);
        t.rec("two_leases", l1 != null, l3 != null);
        t.call("third_lease_blocked", () -> s4.acquire(300, TimeUnit.MILLISECONDS) != null);
        s1.returnLease(l1);
        t.call("third_lease_after_return", () -> {
            Lease l = s4.acquire(5, TimeUnit.SECONDS);
            if (l != null) s4.returnLease(l);
            return l != null;
        });
        s3.returnLease(l3);
        InterProcessSemaphoreMutex sm1 = new InterProcessSemaphoreMutex(c1, b + "/smutex");
        InterProcessSemaphoreMutex sm3 = new InterProcessSemaphoreMutex(c3, b + "/smutex");
        t.call("smutex1", () -> sm1.acquire(5, TimeUnit.SECONDS));
        t.call("smutex3_blocked", () -> sm3.acquire(300, TimeUnit.MILLISECONDS));
        sm1.release();
        t.call("smutex3_free", () -> sm3.acquire(5, TimeUnit.SECONDS));
        sm3.release();
        // multi-lock
        InterProcessMultiLock ml = new InterProcessMultiLock(c1, Arrays.asList(b + "/ml1", b + "/ml2"));
        t.call("multilock", () -> ml.acquire(5, TimeUnit.SECONDS));
        ml.release();
        pool.shutdownNow();
    }

    static void sLeader(Trace t) throws Exception {
        String b = "/cur-leader";
        CuratorFramework c1 = t.curator("c1"), c2 = t.curator("c2");
        LeaderLatch l1 = new LeaderLatch(c1, b + "/latch", "one");
        LeaderLatch l2 = new LeaderLatch(c2, b + "/latch", "two");
        Rec events = new Rec();
        l1.addListener(new LeaderLatchListener() {
            public void isLeader() { events.add("one", "leader"); }
            public void notLeader() { events.add("one", "not"); }
        });
        l2.addListener(new LeaderLatchListener() {
            public void isLeader() { events.add("two", "leader"); }
            public void notLeader() { events.add("two", "not"); }
        });
        l1.start();
        t.call("l1_await", () -> l1.await(5, TimeUnit.SECONDS));
        l2.start();
        waitUntil(() -> l1.getParticipants().size() == 2);
        t.rec("leadership", l1.hasLeadership(), l2.hasLeadership(), l2.getLeader().getId());
        List<String> ids = new ArrayList<>();
        for (Participant p : l2.getParticipants()) ids.add(p.getId() + (p.isLeader() ? "*" : ""));
        t.rec("participants", ids);
        // the leader's client closes: the other takes over
        c1.close();
        t.call("l2_await", () -> l2.await(10, TimeUnit.SECONDS));
        t.rec("after_failover", l2.hasLeadership(), l2.getLeader().getId(), l2.getParticipants().size());
        events.settle(200);
        t.rec("latch_events", events.take());
        l2.close();

        // LeaderSelector: leadership is held while takeLeadership runs
        CuratorFramework c3 = t.curator("c3"), c4 = t.curator("c4");
        Rec leaders = new Rec();
        Map<String, CountDownLatch> stop = new ConcurrentHashMap<>();
        stop.put("s3", new CountDownLatch(1));
        stop.put("s4", new CountDownLatch(1));
        LeaderSelector s3 = new LeaderSelector(c3, b + "/sel", new LeaderSelectorListenerAdapter() {
            public void takeLeadership(CuratorFramework client) throws Exception {
                leaders.add("s3");
                stop.get("s3").await();
            }
        });
        LeaderSelector s4 = new LeaderSelector(c4, b + "/sel", new LeaderSelectorListenerAdapter() {
            public void takeLeadership(CuratorFramework client) throws Exception {
                leaders.add("s4");
                stop.get("s4").await();
            }
        });
        s3.setId("sel-three");
        s4.setId("sel-four");
        s3.start();
        leaders.waitLen(1);
        s4.start();
        waitUntil(() -> s3.getParticipants().size() == 2);
        t.rec("selector_leader", leaders.take(), s4.getLeader().getId());
        c3.close(); // leader's client closes
        leaders.waitLen(1);
        t.rec("selector_failover", leaders.take(), s4.getLeader().getId(), s4.hasLeadership());
        stop.get("s4").countDown();
        s4.close();
    }

    static void sCaches(Trace t) throws Exception {
        String b = "/cur-caches";
        CuratorFramework c1 = t.curator("c1"), c2 = t.curator("c2");
        c2.create().creatingParentsIfNeeded().forPath(b + "/pre/x", b("x"));
        Rec nodeEv = new Rec(), pathEv = new Rec(), treeEv = new Rec(), curEv = new Rec();
        NodeCache nc = new NodeCache(c1, b + "/node");
        nc.getListenable().addListener(() -> {
            ChildData d = nc.getCurrentData();
            nodeEv.add(d == null ? null : list(d.getPath(), new String(d.getData(), StandardCharsets.UTF_8), d.getStat().getVersion()));
        });
        nc.start(true);
        PathChildrenCache pc = new PathChildrenCache(c1, b, true);
        pc.getListenable().addListener((cl, e) -> pathEv.add(e.getType().name(), e.getData() == null ? null : t.norm(e.getData())));
        pc.start(PathChildrenCache.StartMode.POST_INITIALIZED_EVENT);
        TreeCache tc = TreeCache.newBuilder(c1, b).setCacheData(true).build();
        tc.getListenable().addListener((cl, e) -> treeEv.add(e.getType().name(), e.getData() == null ? null : t.norm(e.getData())));
        tc.start();
        CuratorCache cc = CuratorCache.build(c1, b);
        cc.listenable().addListener(CuratorCacheListener.builder()
                .forCreates(d -> curEv.add("create", t.norm(d)))
                .forChanges((o, n) -> curEv.add("change", t.norm(o), t.norm(n)))
                .forDeletes(d -> curEv.add("delete", t.norm(d)))
                .forInitialized(() -> curEv.add("initialized"))
                .build());
        cc.start();
        Rec[] all = {nodeEv, pathEv, treeEv, curEv};
        String[] names = {"node", "path", "tree", "curator"};
        Call settle = () -> {
            settleAll(all, 300);
            Map<String, Object> m = new TreeMap<>();
            for (int i = 0; i < all.length; i++) {
                List<Object> evs = all[i].take();
                List<String> ss = new ArrayList<>();
                for (Object e : evs) ss.add(json(e));
                // events of one step may come from independent watches: sort them
                Collections.sort(ss);
                m.put(names[i], ss);
            }
            return m;
        };
        pathEv.waitLen(2);
        treeEv.waitLen(4);
        curEv.waitLen(3);
        t.call("initial", settle);
        c2.create().forPath(b + "/node", b("n1"));
        nodeEv.waitLen(1);
        t.call("create_node", settle);
        c2.setData().forPath(b + "/node", b("n2"));
        nodeEv.waitLen(1);
        t.call("set_node", settle);
        c2.create().creatingParentsIfNeeded().forPath(b + "/pre/x/y/z", b("z"));
        treeEv.waitLen(2);
        t.call("create_deep", settle);
        c2.setData().forPath(b + "/pre/x/y/z", b("z2"));
        treeEv.waitLen(1);
        t.call("set_deep", settle);
        c2.delete().deletingChildrenIfNeeded().forPath(b + "/pre");
        treeEv.waitLen(4);
        t.call("delete_subtree", settle);
        c2.delete().forPath(b + "/node");
        nodeEv.waitLen(1);
        t.call("delete_node", settle);
        t.rec("curator_cache_size", cc.size());
        t.rec("path_cache_children", pc.getCurrentData().size());
        nc.close();
        pc.close();
        tc.close();
        cc.close();
    }

    static void sPersistent(Trace t) throws Exception {
        String b = "/cur-persistent";
        CuratorFramework c1 = t.curator("c1"), c2 = t.curator("c2");
        c2.create().forPath(b);
        PersistentNode pn = new PersistentNode(c1, CreateMode.EPHEMERAL, false, b + "/eph", b("v1"));
        pn.start();
        t.call("initial_create", () -> pn.waitForInitialCreate(5, TimeUnit.SECONDS));
        t.call("actual_path", pn::getActualPath);
        t.call("owner", () -> c2.checkExists().forPath(b + "/eph").getEphemeralOwner() == c1.getZookeeperClient().getZooKeeper().getSessionId());
        c2.delete().forPath(b + "/eph");
        t.call("recreated_after_delete", () -> waitUntil(() -> c2.checkExists().forPath(b + "/eph") != null));
        pn.setData(b("v2"));
        t.call("set_data", () -> waitUntil(() -> Arrays.equals(c2.getData().forPath(b + "/eph"), b("v2"))));
        PersistentNode pp = new PersistentNode(c1, CreateMode.EPHEMERAL_SEQUENTIAL, true, b + "/prot-", b("s"));
        pp.start();
        t.call("protected_seq", () -> pp.waitForInitialCreate(5, TimeUnit.SECONDS));
        t.call("protected_seq_path", pp::getActualPath);
        pp.close();
        pn.close();
        t.call("closed_removes", () -> waitUntil(() -> c2.checkExists().forPath(b + "/eph") == null));
        PersistentTtlNode ttl = new PersistentTtlNode(c1, b + "/ttl", 600_000, b("t"));
        ttl.start();
        t.call("ttl_node", () -> ttl.waitForInitialCreate(5, TimeUnit.SECONDS));
        t.call("ttl_children", () -> sorted(c2.getChildren().forPath(b + "/ttl")));
        t.call("ttl_stat", () -> c2.checkExists().forPath(b + "/ttl"));
        ttl.close();
        // PersistentWatcher: a recursive watch kept across reconnects
        Rec ev = new Rec();
        PersistentWatcher pw = new PersistentWatcher(c1, b + "/pw", true);
        pw.getListenable().addListener(ev::add);
        pw.start();
        Thread.sleep(200);
        c2.create().creatingParentsIfNeeded().forPath(b + "/pw/a/b", b("x"));
        c2.setData().forPath(b + "/pw/a/b", b("y"));
        c2.delete().deletingChildrenIfNeeded().forPath(b + "/pw");
        ev.waitLen(6);
        ev.settle(200);
        t.rec("persistent_watcher_events", ev.take());
        pw.close();
    }

    static void sAtomic(Trace t) throws Exception {
        String b = "/cur-atomic";
        CuratorFramework c1 = t.curator("c1"), c2 = t.curator("c2");
        DistributedAtomicLong a1 = new DistributedAtomicLong(c1, b + "/long", new RetryNTimes(20, 5));
        DistributedAtomicLong a2 = new DistributedAtomicLong(c2, b + "/long", new RetryNTimes(20, 5));
        t.call("initialize", () -> a1.initialize(10L));
        t.call("initialize_again", () -> a2.initialize(99L));
        t.call("increment", () -> {
            AtomicValue<Long> v = a1.increment();
            return list(v.succeeded(), v.preValue(), v.postValue());
        });
        t.call("add", () -> {
            AtomicValue<Long> v = a2.add(5L);
            return list(v.succeeded(), v.preValue(), v.postValue());
        });
        t.call("cas_wrong", () -> {
            AtomicValue<Long> v = a1.compareAndSet(0L, 1L);
            return list(v.succeeded(), v.preValue(), v.postValue());
        });
        t.call("cas_right", () -> {
            AtomicValue<Long> v = a1.compareAndSet(16L, 100L);
            return list(v.succeeded(), v.preValue(), v.postValue());
        });
        ExecutorService pool = Executors.newFixedThreadPool(2);
        List<Future<Integer>> fs = new ArrayList<>();
        for (DistributedAtomicLong a : Arrays.asList(a1, a2)) {
            fs.add(pool.submit(() -> {
                int ok = 0;
                for (int i = 0; i < 25; i++) if (a.increment().succeeded()) ok++;
                return ok;
            }));
        }
        int okSum = 0;
        for (Future<Integer> f : fs) okSum += f.get(60, TimeUnit.SECONDS);
        final int ok = okSum;
        // every successful increment is counted exactly once
        t.call("contended", () -> list(a1.get().postValue() - 100 == ok, a1.get().postValue() <= 150));
        DistributedAtomicLong locked = new DistributedAtomicLong(c1, b + "/locked", new RetryNTimes(3, 10),
                PromotedToLock.builder().lockPath(b + "/lock").retryPolicy(new RetryNTimes(5, 10)).timeout(5, TimeUnit.SECONDS).build());
        t.call("promoted_increment", () -> {
            AtomicValue<Long> v = locked.increment();
            return list(v.succeeded(), v.postValue());
        });
        SharedCount sc1 = new SharedCount(c1, b + "/shared", 7);
        SharedCount sc2 = new SharedCount(c2, b + "/shared", 0);
        Rec changes = new Rec();
        sc2.addListener(new SharedCountListener() {
            public void countHasChanged(SharedCountReader r, int n) { changes.add(n); }
            public void stateChanged(CuratorFramework c, ConnectionState s) { }
        });
        sc1.start();
        sc2.start();
        t.rec("shared_initial", sc1.getCount(), sc2.getCount());
        sc1.setCount(11);
        changes.waitLen(1);
        t.rec("shared_listener", changes.take(), sc2.getCount());
        VersionedValue<Integer> vv = sc2.getVersionedValue();
        t.call("try_set_stale", () -> {
            sc1.setCount(12);
            waitUntil(() -> sc2.getCount() == 12);
            return sc2.trySetCount(vv, 13);
        });
        t.call("try_set_fresh", () -> sc2.trySetCount(sc2.getVersionedValue(), 14));
        sc1.close();
        sc2.close();
        pool.shutdownNow();
    }

    static void sWatches(Trace t) throws Exception {
        String b = "/cur-watch";
        CuratorFramework c1 = t.curator("c1"), c2 = t.curator("c2");
        c2.create().forPath(b);
        Rec pers = new Rec(), rec = new Rec();
        Watcher pw = pers::add;
        Watcher rw = rec::add;
        c1.watchers().add().withMode(AddWatchMode.PERSISTENT).usingWatcher(pw).forPath(b + "/p");
        c1.watchers().add().withMode(AddWatchMode.PERSISTENT_RECURSIVE).usingWatcher(rw).forPath(b + "/r");
        t.rec("wchp_after_add", wchp(t, b));
        c2.create().forPath(b + "/p", b("1"));
        c2.create().forPath(b + "/p/kid");
        c2.setData().forPath(b + "/p", b("2"));
        c2.create().forPath(b + "/p/kid/grandkid");
        c2.delete().forPath(b + "/p/kid/grandkid");
        c2.delete().forPath(b + "/p/kid");
        c2.create().creatingParentsIfNeeded().forPath(b + "/r/a/b", b("x"));
        c2.setData().forPath(b + "/r/a/b", b("y"));
        c2.setData().forPath(b + "/r", b("z"));
        c2.delete().forPath(b + "/r/a/b");
        pers.waitLen(4);
        rec.waitLen(6);
        pers.settle(300);
        rec.settle(100);
        t.rec("persistent_events", pers.take());
        t.rec("recursive_events", rec.take());
        // a one-shot getData on a path with a persistent watch
        Rec once = new Rec();
        c1.getData().usingWatcher((CuratorWatcher) once::add).forPath(b + "/p");
        c2.setData().forPath(b + "/p", b("3"));
        once.waitLen(1);
        pers.waitLen(1);
        once.settle(200);
        t.rec("oneshot_plus_persistent", once.take(), pers.take());
        c2.setData().forPath(b + "/p", b("4"));
        pers.settle(300);
        t.rec("persistent_still_there", once.take(), pers.take());
        // remove
        t.call("remove_persistent", () -> {
            c1.watchers().remove(pw).ofType(Watcher.WatcherType.Any).forPath(b + "/p");
            return "ok";
        });
        t.call("remove_again", () -> {
            c1.watchers().remove(pw).ofType(Watcher.WatcherType.Any).forPath(b + "/p");
            return "ok";
        });
        c2.setData().forPath(b + "/p", b("5"));
        pers.settle(300);
        t.rec("after_remove", pers.take());
        t.rec("wchp_after_remove", wchp(t, b));

        // watches across a reconnect: data/exist/child one-shot watches and persistent
        // ones are sent again with setWatches(2); changes made while disconnected fire
        // once on reconnect for one-shot watches and are lost for persistent ones
        try (Proxy proxy = new Proxy(HOSTS)) {
            Rec ev = new Rec();
            Rec states = new Rec();
            ZooKeeper z = t.zk("proxied", proxy.addr(), 10_000, e -> {
                if (e.getType() == Watcher.Event.EventType.None) states.add(e.getState().name());
            });
            states.take(); // the first SyncConnected
            c2.create().forPath(b + "/x", b("0"));
            c2.create().forPath(b + "/kids");
            z.getData(b + "/x", typed(ev, "data"), null);
            z.exists(b + "/later", typed(ev, "exists"));
            z.getChildren(b + "/kids", typed(ev, "children"));
            z.exists(b + "/x", typed(ev, "exists_x"));
            t.call("get_data_watch_missing", () -> z.getData(b + "/x-gone", typed(ev, "data_missing"), null));
            z.addWatch(b + "/pw", typed(ev, "persistent"), AddWatchMode.PERSISTENT);
            z.addWatch(b + "/rw", typed(ev, "recursive"), AddWatchMode.PERSISTENT_RECURSIVE);
            c2.create().forPath(b + "/gone");
            z.getData(b + "/gone", typed(ev, "data_gone"), null);
            z.getChildren(b + "/gone", typed(ev, "children_gone"));
            proxy.accepting = false;
            proxy.dropAll();
            states.waitLen(1);
            t.rec("state_cut", collapse(states.take()));
            c2.setData().forPath(b + "/x", b("1"));
            c2.create().forPath(b + "/later");
            c2.create().forPath(b + "/kids/k1");
            c2.create().forPath(b + "/pw");
            c2.create().creatingParentsIfNeeded().forPath(b + "/rw/deep");
            c2.delete().forPath(b + "/gone");
            proxy.accepting = true;
            states.waitFor("SyncConnected");
            ev.waitLen(6);
            ev.settle(300);
            t.rec("state_reconnected", collapse(states.take()));
            List<String> evs = new ArrayList<>();
            for (Object e : ev.take()) evs.add(json(t.norm(e)));
            Collections.sort(evs);
            t.rec("events_on_reconnect", evs);
            c2.setData().forPath(b + "/pw", b("p"));
            c2.setData().forPath(b + "/rw/deep", b("d"));
            ev.waitLen(2);
            ev.settle(300);
            t.rec("persistent_after_reconnect", ev.take());
            t.rec("wchp_after_reconnect", wchp(t, b));
            // close the session while the proxy still forwards: a session left behind
            // would expire later, in the middle of another section
            z.close();
        }
    }

    static void sSession(Trace t) throws Exception {
        String b = "/cur-session";
        CuratorFramework admin = t.curator("admin");
        admin.create().forPath(b);
        try (Proxy proxy = new Proxy(HOSTS)) {
            Rec states = new Rec();
            CuratorFramework c1 = t.curator("c1", proxy.addr(), null, 10_000);
            c1.getConnectionStateListenable().addListener((cl, s) -> states.add(s.name()));
            Thread.sleep(300); // Curator reports the initial CONNECTED asynchronously
            states.take();
            long sid = c1.getZookeeperClient().getZooKeeper().getSessionId();
            PersistentNode pn = new PersistentNode(c1, CreateMode.EPHEMERAL, false, b + "/pn", b("p"));
            pn.start();
            pn.waitForInitialCreate(5, TimeUnit.SECONDS);
            c1.create().withMode(CreateMode.EPHEMERAL).forPath(b + "/plain", b("e"));
            proxy.accepting = false;
            proxy.dropAll();
            states.waitFor("SUSPENDED");
            t.rec("after_cut", collapse(states.take()));
            t.call("ephemeral_kept_while_disconnected", () -> t.sess(admin.checkExists().forPath(b + "/plain").getEphemeralOwner()));
            proxy.accepting = true;
            states.waitFor("RECONNECTED");
            t.rec("after_reconnect", collapse(states.take()), c1.getZookeeperClient().getZooKeeper().getSessionId() == sid);
            // expire the session from outside: attach a second client to it and close it
            ZooKeeper z = c1.getZookeeperClient().getZooKeeper();
            CountDownLatch twinUp = new CountDownLatch(1);
            ZooKeeper twin = new ZooKeeper(HOSTS, 10_000, e -> {
                if (e.getState() == Watcher.Event.KeeperState.SyncConnected) twinUp.countDown();
            }, z.getSessionId(), z.getSessionPasswd());
            t.rec("twin_connected", twinUp.await(5, TimeUnit.SECONDS), twin.getSessionId() == sid);
            twin.close();
            t.call("plain_ephemeral_gone", () -> waitUntil(() -> admin.checkExists().forPath(b + "/plain") == null));
            states.waitFor("RECONNECTED");
            states.settle(200);
            t.rec("states_after_expiry", collapse(states.take()));
            SESSIONS.put(c1.getZookeeperClient().getZooKeeper().getSessionId(), "c1-new");
            t.call("persistent_node_recreated", () -> waitUntil(() -> admin.checkExists().forPath(b + "/pn") != null));
            t.call("persistent_node_owner", () -> t.sess(admin.checkExists().forPath(b + "/pn").getEphemeralOwner()));
            pn.close();
            c1.close();
        }
        // raw Java client: Expired state and a wrong session password
        Proxy zproxy = new Proxy(HOSTS);
        Rec zs = new Rec();
        ZooKeeper z1 = t.zk("z1", zproxy.addr(), 10_000, e -> {
            if (e.getType() == Watcher.Event.EventType.None) zs.add(e.getState().name());
        });
        zs.waitLen(1);
        zs.take();
        z1.create(b + "/z1eph", b(""), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
        // keep z1 away while a twin attaches to its session and closes it
        zproxy.accepting = false;
        zproxy.dropAll();
        zs.waitLen(1);
        ZooKeeper twin = new ZooKeeper(HOSTS, 10_000, e -> { }, z1.getSessionId(), z1.getSessionPasswd());
        t.rec("twin_attached", waitUntil(() -> twin.getState() == ZooKeeper.States.CONNECTED) && twin.getSessionId() == z1.getSessionId());
        twin.close();
        zproxy.accepting = true;
        zs.waitFor("Expired");
        zs.settle(200);
        t.rec("z1_states", collapse(zs.take()));
        t.call("z1_after_expiry", () -> z1.exists(b, false));
        z1.close();
        zproxy.close();
        // auth with Curator's authorization()
        CuratorFramework alice = t.curator("alice", HOSTS, "alice:pw-a", 10_000);
        t.call("alice_create", () -> alice.create().withACL(ZooDefs.Ids.CREATOR_ALL_ACL).forPath(b + "/alice", b("a")));
        t.call("alice_acl", () -> alice.getACL().forPath(b + "/alice"));
        t.call("admin_denied", () -> admin.getData().forPath(b + "/alice"));
        t.call("alice_reads", () -> alice.getData().forPath(b + "/alice"));
        t.call("creator_all_without_auth", () -> admin.create().withACL(ZooDefs.Ids.CREATOR_ALL_ACL).forPath(b + "/x"));
    }

    /**
     * Container and TTL reaping. Only meaningful on servers started with a short
     * znode.container.checkIntervalMs (the test starts a separate pair for it).
     */
    static void sReaping(Trace t) throws Exception {
        String b = "/cur-reap";
        CuratorFramework c1 = t.curator("c1"), c2 = t.curator("c2");
        c1.create().forPath(b);
        Rec ev = new Rec();
        // a used container: deleted once its last child goes
        c1.create().withMode(CreateMode.CONTAINER).forPath(b + "/used");
        c1.create().forPath(b + "/used/kid");
        // a never-used container: kept (znode.container.maxNeverUsedIntervalMs is 0)
        c1.create().withMode(CreateMode.CONTAINER).forPath(b + "/unused");
        // TTL nodes: one short, one long, one short with a child
        c1.create().withTtl(1000).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(b + "/ttl-short");
        c1.create().withTtl(600_000).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(b + "/ttl-long");
        c1.create().withTtl(1000).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(b + "/ttl-parent");
        c1.create().forPath(b + "/ttl-parent/kid");
        c1.create().withTtl(1000).withMode(CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL).forPath(b + "/ttl-seq-");
        // a lock whose parent containers Curator creates
        InterProcessMutex m = new InterProcessMutex(c1, b + "/locks/one");
        m.acquire();
        m.release();
        t.call("lock_parent_after_release", () -> c2.checkExists().forPath(b + "/locks/one") != null);
        c2.checkExists().usingWatcher((Watcher) e -> ev.add("used", e)).forPath(b + "/used");
        c2.checkExists().usingWatcher((Watcher) e -> ev.add("ttl-short", e)).forPath(b + "/ttl-short");
        c2.getChildren().usingWatcher((Watcher) e -> ev.add("parent", e)).forPath(b);
        c1.delete().forPath(b + "/used/kid");
        t.call("used_container_reaped", () -> waitUntil(() -> c2.checkExists().forPath(b + "/used") == null));
        t.call("ttl_short_reaped", () -> waitUntil(() -> c2.checkExists().forPath(b + "/ttl-short") == null));
        t.call("ttl_seq_reaped", () -> waitUntil(() -> c2.getChildren().forPath(b).stream().noneMatch(x -> x.startsWith("ttl-seq-"))));
        t.call("lock_parent_reaped", () -> waitUntil(() -> c2.checkExists().forPath(b + "/locks/one") == null));
        t.call("lock_grandparent_reaped", () -> waitUntil(() -> c2.checkExists().forPath(b + "/locks") == null));
        ev.settle(300);
        List<String> evs = new ArrayList<>();
        for (Object e : ev.take()) evs.add(json(t.norm(e)));
        Collections.sort(evs);
        t.rec("events", evs);
        Thread.sleep(1500); // a few more reaper rounds
        t.call("unused_container_kept", () -> c2.checkExists().forPath(b + "/unused") != null);
        t.call("ttl_long_kept", () -> c2.checkExists().forPath(b + "/ttl-long") != null);
        t.call("ttl_parent_kept", () -> c2.checkExists().forPath(b + "/ttl-parent") != null);
        c1.delete().forPath(b + "/ttl-parent/kid");
        t.call("ttl_parent_reaped_after_child", () -> waitUntil(() -> c2.checkExists().forPath(b + "/ttl-parent") == null));
        // setData renews a TTL node (mtime counts)
        c1.create().withTtl(1500).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath(b + "/ttl-renew");
        for (int i = 0; i < 6; i++) {
            Thread.sleep(500);
            c1.setData().forPath(b + "/ttl-renew", b("" + i));
        }
        t.call("ttl_renewed_by_set", () -> c2.checkExists().forPath(b + "/ttl-renew") != null);
        t.call("ttl_reaped_after_renewals_stop", () -> waitUntil(() -> c2.checkExists().forPath(b + "/ttl-renew") == null));
        t.call("children_at_end", () -> sorted(c2.getChildren().forPath(b)));
        t.call("parent_stat", () -> c2.checkExists().forPath(b));
    }

    /** Digest credentials that are not plain `user:password` text. */
    static void sAuthCredentials(Trace t) throws Exception {
        // a null credential: ZooKeeper's digest provider fails (AuthFailed, connection closed)
        Rec st1 = new Rec();
        ZooKeeper z1 = t.zk("null-cred", e -> {
            if (e.getType() == Watcher.Event.EventType.None) st1.add(e.getState().name());
        });
        st1.take();
        z1.addAuthInfo("digest", null);
        t.call("null_credential_then_read", () -> z1.exists("/", false) != null);
        st1.settle(500);
        t.rec("null_credential_states", collapse(st1.take()));
        // bytes that are not UTF-8: ZooKeeper decodes them with replacement characters
        ZooKeeper z2 = t.zk("binary-cred", null);
        z2.addAuthInfo("digest", new byte[] {'u', (byte) 0xff, ':', 'p', (byte) 0xfe});
        t.call("binary_credential_whoami", () -> {
            List<String> out = new ArrayList<>();
            for (ClientInfo ci : z2.whoAmI()) out.add(ci.getAuthScheme() + ":" + ci.getUser());
            Collections.sort(out);
            return out;
        });
        t.call("binary_credential_then_read", () -> z2.exists("/", false) != null);
    }

    /** A connect with the right session id but a wrong password. */
    static void sWrongPassword(Trace t) throws Exception {
        String b = "/cur-wrongpw";
        Rec zs = new Rec();
        ZooKeeper z1 = t.zk("z1", e -> {
            if (e.getType() == Watcher.Event.EventType.None) zs.add(e.getState().name());
        });
        zs.waitLen(1);
        zs.take();
        z1.create(b, b(""), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
        Rec bad = new Rec();
        ZooKeeper wrong = new ZooKeeper(HOSTS, 10_000, e -> bad.add(e.getState().name()), z1.getSessionId(), new byte[16]);
        bad.waitLen(1);
        bad.settle(300);
        zs.settle(500);
        t.rec("wrong_password_client_states", bad.take());
        // only the first state: the Java client reconnects after a random delay
        List<Object> held = zs.take();
        t.rec("session_holder_states", held.subList(0, Math.min(1, held.size())));
        wrong.close();
        t.call("holder_still_works", () -> z1.exists(b, false) != null);
    }

    // ---------------------------------------------------------------------------------
    interface Section {
        void run(Trace t) throws Exception;
    }

    public static void main(String[] args) throws Exception {
        HOSTS = args[0];
        Set<String> only = args.length > 1 ? new HashSet<>(Arrays.asList(args[1].split(","))) : null;
        LinkedHashMap<String, Section> sections = new LinkedHashMap<>();
        sections.put("crud", CuratorScenario::sCrud);
        sections.put("java", CuratorScenario::sJava);
        sections.put("txn", CuratorScenario::sTxn);
        sections.put("locks", CuratorScenario::sLocks);
        sections.put("leader", CuratorScenario::sLeader);
        sections.put("caches", CuratorScenario::sCaches);
        sections.put("persistent", CuratorScenario::sPersistent);
        sections.put("atomic", CuratorScenario::sAtomic);
        sections.put("watches", CuratorScenario::sWatches);
        sections.put("session", CuratorScenario::sSession);
        sections.put("wrong_password", CuratorScenario::sWrongPassword);
        sections.put("auth_credentials", CuratorScenario::sAuthCredentials);
        sections.put("reaping", CuratorScenario::sReaping);
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
        for (Map.Entry<String, Section> e : sections.entrySet()) {
            // `reaping` needs specially configured servers: only when asked for by name
            if (only == null ? e.getKey().equals("reaping") : !only.contains(e.getKey())) continue;
            Trace t = new Trace(e.getKey());
            long start = System.currentTimeMillis();
            try {
                e.getValue().run(t);
            } catch (Throwable ex) {
                t.rec("SECTION-ABORTED", excName(ex), String.valueOf(ex.getMessage()));
                ex.printStackTrace();
            } finally {
                t.closeAll();
            }
            System.err.printf("section %s: %.2fs%n", e.getKey(), (System.currentTimeMillis() - start) / 1000.0);
            for (Object item : new ArrayList<>(t.items)) out.println(e.getKey() + "\t" + json(item));
            out.println(e.getKey() + "\tEND");
        }
        out.flush();
        System.exit(0);
    }
}
