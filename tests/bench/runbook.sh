#!/usr/bin/env bash
# The host-mode runbook done by hand with the docker CLI, as the field report describes it
# (pin the proxy to the role=dtr nodes, then host mode on 7080/7443), with its bugs
# corrected, for the benchmark to time against `interlockctl pin-proxy` + `host-mode`.
#
# Corrections to the report's commands, each the smallest that makes the step work:
# - the sed pipelines: the missing `|`, `sed -i` inside a pipe, curly quotes;
# - the next config name: the number after the LAST `-` (`cut -f 2` breaks on
#   `com.docker.ucp.interlock.conf-N`, whose name has other hyphens);
# - the config is found by its target /config.toml, not as the first entry;
# - the proxy's constraint replaces UCP's default ones (`--constraint-add` alone keeps them,
#   and the config says ProxyConstraints = ["node.labels.role==dtr"]);
# - replicas: the lab has 2 role=dtr nodes (the report had 5);
# - the known bug applies to ports too (the core does not move an existing proxy to host
#   mode), so part 2 publishes the proxy's ports the way part 1 pins it;
# - at the end the operator checks that the proxy answers: wait until each proxy task runs on
#   a labelled node and binds the host ports, re-creating the tasks once (`--force`) if one
#   kept its old ports (tests/lab notes: a task that survived a constraints-only update does).
# Left out on both sides: the extension's `Constraints = ["node.labels.role==manager"]` edit
# (the lab has no node with that label, and `pin-proxy` leaves it unless asked).
#
# Usage: DOCKER_HOST=... runbook.sh        (exit 0 once the proxy serves as configured)
#        DOCKER_HOST=... runbook.sh repin KEY=VALUE
#            part 1 alone on a proxy already in host mode: the proxy's constraint becomes
#            node.labels.KEY==VALUE in the config and on the service (exit 0 once it serves)
set -euo pipefail

current_config() {
    docker service inspect --format \
        '{{range .Spec.TaskTemplate.ContainerSpec.Configs}}{{if eq .File.Name "/config.toml"}}{{.ConfigName}}{{end}}{{end}}' \
        ucp-interlock
}
next_config() { # NAME: the same name with its trailing number plus one
    echo "${1%-*}-$((${1##*-} + 1))"
}
rotate_config() { # EDITED-FILE [EXTRA service update FLAGS...]
    local file=$1 current next
    shift
    current=$(current_config)
    next=$(next_config "$current")
    docker config create "$next" "$file" >/dev/null
    docker service update --quiet --update-failure-action rollback \
        --config-rm "$current" --config-add "source=$next,target=/config.toml" \
        "$@" ucp-interlock >/dev/null
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Checks that every proxy task runs and binds both host ports; the caller waits for it.
proxy_serves() {
    local state tasks
    state=$(docker service inspect --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' ucp-interlock-proxy)
    [[ $state != updating && $state != rollback_started ]] || return 1
    tasks=$(docker service ps -q --filter desired-state=running ucp-interlock-proxy)
    [[ $(wc -w <<<"$tasks") -eq 2 ]] || return 1
    # shellcheck disable=SC2086  # one argument per task ID
    docker inspect --format '{{.Status.State}} {{range .Status.PortStatus.Ports}}{{.PublishedPort}} {{end}}' $tasks |
        awk '$1 != "running" || !/ 7080 / || !/ 7443 / { bad = 1 } END { exit bad }'
}

if [[ ${1:-} == repin ]]; then
    label=$2
    docker config inspect --format '{{printf "%s" .Spec.Data}}' "$(current_config)" >"$work/orig.toml"
    sed "s/ProxyConstraints = \[.*\]\$/ProxyConstraints = [\"node.labels.${label%%=*}==${label#*=}\"]/" \
        <"$work/orig.toml" >"$work/new.toml"
    rotate_config "$work/new.toml"
    rm_args=()
    while read -r constraint; do
        [[ -n $constraint ]] && rm_args+=(--constraint-rm "$constraint")
    done < <(docker service inspect --format '{{range .Spec.TaskTemplate.Placement.Constraints}}{{println .}}{{end}}' ucp-interlock-proxy)
    docker service update --quiet "${rm_args[@]}" \
        --constraint-add "node.labels.${label%%=*}==${label#*=}" ucp-interlock-proxy >/dev/null
    for _ in $(seq 1 600); do
        proxy_serves && exit 0
        sleep 0.2
    done
    echo "runbook: the proxy does not serve as configured" >&2
    exit 1
fi

# Part 1: pin the proxy to the role=dtr nodes.
docker config inspect --format '{{printf "%s" .Spec.Data}}' "$(current_config)" >"$work/orig.toml"
sed 's/ProxyConstraints = \[.*\]$/ProxyConstraints = ["node.labels.role==dtr"]/' \
    <"$work/orig.toml" | sed 's/ProxyReplicas = [[:digit:]]*$/ProxyReplicas = 2/' >"$work/new.toml"
rotate_config "$work/new.toml"
docker service update --quiet \
    --constraint-rm node.labels.com.docker.ucp.orchestrator.swarm==true \
    --constraint-rm node.platform.os==linux \
    --constraint-add node.labels.role==dtr --replicas 2 ucp-interlock-proxy >/dev/null

# Part 2: host mode on 7080/7443, the core's port 8080 on the host. (The line on stdout lets
# the benchmark tell the parts apart: proxy tasks created before it are part 1's.)
echo "part 2 starts at $(date +%s.%N)"
docker config inspect --format '{{printf "%s" .Spec.Data}}' "$(current_config)" >"$work/orig2.toml"
sed 's/PublishMode = "ingress"/PublishMode = "host"/' <"$work/orig2.toml" |
    sed 's/PublishedPort = [[:digit:]]*$/PublishedPort = 7080/' |
    sed 's/PublishedSSLPort = [[:digit:]]*$/PublishedSSLPort = 7443/' >"$work/new2.toml"
rotate_config "$work/new2.toml" --publish-add mode=host,target=8080
docker service update --quiet \
    --publish-rm published=80,target=80 --publish-rm published=8443,target=443 \
    --publish-add mode=host,published=7080,target=80 \
    --publish-add mode=host,published=7443,target=443 ucp-interlock-proxy >/dev/null

# stale_ports: a running proxy task does not bind both host ports (it kept its old ones)
stale_ports() {
    local tasks
    tasks=$(docker service ps -q --filter desired-state=running ucp-interlock-proxy)
    [[ -n $tasks ]] || return 1
    # shellcheck disable=SC2086  # one argument per task ID
    docker inspect --format '{{.Status.State}} {{range .Status.PortStatus.Ports}}{{.PublishedPort}} {{end}}' $tasks |
        awk '$1 == "running" && (!/ 7080 / || !/ 7443 /) { stale = 1 } END { exit !stale }'
}
# Check: every proxy task runs on a labelled node and binds both host ports. Re-create the
# tasks once, and only when one kept stale ports once no rollout runs (as interlockctl
# does); tasks still starting are waited for.
forced=no
for _ in $(seq 1 600); do
    proxy_serves && exit 0
    state=$(docker service inspect --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' ucp-interlock-proxy)
    if [[ $forced == no && $state != updating && $state != rollback_started ]] && stale_ports; then
        docker service update --quiet --force ucp-interlock-proxy >/dev/null
        forced=yes
    fi
    sleep 0.2
done
echo "runbook: the proxy does not serve as configured" >&2
exit 1
