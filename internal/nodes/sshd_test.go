package nodes

import (
	"crypto/ed25519"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/registry-operator/registry-operator/internal/procstat"
)

// Test users created inside the test sshd's private mount namespace.
const (
	userSudo   = "opsudo"   // NOPASSWD sudo
	userNoSudo = "opnosudo" // not in sudoers: sudo -n must refuse
)

type testSSHD struct {
	Addr       string // 127.0.0.1:port
	KnownHosts string
	ClientKey  string
	HostKey    ssh.PublicKey
	Dir        string
	cmd        *exec.Cmd
}

type sshdOptions struct {
	NoSFTPSubsystem bool
	// Extra are more sshd_config lines.
	Extra []string
}

func writeKey(t *testing.T, path string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startSSHD runs the real /usr/sbin/sshd on loopback in a private mount
// namespace: /root is an empty directory (no login-shell setup per session),
// and /etc/passwd, /etc/shadow, /etc/group and /etc/sudoers.d are copies
// with two extra users, so sudo behaviour is real but nothing on the machine
// changes.
func startSSHD(t *testing.T, o sshdOptions) *testSSHD {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs sshd in a private mount namespace")
	}
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		t.Skip("needs /usr/sbin/sshd (Debian openssh-server)")
	}
	dir := t.TempDir()
	// sshd reads authorized_keys as the logging-in user.
	for _, p := range []string{filepath.Dir(dir), dir} {
		must(t, os.Chmod(p, 0o755))
	}
	d := &testSSHD{Dir: dir, KnownHosts: filepath.Join(dir, "known_hosts"), ClientKey: filepath.Join(dir, "id_ed25519")}
	d.HostKey = writeKey(t, filepath.Join(dir, "host_ed25519"))
	clientPub := writeKey(t, d.ClientKey)
	must(t, os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientPub), 0o644))
	port := freePort(t)
	d.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	must(t, os.WriteFile(d.KnownHosts, []byte(knownhosts.Line([]string{knownhosts.Normalize(d.Addr)}, d.HostKey)+"\n"), 0o600))

	for _, sub := range []string{"root", "home", "sudoers.d"} {
		must(t, os.MkdirAll(filepath.Join(dir, sub), 0o755))
	}
	appendCopy(t, "/etc/passwd", filepath.Join(dir, "passwd"), 0o644,
		fmt.Sprintf("%s:x:4242:4242::%s:/bin/sh\n%s:x:4243:4243::%s:/bin/sh\n", userSudo, dir+"/home", userNoSudo, dir+"/home"))
	appendCopy(t, "/etc/group", filepath.Join(dir, "group"), 0o644,
		fmt.Sprintf("%s:x:4242:\n%s:x:4243:\n", userSudo, userNoSudo))
	appendCopy(t, "/etc/shadow", filepath.Join(dir, "shadow"), 0o640,
		fmt.Sprintf("%s:*:19000:0:99999:7:::\n%s:*:19000:0:99999:7:::\n", userSudo, userNoSudo))
	must(t, os.WriteFile(filepath.Join(dir, "sudoers.d", "optest"), []byte(userSudo+" ALL=(ALL) NOPASSWD: ALL\n"), 0o440))

	cfg := []string{
		"ListenAddress " + d.Addr,
		"HostKey " + filepath.Join(dir, "host_ed25519"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"PidFile none",
		"StrictModes no",
		"UsePAM no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"LogLevel ERROR",
		"MaxStartups 100",
	}
	if !o.NoSFTPSubsystem {
		cfg = append(cfg, "Subsystem sftp /usr/lib/openssh/sftp-server")
	}
	cfg = append(cfg, o.Extra...)
	must(t, os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(strings.Join(cfg, "\n")+"\n"), 0o644))
	must(t, os.MkdirAll("/run/sshd", 0o755)) // sshd's privilege separation directory

	script := `set -e
mount --bind "$1/root" /root
mount --bind "$1/passwd" /etc/passwd
mount --bind "$1/group" /etc/group
mount --bind "$1/shadow" /etc/shadow
mount --bind "$1/sudoers.d" /etc/sudoers.d
exec /usr/sbin/sshd -D -e -f "$1/sshd_config"`
	d.cmd = exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", dir)
	log, err := os.Create(filepath.Join(dir, "sshd.log"))
	must(t, err)
	d.cmd.Stdout, d.cmd.Stderr = log, log
	must(t, d.cmd.Start())
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		_ = d.cmd.Wait()
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("sshd log:\n%s", b)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", d.Addr, time.Second)
		if err == nil {
			c.Close()
			return d
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("sshd on %s did not start: %v\n%s", d.Addr, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func appendCopy(t *testing.T, src, dst string, perm os.FileMode, extra string) {
	t.Helper()
	b, err := os.ReadFile(src)
	must(t, err)
	must(t, os.WriteFile(dst, append(b, extra...), perm))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// config returns an executor config for user against this sshd.
func (d *testSSHD) config(user string, sudo bool) Config {
	_, p, _ := net.SplitHostPort(d.Addr)
	port, _ := strconv.Atoi(p)
	return Config{
		User: user, Port: port, PrivateKeyFile: d.ClientKey, KnownHostsFile: d.KnownHosts,
		HostKeyPolicy: "strict", Sudo: sudo, Concurrency: 4,
		ConnectTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second, KeepAlive: 30 * time.Second,
	}
}

// sftpServers returns the pids of sftp-server processes running under sshd.
func (d *testSSHD) sftpServers(t *testing.T) []int {
	t.Helper()
	return d.descendants(t, "sftp-server")
}

// descendants lists the processes below the listening sshd whose command
// name starts with name ("" for all of them).
func (d *testSSHD) descendants(t *testing.T, name string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	must(t, err)
	parent := map[int]int{}
	var cands []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := procstat.Read(pid)
		if err != nil {
			continue
		}
		parent[pid] = st.PPID
		if strings.HasPrefix(st.Comm, name) {
			cands = append(cands, pid)
		}
	}
	var out []int
	for _, c := range cands {
		for p := parent[c]; p > 1; p = parent[p] {
			if p == d.cmd.Process.Pid {
				out = append(out, c)
				break
			}
		}
	}
	return out
}
