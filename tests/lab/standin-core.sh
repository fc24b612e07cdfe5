#!/bin/sh
# Stand-in for the Interlock core (service ucp-interlock) of the interlockctl test lab.
# Runs inside the lab image (busybox + static docker CLI) as:  standin-core.sh run -c /config.toml
#
# Like the real core it:
#  1. loads the TOML config (default /config.toml) and exits 1 with a reason on stderr if it
#     cannot: file missing, no [Extensions.<name>] table, an extension without
#     `ProxyReplicas = <int>`, PollInterval present but not a quoted Go duration ("3s", "500ms"),
#     or a line that is neither a table header nor key = value;
#  2. reconciles the proxy of every extension once, at start: if the service named by
#     ProxyServiceName does not exist it is created (lab image, ports in PublishMode,
#     ProxyReplicas, ProxyConstraints, labels); if it exists it is left untouched -- the real
#     product's known bug: config changes (ProxyConstraints, ...) never reach an existing proxy.
#     The first extension is reconciled by this process, every other one by a run of this
#     script with `--extension NAME --reconcile-only` (service clusters);
#  3. like the real core, renders each proxy's nginx config (here a summary naming the loaded
#     config's digest and, for each routed service, a `server_name` line of its
#     com.docker.lb.hosts and a `proxy_pass` line of its com.docker.lb.port, unchecked) and, when it differs from the one the proxy mounts, writes
#     it into a new config object of its own and swaps it onto that proxy service (`docker
#     service update --config-rm/--config-add`, a rolling update of the proxy): on every load of
#     a changed config, and again whenever a routed service (label com.docker.lb.hosts) is
#     created or removed or its hosts or port label changes: a concurrent writer of the proxies' specs (unless LAB_CORE_WRITER=off,
#     for the benchmark's comparison without one). `--render-only` prints the rendering and
#     exits (lab.sh mounts it on the fixture's proxy, so a fresh core has nothing to swap). Another
#     extension's proxy gets its swap from a run of this script with `--extension NAME
#     --reconcile-only` (at load) or `--extension NAME --swap-only` (a route change);
#  4. with LAB_CORE_IMAGES=on (lab.sh's fixture on Interlock's image names), keeps the
#     extension service (ServiceName) on the image its extension's `Image` names, as the real
#     core reconciles it: at start and then every second, an extension on another image is put
#     back (`docker service update --image`), so a change of the image that forgets the config
#     is undone (the first extension only);
#  5. prints a summary of the loaded config, then serves HTTP on the ListenAddr port (default
#     8080) as its "gRPC" port (GET / returns "interlock-core-standin" and the summary) until
#     SIGTERM/SIGINT/SIGQUIT, on which it exits at once.
# The proxy image is $LAB_IMAGE (set on the service by lab.sh), else this container's image.

CONFIG=/config.toml
WANT=
RECONCILE_ONLY=
SWAP_ONLY=
RENDER_ONLY=
while [ $# -gt 0 ]; do
    case "$1" in
        -c|--config) CONFIG=$2; shift 2 ;;
        --extension) WANT=$2; shift 2 ;;
        --reconcile-only) RECONCILE_ONLY=1; shift ;;
        --swap-only) SWAP_ONLY=1; shift ;;
        --render-only) RENDER_ONLY=1; shift ;;
        *) shift ;;
    esac
done

log() { echo "standin-core: $*"; }
die() { echo "standin-core: cannot load config $CONFIG: $*" >&2; exit 1; }

[ -f "$CONFIG" ] || die "file missing"
[ -r "$CONFIG" ] || die "file not readable"

