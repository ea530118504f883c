// Package testfleet builds a fleet of real OpenSSH hosts on one Linux machine
// for tests, the demo and the benchmarks.
//
// Each host is a network namespace with a veth into a per-run bridge, an
// address in the RFC 2544 benchmarking range 198.18.0.0/16, its own mount,
// UTS and PID namespaces, and its own /usr/sbin/sshd (Debian openssh-server,
// with the sftp subsystem) listening on port 22 with its own ed25519 host key.
// Inside every host, these paths are private, initially empty directories:
//
//	/etc/docker /etc/sysctl.d /etc/modules-load.d /etc/privateregistry
//	/etc/containers /etc/containerd /var/lib/dcos /data /root /home
//	/etc/ssl/certs /usr/local/share/ca-certificates /etc/ca-certificates
//
// so what an agent would keep there is isolated per host, and root's login
// environment is clean (no shell start-up files, so an SSH session costs
// no extra processes). Options.Seed paths (default /etc/containers) start
// as a copy of the machine's instead. /etc/passwd, /etc/group, /etc/shadow,
// /etc/hosts (every host by name), /etc/resolv.conf (no DNS server: hosts
// never query off the machine) and /etc/sudoers.d are per-run copies; they
// add two users: Fleet.SudoUser
// (sudo -n without a password) and Fleet.PlainUser (sudo refused). Every user
// logs in with the same client key, Fleet.PrivateKeyPath; host keys are in
// Fleet.KnownHostsPath. The net.* sysctls, including
// net.netfilter.nf_conntrack_tcp_be_liberal, are per host because they are per
// network namespace.
//
// Each host's PID 1 is a small bash loop that reaps orphans and exits when the
// process that started the fleet closes its end of a pipe, so the hosts'
// processes never outlive their owner. Close removes every namespace, link,
// process and directory the run made. Runs record their owner in
// <BaseDir>/<prefix>-<runid>/fleet.json; Cleanup removes runs whose owner is
// gone (a test binary killed by a timeout, say), and Start calls it first.
//
// Concurrent runs (parallel test binaries) each get their own bridge and their
// own aligned block of 198.18.0.0/16 (a /24 up to 253 hosts, a /22 for 1000),
// so they never see each other. The machine is Fleet.Gateway (the block's
// .1) on the bridge, and the hosts' default route: a fake Mesos or Marathon
// listening there is reachable from every host. The machine and each host
// hold permanent neighbour entries for each other (fixed link addresses
// derived from the IPs): on one bridge every ARP broadcast would be processed
// by every host's namespace on the machine's few cores, a cost real agents do
// not put on the operator's machine and one that grows with the fleet.
//
// Faults for tests: Host.StopSSHD (listener and sessions die, as in a crash),
// Host.ReplaceHostKey (host key mismatch), Host.SetLinkUp(false) (the host
// stops answering: connections time out), Fleet.RemoveHost, and Exec for
// the rest (mount -o remount,ro,bind /etc/docker; a tiny tmpfs for a full
// disk; sysctl -w after a "reboot").
//
// Typical use in a test:
//
//	f := testfleet.StartT(t, testfleet.Options{N: 3})
//	h := f.Host(0)
//	// dial h.Address (port 22) as root with f.PrivateKeyPath and f.KnownHostsPath
//	data, err := h.ReadFile(ctx, "/etc/docker/certs.d/reg:5000/ca.crt")
//	v, err := h.Sysctl(ctx, "net.netfilter.nf_conntrack_tcp_be_liberal")
//	_, err = h.Exec(ctx, "sh", "-c", "mount -o remount,ro,bind /etc/docker")
package testfleet
