#!/usr/bin/env bash
# Runs kazoo's own test suite (the Python client's upstream tests, ~500 of them, ~4 min)
# against Corral instead of Apache ZooKeeper:
#
#   scripts/kazoo-suite.sh [CORRAL_BIN] [pytest args…]     # default: target/release/corral
#
# kazoo's harness starts a 3-server ensemble with `java … QuorumPeerMain zoo.cfg`; a `java`
# first on PATH runs `corral server zoo.cfg` for that class (the harness's -D options in
# SERVER_JVMFLAGS, as zkServer.sh passes them: read-only mode, the super digest, the JAAS
# file with the SASL DIGEST-MD5 accounts) and the real java for anything else. Its
# zoo.cfg sets secureClientPort with JKS stores, reconfigEnabled, Netty and SASL
# settings: Corral reads what it supports and ignores the rest.
#
# Python packages go into a venv under target/kazoo-venv (pytest, pyjks and pyOpenSSL < 24
# for the harness's TLS set-up, objgraph, pure-sasl for the SASL tests, gevent and eventlet
# for the tests of those handlers, and kazoo pinned to the version the suite is from). Server logs: target/kazoo-logs/. Exit status: pytest's.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
BIN=${1:-$REPO/target/release/corral}
shift || true
[[ -x $BIN ]] || { echo "no corral binary at $BIN (cargo build --release)" >&2; exit 2; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
REAL_JAVA=$(command -v java) || { echo "java is needed by kazoo's harness" >&2; exit 2; }
ZK_JAR=${CORRAL_ZK_JAR:-/usr/share/java/zookeeper.jar}

VENV=$REPO/target/kazoo-venv
if [[ ! -x $VENV/bin/python ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
fi
"$VENV/bin/pip" install -q "kazoo==2.11.0" pytest pytest-timeout pyjks "pyOpenSSL<24" objgraph pure-sasl gevent eventlet

SHIM=$(mktemp -d)
LOGS=$REPO/target/kazoo-logs
rm -rf "$LOGS"
mkdir -p "$LOGS"
trap 'rm -rf "$SHIM"' EXIT
cat >"$SHIM/java" <<EOF
#!/usr/bin/env bash
for a in "\$@"; do
  if [[ \$a == org.apache.zookeeper.server.quorum.QuorumPeerMain ]]; then
    cfg="\${@: -1}"
    # The JVM's -D flags go where zkServer.sh puts them (read-only mode, the super
    # digest, the JAAS file with the SASL accounts).
    flags=""
    for p in "\$@"; do
      case \$p in -D*) flags="\$flags \$p" ;; esac
    done
    exec env CORRAL_LOG=\${CORRAL_LOG:-info} SERVER_JVMFLAGS="\$flags" "$BIN" server "\$cfg" \
      >>"$LOGS/\$(basename "\$(dirname "\$cfg")").log" 2>&1
  fi
done
exec "$REAL_JAVA" "\$@"
EOF
chmod +x "$SHIM/java"

SUITE=$("$VENV/bin/python" -c 'import kazoo.tests, os; print(os.path.dirname(kazoo.tests.__file__))')
# The version Corral reports (crates/server/src/fourlw.rs): with CI set, kazoo's
# test_build checks that the server's version is ZOOKEEPER_VERSION.
cd "$SHIM"
PATH=$SHIM:$PATH ZOOKEEPER_VERSION=3.8.4 ZOOKEEPER_CLASSPATH=$ZK_JAR \
    "$VENV/bin/python" -m pytest -q -p no:warnings -p no:cacheprovider -rfE --timeout=120 \
    "$SUITE" "$@"
