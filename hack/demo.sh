#!/usr/bin/env bash
# make demo: as root on a Debian-like machine, install what is missing,
# build, and run the sandbox demo (hack/cmd/sandbox) in the foreground:
# 3 agents with real sshd in network namespaces, the Marathon emulator
# running the real docker-registry, and the operator converging them.
# Ctrl-C (or `make demo-down` from another terminal) removes everything.
#
#   hack/demo.sh          start the demo (stops a running one first)
#   hack/demo.sh -auth    the same with htpasswd auth and pull credentials
#                         (also: make demo DEMO_AUTH=1)
#   hack/demo.sh down     stop a running demo, remove leftovers of any
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "demo: needs root (network namespaces, sshd): run sudo make demo" >&2
	exit 1
fi
export PATH=/usr/local/go/bin:$PATH
command -v go >/dev/null || { echo "demo: Go is not installed (https://go.dev/doc/install; see go.mod for the version)" >&2; exit 1; }

if [ "${1:-}" = down ]; then
	[ -x bin/sandbox ] || go build -o bin/sandbox ./hack/cmd/sandbox
	exec bin/sandbox down
fi

echo "demo: checking the Debian packages the sandbox uses"
hack/install-deps.sh
# The conntrack sysctl exists once the nf_conntrack module is loaded.
modprobe nf_conntrack 2>/dev/null || true
echo "demo: building bin/registry-operator and bin/sandbox"
# Static, as the image builds it (the Makefile holds how).
make --no-print-directory operator
go build -o bin/sandbox ./hack/cmd/sandbox
args=("$@")
if [ -n "${DEMO_AUTH:-}" ] && [ "${DEMO_AUTH}" != 0 ]; then
	args+=(-auth)
fi
exec bin/sandbox demo "${args[@]}"
