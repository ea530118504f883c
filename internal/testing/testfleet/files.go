package testfleet

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// holderScript runs as PID 1 of a host's PID namespace, already inside its
// network, mount and UTS namespaces. It makes the host's private mounts,
// configures its interface, starts sshd, says "ready", then idles in a
// builtin read: as PID 1 it reaps every orphan of the host (bash reaps
// unknown children on SIGCHLD), and when the owner's end of stdin closes it
// exits, which makes the kernel kill every process in the host.
const holderScript = `set -eu
hostdir=$1 name=$2
shift 2
mount --make-rprivate /
# The copies of the machine's /run/netns mounts (one per fleet host) only
# cost memory and time here.
umount -l /run/netns 2>/dev/null || true
mount -a -T "$hostdir/fstab"
cd /
echo "$name" > /proc/sys/kernel/hostname
ip -batch "$hostdir/net.batch"
rm -f "$hostdir/sshd.pid"
"$@"
for ((i = 0; i < 1000; i++)); do
	[[ -s $hostdir/sshd.pid ]] && break
	read -r -t 0.01 _ || true
done
if [[ ! -s $hostdir/sshd.pid ]]; then
	echo "sshd did not start listening: $(tail -n 5 "$hostdir/sshd.log" 2>&1)" >&2
	exit 1
fi
echo ready
exec >/dev/null 2>&1
set +e
while read -r _; do :; done
`

// writeKeyPair writes an ed25519 private key in OpenSSH format (0600) and
// its public key (path + ".pub").
func writeKeyPair(path, comment string) (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	if err := WriteFileAtomic(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	pub := bytes.TrimSpace(ssh.MarshalAuthorizedKey(signer.PublicKey()))
	if err := WriteFileAtomic(path+".pub", append(pub, []byte(" "+comment+"\n")...), 0o644); err != nil {
		return nil, err
	}
	return signer, nil
}

func sshdConfig(authorizedKeys, sftpServer string) string {
	return `# Test fleet host: public key authentication only, root by key.
Port 22
AddressFamily inet
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
GSSAPIAuthentication no
UsePAM no
StrictModes yes
AuthorizedKeysFile ` + authorizedKeys + `
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
PermitUserEnvironment no
MaxStartups 200
MaxSessions 100
LogLevel INFO
Subsystem sftp ` + sftpServer + `
`
}

// userFiles derives the hosts' /etc/passwd, /etc/group and /etc/shadow from
// the machine's, adding the two fleet users. Every password field in the
// copy is "*": no machine password hash is ever copied, and "*" (unlike
// "!") does not lock an account against key logins.
func writeUserFiles(etcDir string, o *Options) (sudoUID, plainUID int, err error) {
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return 0, 0, err
	}
	group, err := os.ReadFile("/etc/group")
	if err != nil {
		return 0, 0, err
	}
	shadow, _ := os.ReadFile("/etc/shadow") // may be missing in minimal images
	used := map[int]bool{}
	for _, b := range [][]byte{passwd, group} {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Split(line, ":"); len(f) > 2 {
				if id, err := strconv.Atoi(f[2]); err == nil {
					used[id] = true
				}
			}
		}
	}
	id := 60100
	for used[id] || used[id+1] {
		id++
	}
	sudoUID, plainUID = id, id+1
	// Drop any earlier entry for the fleet users' names, then add ours.
	drop := func(b []byte) string {
		var out strings.Builder
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			l := sc.Text()
			name, _, _ := strings.Cut(l, ":")
			if name == o.SudoUser || name == o.PlainUser || l == "" {
				continue
			}
			out.WriteString(l + "\n")
		}
		return out.String()
	}
	var shadowOut strings.Builder
	sc := bufio.NewScanner(bytes.NewReader([]byte(drop(shadow))))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) > 1 {
			f[1] = "*"
		}
		shadowOut.WriteString(strings.Join(f, ":") + "\n")
	}
	p := drop(passwd)
	g := drop(group)
	for _, u := range []struct {
		name string
		id   int
	}{{o.SudoUser, sudoUID}, {o.PlainUser, plainUID}} {
		p += fmt.Sprintf("%s:x:%d:%d:test fleet user:/home/%s:/bin/sh\n", u.name, u.id, u.id, u.name)
		g += fmt.Sprintf("%s:x:%d:\n", u.name, u.id)
		shadowOut.WriteString(u.name + ":*:19000:0:99999:7:::\n")
	}
	if err := os.WriteFile(filepath.Join(etcDir, "passwd"), []byte(p), 0o644); err != nil {
		return 0, 0, err
	}
	if err := os.WriteFile(filepath.Join(etcDir, "group"), []byte(g), 0o644); err != nil {
		return 0, 0, err
	}
	if err := os.WriteFile(filepath.Join(etcDir, "shadow"), []byte(shadowOut.String()), 0o640); err != nil {
		return 0, 0, err
	}
	sudoers := filepath.Join(etcDir, "sudoers.d")
	if err := os.MkdirAll(sudoers, 0o755); err != nil {
		return 0, 0, err
	}
	rule := fmt.Sprintf("# %s may run anything without a password; %s has no rule, so sudo refuses it.\n%s ALL=(ALL:ALL) NOPASSWD: ALL\n", o.SudoUser, o.PlainUser, o.SudoUser)
	if err := os.WriteFile(filepath.Join(sudoers, "fleet"), []byte(rule), 0o440); err != nil {
		return 0, 0, err
	}
	return sudoUID, plainUID, nil
}

