# Shell functions shared by bench/compare.sh, bench/bigtree.sh and bench/profile.sh
# (sourced, not run): the zoo.cfg every benchmark server gets, the port check, and how
# a Corral or an Apache ZooKeeper server is started.

# write_cfg DIR PORT [LINE…]: DIR/zoo.cfg for a server on 127.0.0.1:PORT with its data
# in DIR/data (created), the settings both servers are compared with, then LINEs.
write_cfg() {
    local dir=$1 port=$2
    shift 2
    mkdir -p "$dir/data"
    {
        echo "tickTime=2000"
        echo "initLimit=10"
        echo "syncLimit=5"
        echo "dataDir=$dir/data"
        echo "clientPort=$port"
        echo "clientPortAddress=127.0.0.1"
        echo "maxClientCnxns=0"
        echo "4lw.commands.whitelist=*"
        echo "admin.enableServer=false"
        local line
        for line in "$@"; do echo "$line"; done
    } >"$dir/zoo.cfg"
}

# port_in_use PORT: true when something listens on 127.0.0.1:PORT.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# zk_classpath: Debian's ZooKeeper jar, with slf4j-simple when installed (its log).
zk_classpath() {
    local cp=${CORRAL_ZK_JAR:-/usr/share/java/zookeeper.jar}
    [[ -f /usr/share/java/slf4j-simple.jar ]] && cp="$cp:/usr/share/java/slf4j-simple.jar"
    echo "$cp"
}

# launch_server SERVER DIR: starts SERVER (`zookeeper`, or the path of a corral binary)
# on DIR/zoo.cfg in the background, its output appended to DIR/server.log; sets
# LAUNCHED_PID.
launch_server() {
    local server=$1 dir=$2
    if [[ $server == zookeeper ]]; then
        # Java: the JVM's defaults (G1, tiered JIT); heap large enough for 1M znodes.
        java -Xmx2g -Djava.net.preferIPv4Stack=true -Dzookeeper.admin.enableServer=false \
            -cp "$(zk_classpath)" org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg" \
            >>"$dir/server.log" 2>&1 &
    else
        CORRAL_LOG=info "$server" server "$dir/zoo.cfg" >>"$dir/server.log" 2>&1 &
    fi
    LAUNCHED_PID=$!
}