# The awk program validates the config and prints shell code: variable assignments, and
# `set -- "$@" ...` lines that build the `docker service create` options of the proxy.
# Keys are matched case-insensitively (like BurntSushi/toml).
# shellcheck disable=SC2016  # awk program, not shell
AWK_PROG='
function trim(s) { sub(/^[ \t\r]+/, "", s); sub(/[ \t\r]+$/, "", s); return s }
function nocomment(v,   i, c, inq, out) {
    out = ""; inq = 0
    for (i = 1; i <= length(v); i++) {
        c = substr(v, i, 1)
        if (c == "\"" && (i == 1 || substr(v, i - 1, 1) != "\\")) inq = !inq
        if (c == "#" && !inq) break
        out = out c
    }
    return trim(out)
}
function unq(v) { if (v ~ /^".*"$/) { v = substr(v, 2, length(v) - 2); gsub(/\\"/, "\"", v) } return v }
function shq(s) { gsub(/\047/, "\047\\\047\047", s); return "\047" s "\047" }
function store(k, v,   lk) {
    gsub(/"/, "", k); lk = tolower(k)
    if (sect == "") { top[lk] = v; return }
    if (sect in extof) { e = extof[sect]; val[e, lk] = v; has[e, lk] = 1; return }
    if (sect in mapof) { m = mapof[sect]; nmap[m]++; mapk[m, nmap[m]] = k; mapv[m, nmap[m]] = unq(v) }
}
function err(msg) { if (errmsg == "") errmsg = msg }
# print one `set -- "$@" opt value` line per string of a TOML array of strings
function arrayopts(v, opt,   s, q) {
    s = v
    while (match(s, /"[^"]*"/)) {
        q = substr(s, RSTART + 1, RLENGTH - 2)
        print "set -- \"$@\" " opt " " shq(q)
        s = substr(s, RSTART + RLENGTH)
    }
}
BEGIN { sect = ""; next_ = 0; pending = ""; errmsg = "" }
{
    line = $0
    if (pending != "") {
        pv = pv " " nocomment(line)
        if (index(nocomment(line), "]")) { store(pending, pv); pending = "" }
        next
    }
    t = trim(line)
    if (t == "" || substr(t, 1, 1) == "#") next
    if (substr(t, 1, 1) == "[") {
        h = nocomment(t)
        if (h !~ /\]$/) { err("line " NR ": bad table header: " t); next }
        sub(/^\[+[ \t]*/, "", h); sub(/[ \t]*\]+$/, "", h)
        sect = h
        if (h ~ /^Extensions\.[^.]+$/) {
            e = h; sub(/^Extensions\./, "", e); gsub(/"/, "", e)
            exts[++next_] = e; extof[h] = e
        } else if (h ~ /^Extensions\.[^.]+\.[A-Za-z]+$/) {
            m = h; sub(/^Extensions\./, "", m); gsub(/"/, "", m); mapof[h] = m
        }
        next
    }
    eq = index(t, "=")
    if (eq == 0) { err("line " NR ": not a key = value line: " t); next }
    k = trim(substr(t, 1, eq - 1)); v = nocomment(substr(t, eq + 1))
    if (k == "" || v == "") { err("line " NR ": incomplete key = value line: " t); next }
    if (substr(v, 1, 1) == "[" && index(v, "]") == 0) { pending = k; pv = v; next }
    store(k, v)
}
END {
    if (pending != "") err("unterminated array for key " pending)
    if (next_ == 0) err("no [Extensions.<name>] table (at least one extension is required)")
    for (i = 1; i <= next_; i++) {
        e = exts[i]
        if (!has[e, "proxyreplicas"]) err("extension " e ": ProxyReplicas missing")
        else if (val[e, "proxyreplicas"] !~ /^[0-9]+$/) err("extension " e ": ProxyReplicas is not an integer: " val[e, "proxyreplicas"])
    }
    if ("pollinterval" in top && top["pollinterval"] !~ /^"([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+"$/)
        err("PollInterval is not a duration: " top["pollinterval"])
    if (errmsg != "") { print "die " shq(errmsg); exit 0 }

    e = exts[1]; for (i = 1; i <= next_; i++) if (exts[i] == want) e = want
    list = ""
    for (i = 1; i <= next_; i++) list = list (i > 1 ? "," : "") exts[i]
    print "EXTENSIONS=" shq(list)
    print "EXT=" shq(e)
    print "POLL=" shq(("pollinterval" in top) ? unq(top["pollinterval"]) : "3s")
    print "LISTEN=" shq(("listenaddr" in top) ? unq(top["listenaddr"]) : ":8080")
    split("image= servicename=ucp-interlock-extension proxyservicename=ucp-interlock-proxy proxyreplicas=2 publishmode=ingress publishedport=80 publishedsslport=8443 targetport=80 targetsslport=443 proxystopsignal=SIGQUIT proxystopgraceperiod=5s proxyupdatedelay=", defs, " ")
    for (d in defs) {
        kv = defs[d]; k = substr(kv, 1, index(kv, "=") - 1); dv = substr(kv, index(kv, "=") + 1)
        v = has[e, k] ? unq(val[e, k]) : dv
        print "C_" toupper(k) "=" shq(v)
    }
    if (has[e, "proxyconstraints"]) arrayopts(val[e, "proxyconstraints"], "--constraint")
    else { arrayopts("\"node.labels.com.docker.ucp.orchestrator.swarm==true\" \"node.platform.os==linux\"", "--constraint") }
    if (has[e, "proxyargs"]) arrayopts(val[e, "proxyargs"], "--args-ignored")
    for (j = 1; j <= nmap[e ".ProxyLabels"]; j++)
        print "set -- \"$@\" --label " shq(mapk[e ".ProxyLabels", j] "=" mapv[e ".ProxyLabels", j])
    for (j = 1; j <= nmap[e ".ProxyContainerLabels"]; j++)
        print "set -- \"$@\" --container-label " shq(mapk[e ".ProxyContainerLabels", j] "=" mapv[e ".ProxyContainerLabels", j])
}
'

set --
code=$(awk -v want="$WANT" "$AWK_PROG" "$CONFIG") || die "parser failed"
# Drop ProxyArgs: the stand-in proxy takes only its ports as arguments.
code=$(printf '%s\n' "$code" | grep -v -- ' --args-ignored ')
eval "$code"

# The generated nginx config: what the real core renders from the routes, here a summary
# plus, for each routed service, its hosts and port as nginx directives (the values exactly as
# labelled, unchecked, as the real core writes them).
PROXY_CONFIG_TARGET=/etc/nginx/nginx.conf
routes() {
    docker service ls --filter label=com.docker.lb.hosts --format '{{.Name}}' 2>/dev/null | sort
}
# One line per routed service: NAME<TAB>HOSTS<TAB>PORT (a label change is a route change too).
route_labels() {
    for name in $(routes); do
        docker service inspect --format \
            '{{.Spec.Name}}{{"\t"}}{{index .Spec.Labels "com.docker.lb.hosts"}}{{"\t"}}{{index .Spec.Labels "com.docker.lb.port"}}' \
            "$name" 2>/dev/null
    done
}
mounted_proxy_config() {
    docker service inspect --format \
        "{{range .Spec.TaskTemplate.ContainerSpec.Configs}}{{if eq .File.Name \"$PROXY_CONFIG_TARGET\"}}{{.ConfigName}}{{end}}{{end}}" \
        "$C_PROXYSERVICENAME" 2>/dev/null
}
render_proxy_config() {
    echo "# nginx.conf rendered by the Interlock core stand-in"
    echo "# core config: $(md5sum <"$CONFIG" | cut -d' ' -f1)"
    route_labels | while IFS='	' read -r name hosts port; do
        echo "# route: $name"
        echo "server_name $(echo "$hosts" | tr ',' ' ');"
        [ -z "$port" ] || echo "proxy_pass http://$name:$port;"
    done
}
# Creates the next proxy config and swaps it onto the proxy, retrying when someone else
# updated the proxy in between ("update out of sequence"); nothing when the proxy already
# mounts this rendering. Old configs are kept: the proxy's previous spec (its rollback target)
# may still mount them.
swap_proxy_config() {
    if [ "${LAB_CORE_WRITER:-on}" = off ]; then
        log "LAB_CORE_WRITER=off: not swapping a proxy config"
        return 0
    fi
    rendered=$(render_proxy_config)
    old=$(mounted_proxy_config)
    if [ -n "$old" ] &&
       [ "$(docker config inspect --format '{{printf "%s" .Spec.Data}}' "$old" 2>/dev/null)" = "$rendered" ]; then
        log "proxy config $old of $C_PROXYSERVICENAME is current: nothing to swap"
        return 0
    fi
    name="com.docker.interlock.proxy.$(date +%s)-$$-$RANDOM"
    if ! printf '%s\n' "$rendered" |
         docker config create --label com.docker.interlock.proxy=true "$name" - >/dev/null; then
        log "could not create proxy config $name"
        return 1
    fi
    for try in 1 2 3 4 5; do
        old=$(mounted_proxy_config)
        set -- --config-add "source=$name,target=$PROXY_CONFIG_TARGET"
        if [ -n "$old" ]; then set -- --config-rm "$old" "$@"; fi
        if docker service update --detach --quiet "$@" "$C_PROXYSERVICENAME" >/dev/null 2>&1; then
            log "swapped proxy config $name onto $C_PROXYSERVICENAME (try $try)"
            return 0
        fi
        sleep 0.3
    done
    log "could not swap proxy config $name onto $C_PROXYSERVICENAME"
}

# Puts the extension service back on the config's Image when it runs another one
# (LAB_CORE_IMAGES=on only: the default fixture runs the stand-in by its ID).
reconcile_extension_image() {
    [ "${LAB_CORE_IMAGES:-off}" = on ] && [ -n "$C_IMAGE" ] || return 0
    have=$(docker service inspect --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}' "$C_SERVICENAME" 2>/dev/null) || return 0
    [ -n "$have" ] && [ "$have" != "$C_IMAGE" ] || return 0
    if docker service update --detach --quiet --no-resolve-image --image "$C_IMAGE" "$C_SERVICENAME" >/dev/null 2>&1; then
        log "put $C_SERVICENAME back on $C_IMAGE (it ran $have)"
    fi
}

# Runs this script for every other extension of the config (service clusters).
each_other_extension() {
    for other in $(echo "$EXTENSIONS" | tr ',' ' '); do
        [ "$other" = "$EXT" ] || "$0" --extension "$other" "$@" -c "$CONFIG" || return 1
    done
}

if [ -n "$RENDER_ONLY" ]; then
    render_proxy_config
    exit 0
fi

log "loaded $CONFIG: extensions=$EXTENSIONS; using extension \"$EXT\": ProxyServiceName=$C_PROXYSERVICENAME ProxyReplicas=$C_PROXYREPLICAS PublishMode=$C_PUBLISHMODE PublishedPort=$C_PUBLISHEDPORT->$C_TARGETPORT PublishedSSLPort=$C_PUBLISHEDSSLPORT->$C_TARGETSSLPORT PollInterval=$POLL ListenAddr=$LISTEN"

# A route change, seen by the process of the first extension: only the swap.
if [ -n "$SWAP_ONLY" ]; then
    swap_proxy_config
    exit 0
fi

case "$C_PUBLISHMODE" in
    ingress|host) ;;
    *) die "extension $EXT: PublishMode must be ingress or host, not '$C_PUBLISHMODE'" ;;
