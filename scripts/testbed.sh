#!/usr/bin/env bash
# A multi-node test bed on one machine: N network namespaces ("nodes"), each
# with an interface eth0 joined by a veth pair to a bridge that lives in a
# namespace of its own (the "switch"), so no address or interface is added
# to the machine's own namespace. Node I (0..N-1) has 10.231.X.(I+1)/24,
# where X is chosen per bed so that two beds never share a subnet; every
# name starts with the bed's id, so two runs do not collide. Needs root
# (or CAP_NET_ADMIN) and iproute2; tc for `lossy`.
#   scripts/testbed.sh up N [ID]      make a bed; prints ID and the addresses
#   scripts/testbed.sh addr ID I      the address of node I
#   scripts/testbed.sh exec ID I CMD  runs CMD in node I's namespace
#   scripts/testbed.sh cut ID I       cuts node I off (its switch port goes
#                                     down: its own link stays up, packets vanish)
#   scripts/testbed.sh heal ID I      undoes cut and lossy
#   scripts/testbed.sh lossy ID I     100% packet loss on node I (tc netem: needs
#                                     the kernel's sch_netem; exit 1 saying so)
#   scripts/testbed.sh down ID        removes every namespace of the bed
#   scripts/testbed.sh check          exit 0 when namespaces can be made here
set -euo pipefail

usage() {
    sed -n '9,18p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

ns() { echo "$1-n$2"; }     # node I's namespace
sw() { echo "$1-sw"; }      # the switch's namespace
statedir() { echo "/run/flame-testbed/$1"; }

subnet_of() { cat "$(statedir "$1")/subnet"; }

addr() { # ID I
    echo "10.231.$(subnet_of "$1").$(($2 + 1))"
}

down() { # ID
    local id=$1 n
    [[ "$id" =~ ^[a-z0-9]+$ ]] || { echo "testbed: bad id '$id'" >&2; exit 2; }
    for n in $(ip netns list | awk '{print $1}' | grep -E "^$id-(n[0-9]+|sw)$" || true); do
        # processes still inside keep the namespace's interfaces alive
        for p in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
        ip netns del "$n" 2>/dev/null || true
    done
    rm -rf "$(statedir "$id")"
}

up() { # N [ID]
    local count=$1 id=${2:-fl$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')}
    [[ "$count" =~ ^[0-9]+$ ]] && [ "$count" -ge 1 ] && [ "$count" -le 250 ] ||
        { echo "testbed: N must be 1..250" >&2; exit 2; }
    [[ "$id" =~ ^[a-z0-9]{1,8}$ ]] || { echo "testbed: the id is 1-8 of [a-z0-9]" >&2; exit 2; }
    mkdir -p /run/flame-testbed
    # a subnet no other bed here uses (the claim is a mkdir: atomic)
    local x
    for x in $(shuf -i 1-254); do
        if mkdir "/run/flame-testbed/subnet-$x" 2>/dev/null; then
            echo "$id" >"/run/flame-testbed/subnet-$x/id"
            break
        fi
        # a claim whose bed is gone is taken over
        local owner
        owner=$(cat "/run/flame-testbed/subnet-$x/id" 2>/dev/null || true)
        if [ -n "$owner" ] && [ ! -d "$(statedir "$owner")" ] && ! ip netns list | grep -q "^$owner-sw"; then
            echo "$id" >"/run/flame-testbed/subnet-$x/id"
            break
        fi
        x=""
    done
    [ -n "$x" ] || { echo "testbed: no free 10.231.x.0/24 subnet" >&2; exit 1; }
    mkdir -p "$(statedir "$id")"
    echo "$x" >"$(statedir "$id")/subnet"
    echo "$count" >"$(statedir "$id")/count"
    trap 'down "$id"; rm -rf "/run/flame-testbed/subnet-$x"' ERR
    local s i n
    s=$(sw "$id")
    ip netns add "$s"
    ip -n "$s" link set lo up
    ip -n "$s" link add br0 type bridge
    ip -n "$s" link set br0 up
    for ((i = 0; i < count; i++)); do
        n=$(ns "$id" "$i")
        ip netns add "$n"
        ip -n "$n" link set lo up
        ip -n "$n" link add eth0 type veth peer name "p$i" netns "$s"
        ip -n "$n" addr add "10.231.$x.$((i + 1))/24" dev eth0
        ip -n "$n" link set eth0 up
        ip -n "$s" link set "p$i" master br0
        ip -n "$s" link set "p$i" up
    done
    trap - ERR
    echo "$id"
    for ((i = 0; i < count; i++)); do echo "node $i $(ns "$id" "$i") 10.231.$x.$((i + 1))"; done
}

check() {
    local probe="flprobe$$"
    if ! ip netns add "$probe" 2>/dev/null; then
        echo "ip netns add is not permitted here (needs root or CAP_NET_ADMIN and a writable /run/netns)"
        exit 1
    fi
    ip netns del "$probe"
}

[ $# -ge 1 ] || usage
cmd=$1; shift
case "$cmd" in
    up) [ $# -ge 1 ] || usage; up "$@" ;;
    down)
        [ $# -eq 1 ] || usage
        x=$(subnet_of "$1" 2>/dev/null || true)
        down "$1"
        [ -n "$x" ] && rm -rf "/run/flame-testbed/subnet-$x"
        ;;
    addr) [ $# -eq 2 ] || usage; addr "$1" "$2" ;;
    exec) [ $# -ge 3 ] || usage; id=$1 i=$2; shift 2; exec ip netns exec "$(ns "$id" "$i")" "$@" ;;
    cut) [ $# -eq 2 ] || usage; ip -n "$(sw "$1")" link set "p$2" down ;;
    lossy)
        [ $# -eq 2 ] || usage
        tc -n "$(ns "$1" "$2")" qdisc replace dev eth0 root netem loss 100% ||
            { echo "testbed: tc netem is not available here (sch_netem); use cut" >&2; exit 1; }
        ;;
    heal)
        [ $# -eq 2 ] || usage
        ip -n "$(sw "$1")" link set "p$2" up
        tc -n "$(ns "$1" "$2")" qdisc del dev eth0 root 2>/dev/null || true
        ;;
    check) check ;;
    *) usage ;;
esac
