#!/bin/sh
# Stand-in for the Interlock proxy (nginx) of the interlockctl test lab; runs inside the
# lab image (busybox). Serves /www over plain HTTP with busybox httpd on every port given
# (default: 80 443). /www/index.html says "interlock-proxy-standin"; /www/node holds the
# container hostname (services set it to the node's hostname with --hostname).
# Exits at once on SIGTERM/SIGQUIT/SIGINT, and with status 1 if an httpd dies
# (e.g. its port cannot be bound), so that the Swarm task fails visibly.
[ $# -gt 0 ] || set -- 80 443
hostname > /www/node 2>/dev/null || true
pids=""
for port in "$@"; do
    httpd -f -p "$port" -h /www &
    pids="$pids $!"
done
# shellcheck disable=SC2086  # $pids is a list of PIDs
trap 'kill $pids 2>/dev/null; exit 0' TERM QUIT INT
echo "interlock-proxy-standin on $(hostname): serving /www on ports: $*"
while :; do
    for p in $pids; do
        if ! kill -0 "$p" 2>/dev/null; then
            echo "interlock-proxy-standin: httpd (pid $p) exited" >&2
            # shellcheck disable=SC2086
            kill $pids 2>/dev/null
            exit 1
        fi
    done
    sleep 1 &
    wait $!
done
