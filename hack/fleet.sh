#!/bin/sh
# Start, inspect and remove a fleet of real OpenSSH hosts in network
# namespaces (internal/testing/testfleet), for the demo, the benchmarks and humans.
#
#   hack/fleet.sh up -n 3 -name demo     start 3 hosts in the background
#   eval "$(hack/fleet.sh env -name demo)"   FLEET_HOSTS, FLEET_SSH_KEY, FLEET_KNOWN_HOSTS, FLEET_SSH_OPTS, ...
#   ssh $FLEET_SSH_OPTS root@198.18.0.2 hostname
#   hack/fleet.sh exec -name demo 0 -- cat /etc/docker/certs.d/...   run inside host 0
#   hack/fleet.sh status -name demo
#   hack/fleet.sh down -name demo        remove every namespace, link, process and file
#   hack/fleet.sh cleanup                remove leftovers of killed runs
#
# Needs root and: openssh-server openssh-client iproute2 util-linux sudo.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${FLEET_BIN:-$root/bin/testfleet}
if [ "$(id -u)" != 0 ]; then
	echo "hack/fleet.sh: needs root (it creates network namespaces and runs sshd)" >&2
	exit 1
fi
(cd "$root" && go build -o "$bin" ./hack/cmd/testfleet)
exec "$bin" "$@"