esac

if docker service inspect "$C_PROXYSERVICENAME" >/dev/null 2>&1; then
    log "proxy service $C_PROXYSERVICENAME exists: left untouched"
else
    image=${LAB_IMAGE:-}
    [ -n "$image" ] || image=$(docker inspect --format '{{.Image}}' "$(hostname)" 2>/dev/null) || true
    if [ -z "$image" ]; then
        echo "standin-core: cannot find the proxy image (LAB_IMAGE unset)" >&2
        exit 1
    fi
    if [ -n "$C_PROXYUPDATEDELAY" ]; then set -- "$@" --update-delay "$C_PROXYUPDATEDELAY"; fi
    log "creating proxy service $C_PROXYSERVICENAME ($C_PROXYREPLICAS replicas, $C_PUBLISHMODE mode)"
    if ! docker service create --detach --quiet --no-resolve-image \
        --name "$C_PROXYSERVICENAME" \
        --label type=com.docker.interlock.core.proxy \
        --replicas "$C_PROXYREPLICAS" \
        --publish "mode=$C_PUBLISHMODE,published=$C_PUBLISHEDPORT,target=$C_TARGETPORT" \
        --publish "mode=$C_PUBLISHMODE,published=$C_PUBLISHEDSSLPORT,target=$C_TARGETSSLPORT" \
        --stop-signal "$C_PROXYSTOPSIGNAL" --stop-grace-period "$C_PROXYSTOPGRACEPERIOD" \
        --update-failure-action rollback \
        --hostname '{{.Node.Hostname}}' \
        "$@" "$image" /standin-proxy.sh "$C_TARGETPORT" "$C_TARGETSSLPORT" >/dev/null; then
        echo "standin-core: creating proxy service $C_PROXYSERVICENAME failed" >&2
        exit 1
    fi
