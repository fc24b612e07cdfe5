#!/bin/sh
# Stand-in for the Interlock proxy (nginx) of the interlockctl test lab; runs inside the
# lab image (busybox). Serves /www over plain HTTP with busybox httpd on every port given
# (default: 80 443). /www/index.html says "interlock-proxy-standin"; /www/node holds the
# container hostname (services set it to the node's hostname with --hostname).
# Exits at once on SIGTERM/SIGQUIT/SIGINT, and with status 1 if an httpd dies
# (e.g. its port cannot be bound), so that the Swarm task fails visibly.
# Like nginx, it first reads the config the core renders (/etc/nginx/nginx.conf, when
# mounted) and exits 1 at start on a directive nginx would reject: a `server_name` value
# with a character that breaks the directive (`;`, braces, quotes, `$`, `#`, a backslash)
# or none, a `proxy_pass` that is not http://NAME:PORT.
[ $# -gt 0 ] || set -- 80 443
NGINX_CONF=/etc/nginx/nginx.conf
if [ -f "$NGINX_CONF" ]; then
    # shellcheck disable=SC2016  # awk program, not shell
    bad=$(awk '
        /^server_name / {
            v = substr($0, 13)
            if (v !~ /;$/ || substr(v, 1, length(v) - 1) ~ /[;{}"\047$#\\]/ || v ~ /^ *;$/) { print NR ": " $0; exit }
        }
        /^proxy_pass / && $0 !~ /^proxy_pass http:\/\/[A-Za-z0-9._-]+:[0-9]+;$/ { print NR ": " $0; exit }
    ' "$NGINX_CONF")
    if [ -n "$bad" ]; then
        echo "nginx: [emerg] invalid directive in $NGINX_CONF:$bad" >&2
        exit 1
    fi
fi
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
