#!/usr/bin/env bash
# `make bench`: the operator against Ansible and the seed's ssh loops on a
# fleet of real OpenSSH hosts; writes docs/benchmarks.md and
# docs/benchmarks.json (see docs/benchmarks.md for the knobs). Needs root.
#
#   sudo make bench                    # 100 agents
#   sudo BENCH_NODES=1000 make bench   # 1000 agents
#   sudo BENCH_SCALE=1 make bench      # plus N = 10, 100, 1000
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ "$(id -u)" != 0 ]; then
	echo "hack/bench.sh: needs root (network namespaces, sshd, apt-get)" >&2
	exit 1
fi

# The contenders and the measuring tools, from Debian.
need=()
command -v ansible-playbook >/dev/null || need+=(ansible)
command -v gnuplot >/dev/null || need+=(gnuplot-nox)
[ -x /usr/bin/time ] || need+=(time)
command -v pgrep >/dev/null || need+=(procps)
command -v xargs >/dev/null || need+=(findutils)
if [ ${#need[@]} -gt 0 ]; then
	echo "bench: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
hack/install-deps.sh
# The conntrack sysctl exists only with the module loaded.
modprobe nf_conntrack 2>/dev/null || true

# Static, as the image builds it (the Makefile holds how).
make --no-print-directory operator
go build -o bin/bench ./hack/cmd/bench
echo "bench: load before: $(cat /proc/loadavg)"
exec bin/bench "$@"