fi

swap_proxy_config
[ -z "$RECONCILE_ONLY" ] || exit 0
each_other_extension --reconcile-only || exit 1
reconcile_extension_image

port=${LISTEN##*:}
case "$port" in ''|*[!0-9]*) port=8080 ;; esac
# the "gRPC" port answers HTTP GET / with the loaded config summary
mkdir -p /tmp/core-www
{
    echo "interlock-core-standin"
    echo "config=$CONFIG extensions=$EXTENSIONS extension=$EXT"
    echo "ProxyServiceName=$C_PROXYSERVICENAME ProxyReplicas=$C_PROXYREPLICAS PublishMode=$C_PUBLISHMODE"
    echo "PublishedPort=$C_PUBLISHEDPORT TargetPort=$C_TARGETPORT PublishedSSLPort=$C_PUBLISHEDSSLPORT TargetSSLPort=$C_TARGETSSLPORT"
    echo "PollInterval=$POLL ListenAddr=$LISTEN"
} >/tmp/core-www/index.html
httpd -f -p "$port" -h /tmp/core-www &
pid=$!
trap 'kill $pid 2>/dev/null; exit 0' TERM INT QUIT
log "serving on :$port"
# Watch the routes (once a second; the real core polls every PollInterval).
last=$(route_labels)
while kill -0 "$pid" 2>/dev/null; do
    sleep 1 &
    wait $!
    now=$(route_labels)
    if [ "$now" != "$last" ]; then
        last=$now
        swap_proxy_config
        each_other_extension --swap-only
    fi
    reconcile_extension_image
done
