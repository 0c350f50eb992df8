#!/usr/bin/env bash
# Runs weft-mpi's multi-rank scenarios and MPI examples with each rank in
# its own network namespace, as ranks on two hosts would be: their only
# path to each other is a veth link, so Open MPI must use its TCP transport
# over it (`--mca btl tcp,self`, restricted to the link's subnet).
#
#   host: bridge weftbr 10.99.0.254 ── veth ── ns weftns1: eth0 10.99.0.1 (rank 0)
#                                   └─ veth ── ns weftns2: eth0 10.99.0.2 (rank 1)
#
# The ranks' link to each other is the bridge between their veth pairs;
# the host sits on it too because `mpirun`'s PMIx server, which the ranks
# reach over TCP, runs in the host's namespace.
#
# Usage: scripts/mpi_netns.sh BIN_DIR [SCENARIO_BIN]
#   BIN_DIR       where the release MPI examples are (target/release)
#   SCENARIO_BIN  the mpi-scenarios rank program (optional)
#
# Prints `skipped: ...` and exits 0 where namespaces or veth links cannot
# be made (no root, no `ip`, a container without CAP_NET_ADMIN).
set -euo pipefail

bin_dir=$1
scenarios=${2:-}

skip() { echo "skipped: $*"; exit 0; }

command -v ip >/dev/null || skip "no \`ip\` command (apt-get install iproute2)"
[ "$(id -u)" = 0 ] || skip "network namespaces need root"

down() {
    for i in 1 2; do
        ip netns del "weftns$i" 2>/dev/null || true
        ip link del "weftv$i" 2>/dev/null || true
    done
    ip link del weftbr 2>/dev/null || true
}
down
trap down EXIT

if ! ip link add weftbr type bridge 2>/dev/null; then
    skip "cannot create network devices here (no CAP_NET_ADMIN?)"
fi
ip addr add 10.99.0.254/24 dev weftbr
ip link set weftbr up
for i in 1 2; do
    ip netns add "weftns$i" 2>/dev/null || skip "cannot create network namespaces here"
    ip link add "weftv$i" type veth peer name eth0 netns "weftns$i"
    ip link set "weftv$i" master weftbr up
    ip -n "weftns$i" addr add "10.99.0.$i/24" dev eth0
    ip -n "weftns$i" link set eth0 up
    ip -n "weftns$i" link set lo up
done

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# PMIx (rank <-> mpirun) over the bridge; MPI traffic over TCP on it only.
export PMIX_MCA_ptl_tcp_if_include=10.99.0.0/24 PMIX_MCA_ptl_tcp_remote_connections=1
mca=(--mca btl tcp,self --mca btl_tcp_if_include 10.99.0.0/24 --mca oob_tcp_if_include 10.99.0.0/24)

# One rank per namespace: `mpirun … -n 1 ip netns exec weftns1 PROG : -n 1 ip netns exec weftns2 PROG`.
two_hosts() {
    local prog=$1
    shift
    timeout 300 mpirun --oversubscribe "${mca[@]}" \
        -n 1 ip netns exec weftns1 "$prog" "$@" : \
        -n 1 ip netns exec weftns2 "$prog" "$@"
}

if [ -n "$scenarios" ]; then
    for scenario in point_to_point collectives cancelled_collectives pool_map freed_comm_after_pool mpi4py_order; do
        echo "-- $scenario, one rank per network namespace"
        out=$(two_hosts "$scenarios" "$scenario")
        echo "$out"
        for rank in 0 1; do
            grep -q "ok $scenario rank $rank" <<<"$out" || { echo "rank $rank did not finish $scenario"; exit 1; }
        done
    done
fi
for example in mpi_allreduce mpi_pool_map mpi_halo; do
    echo "-- $example, one rank per network namespace"
    two_hosts "$bin_dir/$example"
done
echo "network namespaces: ok"