// hostsFile lists every host so names resolve inside hosts (sudo looks its
// own host name up).
func hostsFile(gateway string, hosts []*Host) []byte {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString(gateway + "\tfleet-gateway\n")
	for _, h := range hosts {
		fmt.Fprintf(&b, "%s\t%s\n", h.Address, h.Name)
	}
	return []byte(b.String())
}

func knownHostsFile(hosts []*Host) []byte {
	var b strings.Builder
	for _, h := range hosts {
		h.mu.Lock()
		key := h.knownKey
		h.mu.Unlock()
		b.WriteString(knownhosts.Line([]string{h.Address}, key) + "\n")
	}
	return []byte(b.String())
}

// hostFstab lists the host's private mounts, applied by `mount -a -T` in
// one process. Paths are checked for whitespace when the run directory is
// chosen, so no escaping is needed.
func hostFstab(runDir, hostDir string) string {
	var b strings.Builder
	// A distinct source name keeps mount -a from mistaking the machine's
	// /proc for this one; the new proc shows only the host's processes.
	b.WriteString("fleetproc /proc proc nosuid,nodev,noexec 0 0\n")
	for _, p := range PrivatePaths {
		fmt.Fprintf(&b, "%s %s none bind 0 0\n", filepath.Join(hostDir, "fs", p), p)
	}
	for _, f := range []string{"passwd", "group", "shadow", "hosts", "resolv.conf", "sudoers.d"} {
		fmt.Fprintf(&b, "%s /etc/%s none bind 0 0\n", filepath.Join(runDir, "etc", f), f)
	}
	return b.String()
}

// resolvConf names no server, so the resolver tries 127.0.0.1 inside the
// host and fails at once: hosts never send DNS queries off the machine,
// and lookups of names missing from /etc/hosts do not stall.
const resolvConf = "# test fleet host: no DNS server; names are in /etc/hosts\noptions timeout:1 attempts:1\n"

// copyTree copies the machine's directory src (files, directories and
// symlinks, with their modes) into the existing directory dst. A missing
// src copies nothing.
func copyTree(src, dst string) error {
	if _, err := os.Stat(src); os.IsNotExist(err) {
		return nil
	}
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case rel == ".":
			return nil
		case d.IsDir():
			return os.Mkdir(out, info.Mode().Perm())
		case d.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, out)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(out, b, info.Mode().Perm())
		}
		return nil // sockets, devices: not configuration
	})
}
