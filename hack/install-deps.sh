#!/usr/bin/env bash
# Installs the Debian packages the tests, demo and benchmarks use. Idempotent:
# only missing commands are installed. Services the packages ship are not
# started (tests start their own instances on loopback or in namespaces).
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "install-deps: run as root (apt-get)"; exit 1; }

# command -> package
declare -A want=(
  [sshd]=openssh-server [ssh]=openssh-client [ip]=iproute2 [sudo]=sudo [nsenter]=util-linux
  [docker-registry]=docker-registry [skopeo]=skopeo [openssl]=openssl [curl]=curl
  [promtool]=prometheus [chromium]=chromium [zkServer.sh]=zookeeper [pgrep]=procps [update-ca-certificates]=ca-certificates
)
declare -A path=([sshd]=/usr/sbin/sshd [zkServer.sh]=/usr/share/zookeeper/bin/zkServer.sh)
missing=()
for cmd in "${!want[@]}"; do
  p=${path[$cmd]:-}
  if [ -n "$p" ]; then [ -x "$p" ] && continue; else command -v "$cmd" >/dev/null 2>&1 && continue; fi
  missing+=("${want[$cmd]}")
done
if [ ${#missing[@]} -eq 0 ]; then echo "install-deps: everything present"; exit 0; fi
echo "install-deps: installing ${missing[*]}"
# Keep package scripts from starting services.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
