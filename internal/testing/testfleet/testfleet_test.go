package testfleet

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/registry-operator/registry-operator/internal/sftp"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// sshCLI runs the real OpenSSH client against a host.
func sshCLI(ctx context.Context, f *Fleet, user, addr, command string) (string, error) {
	args := append(f.SSHArgs(), user+"@"+addr, command)
	out, err := exec.CommandContext(ctx, "ssh", args...).CombinedOutput()
	return string(out), err
}

func dial(t *testing.T, f *Fleet, user string, h *Host) *ssh.Client {
	t.Helper()
	cfg, err := f.ClientConfig(user)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", h.SSHAddr(), cfg)
	if err != nil {
		t.Fatalf("ssh %s@%s: %v", user, h.SSHAddr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// run runs a command in a new session and returns stdout, stderr and the error.
func run(c *ssh.Client, command string) (string, string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", "", err
	}
	defer s.Close()
	var stdout, stderr bytes.Buffer
	s.Stdout, s.Stderr = &stdout, &stderr
	err = s.Run(command)
	return stdout.String(), stderr.String(), err
}

func TestFleet(t *testing.T) {
	f := StartT(t, Options{N: 3, Prefix: "roft"})
	ctx := testCtx(t)
	hosts := f.Hosts()
	if len(hosts) != 3 {
		t.Fatalf("got %d hosts, want 3", len(hosts))
	}

	t.Run("OpenSSHClient", func(t *testing.T) {
		for _, h := range hosts {
			out, err := sshCLI(ctx, f, "root", h.Address, "hostname; echo $HOME; ls -A /root | wc -l")
			if err != nil {
				t.Fatalf("ssh root@%s: %v: %s", h.Address, err, out)
			}
			if want := h.Name + "\n/root\n0\n"; out != want {
				t.Errorf("ssh root@%s printed %q, want %q (host name, HOME, empty /root)", h.Address, out, want)
			}
		}
	})

	t.Run("GoClient", func(t *testing.T) {
		for _, h := range hosts {
			var seen ssh.PublicKey
			cfg, err := f.ClientConfig("root")
			if err != nil {
				t.Fatal(err)
			}
			check := cfg.HostKeyCallback
			cfg.HostKeyCallback = func(host string, remote net.Addr, key ssh.PublicKey) error {
				seen = key
				return check(host, remote, key)
			}
			c, err := ssh.Dial("tcp", h.SSHAddr(), cfg)
			if err != nil {
				t.Fatalf("dial %s: %v", h.SSHAddr(), err)
			}
			out, _, err := run(c, "hostname")
			c.Close()
			if err != nil || out != h.Name+"\n" {
				t.Errorf("%s: hostname = %q, %v; want %q", h.Address, out, err, h.Name)
			}
			if !bytes.Equal(seen.Marshal(), h.HostKey().Marshal()) {
				t.Errorf("%s presented a host key other than its own", h.Address)
			}
		}
	})

	t.Run("NeighboursArePermanent", func(t *testing.T) {
		// After traffic (the subtests above), both ends still resolve
		// each other from permanent entries: no ARP on the bridge.
		b, err := os.ReadFile("/sys/class/net/" + f.Bridge + "/address")
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(b)); got != macFor(f.Gateway) {
			t.Errorf("bridge %s has address %s, want %s", f.Bridge, got, macFor(f.Gateway))
		}
		for _, h := range hosts {
			assertPermanentNeighbour(t, "", h.Address, f.Bridge, macFor(netip.MustParseAddr(h.Address)))
			assertPermanentNeighbour(t, h.Netns, f.Gateway.String(), "eth0", macFor(f.Gateway))
		}
	})

	t.Run("FilesAreIsolated", func(t *testing.T) {
		const p = "/etc/docker/certs.d/registry.test:5000/ca.crt"
		for _, h := range hosts {
			if err := h.WriteFile(ctx, p, []byte("ca of "+h.Name+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, h := range hosts {
			out, err := sshCLI(ctx, f, "root", h.Address, "cat '"+p+"'")
			if want := "ca of " + h.Name + "\n"; err != nil || out != want {
				t.Errorf("%s: %s holds %q (%v), want %q", h.Name, p, out, err, want)
			}
			b, err := h.ReadFile(ctx, p)
			if err != nil || string(b) != "ca of "+h.Name+"\n" {
				t.Errorf("%s: ReadFile = %q, %v", h.Name, b, err)
			}
		}
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s exists on the machine itself: the write was not private", p)
		}
		for _, dir := range PrivatePaths {
			fi, err := hosts[0].Stat(ctx, dir)
			if err != nil || !fi.IsDir() {
				t.Errorf("%s missing in %s: %v", dir, hosts[0].Name, err)
			}
		}
		if err := hosts[1].Remove(ctx, p); err != nil {
			t.Fatal(err)
		}
		if _, err := hosts[1].ReadFile(ctx, p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after Remove, ReadFile error = %v, want not-exist", err)
		}
		if b, err := hosts[2].ReadFile(ctx, p); err != nil || len(b) == 0 {
			t.Errorf("Remove on %s touched %s: %q, %v", hosts[1].Name, hosts[2].Name, b, err)
		}
	})

	t.Run("SysctlIsPerHost", func(t *testing.T) {
		if !f.ConntrackAvailable {
			t.Fatalf("%s does not exist on this machine and modprobe nf_conntrack failed: load the nf_conntrack module", conntrackKey)
		}
		machine, err := os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal")
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hosts {
			if v, err := h.Sysctl(ctx, conntrackKey); err != nil || v != "0" {
				t.Fatalf("%s: %s = %q, %v; want 0 in a fresh namespace", h.Name, conntrackKey, v, err)
			}
		}
		if err := hosts[0].SetSysctl(ctx, conntrackKey, "1"); err != nil {
			t.Fatal(err)
		}
		out, err := sshCLI(ctx, f, "root", hosts[0].Address, "cat /proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal")
		if err != nil || out != "1\n" {
			t.Errorf("%s over ssh: %q, %v; want 1", hosts[0].Name, out, err)
		}
		if out, err := hosts[0].Exec(ctx, "sysctl", "-n", conntrackKey); err != nil || string(out) != "1\n" {
			t.Errorf("%s: sysctl -n via Exec = %q, %v; want 1", hosts[0].Name, out, err)
		}
		for _, h := range hosts[1:] {
			if v, err := h.Sysctl(ctx, conntrackKey); err != nil || v != "0" {
				t.Errorf("%s: %s = %q, %v; setting it on %s leaked", h.Name, conntrackKey, v, err, hosts[0].Name)
			}
		}
		after, _ := os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal")
		if !bytes.Equal(machine, after) {
			t.Errorf("the machine's own value changed from %q to %q", machine, after)
		}
		if _, err := hosts[0].Sysctl(ctx, "net.netfilter.no_such_key"); !errors.Is(err, ErrNoSysctl) {
			t.Errorf("missing key: error %v, want ErrNoSysctl", err)
		}
	})

	t.Run("SFTP", func(t *testing.T) {
		h := hosts[1]
		c := dial(t, f, "root", h)
		ss, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer ss.Close()
		sw, _ := ss.StdinPipe()
		sr, _ := ss.StdoutPipe()
		if err := ss.RequestSubsystem("sftp"); err != nil {
			t.Fatalf("sftp subsystem on %s: %v", h.Name, err)
		}
		sc, err := sftp.NewClient(pipe{sr, sw})
		if err != nil {
			t.Fatalf("sftp subsystem on %s: %v", h.Name, err)
		}
		defer sc.Close()
		writeSFTP(t, sc, "/etc/docker/via-sftp", "written over sftp\n")
		if b, err := h.ReadFile(ctx, "/etc/docker/via-sftp"); err != nil || string(b) != "written over sftp\n" {
			t.Errorf("file written over sftp reads %q, %v", b, err)
		}
		// What a non-root executor does: sftp-server under sudo -n in an exec session.
		uc := dial(t, f, f.SudoUser, h)
		s, err := uc.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		w, _ := s.StdinPipe()
		r, _ := s.StdoutPipe()
		if err := s.Start("sudo -n " + DefaultSFTP); err != nil {
			t.Fatal(err)
		}
		ssc, err := sftp.NewClient(pipe{r, w})
		if err != nil {
			t.Fatalf("sftp-server under sudo: %v", err)
		}
		defer ssc.Close()
		writeSFTP(t, ssc, "/etc/sysctl.d/via-sudo-sftp.conf", "net.netfilter.nf_conntrack_tcp_be_liberal = 1\n")
		fi, err := h.Stat(ctx, "/etc/sysctl.d/via-sudo-sftp.conf")
		if err != nil {
			t.Fatal(err)
		}
		if fileUID(fi) != 0 {
			t.Errorf("file written through sudo sftp-server is owned by uid %d, want 0", fileUID(fi))
		}
	})

	t.Run("Sudo", func(t *testing.T) {
		h := hosts[2]
		out, stderr, err := run(dial(t, f, f.SudoUser, h), "id -un; sudo -n id -u")
		if err != nil || out != f.SudoUser+"\n0\n" {
			t.Errorf("%s: sudo -n as %s: %q %q %v; want user then uid 0", h.Name, f.SudoUser, out, stderr, err)
		}
		out, stderr, err = run(dial(t, f, f.PlainUser, h), "sudo -n id -u")
		var exit *ssh.ExitError
		if !errors.As(err, &exit) || exit.ExitStatus() != 1 || out != "" || !strings.Contains(stderr, "password is required") {
			t.Errorf("%s: sudo -n as %s: out %q, stderr %q, err %v; want refusal with exit 1", h.Name, f.PlainUser, out, stderr, err)
		}
		if cli, err := sshCLI(ctx, f, f.PlainUser, h.Address, "sudo -n true"); err == nil {
			t.Errorf("ssh CLI: sudo -n as %s succeeded: %s", f.PlainUser, cli)
		}
	})

	t.Run("StopStartSSHD", func(t *testing.T) {
		h := hosts[0]
		c := dial(t, f, "root", h)
		if err := h.StopSSHD(ctx); err != nil {
			t.Fatal(err)
		}
		if _, _, err := run(c, "true"); err == nil {
			t.Error("an open connection still works after StopSSHD")
		}
		if conn, err := net.DialTimeout("tcp", h.SSHAddr(), 5*time.Second); err == nil {
			conn.Close()
			t.Fatal("sshd still accepts connections after StopSSHD")
		}
		if err := h.StartSSHD(ctx); err != nil {
			t.Fatal(err)
		}
		if out, _, err := run(dial(t, f, "root", h), "hostname"); err != nil || out != h.Name+"\n" {
			t.Errorf("after StartSSHD: %q, %v", out, err)
		}
	})

	t.Run("HostKeyMismatch", func(t *testing.T) {
		h := hosts[1]
		old := h.HostKey()
		if _, err := h.ReplaceHostKey(ctx, false); err != nil {
			t.Fatal(err)
		}
		cfg, _ := f.ClientConfig("root")
		_, err := ssh.Dial("tcp", h.SSHAddr(), cfg)
		var ke *knownhosts.KeyError
		if !errors.As(err, &ke) || len(ke.Want) == 0 || !bytes.Equal(ke.Want[0].Key.Marshal(), old.Marshal()) {
			t.Errorf("dial after key change: %v; want a knownhosts mismatch naming the old key", err)
		}
		if out, err := sshCLI(ctx, f, "root", h.Address, "true"); err == nil || !strings.Contains(out, "REMOTE HOST IDENTIFICATION HAS CHANGED") {
			t.Errorf("ssh CLI after key change: %v: %s", err, out)
		}
		// Other hosts are unaffected.
		if out, err := sshCLI(ctx, f, "root", hosts[2].Address, "hostname"); err != nil || out != hosts[2].Name+"\n" {
			t.Errorf("%s after another host's key change: %q, %v", hosts[2].Name, out, err)
		}
		if _, err := h.ReplaceHostKey(ctx, true); err != nil {
			t.Fatal(err)
		}
		if out, err := sshCLI(ctx, f, "root", h.Address, "hostname"); err != nil || out != h.Name+"\n" {
			t.Errorf("after updating known_hosts: %q, %v", out, err)
		}
	})

	t.Run("Faults", func(t *testing.T) {
		h := hosts[2]
		if _, err := h.Exec(ctx, "mount", "-o", "remount,ro,bind", "/etc/docker"); err != nil {
			t.Fatal(err)
		}
		if out, err := sshCLI(ctx, f, "root", h.Address, "touch /etc/docker/x"); err == nil || !strings.Contains(out, "Read-only file system") {
			t.Errorf("write to read-only /etc/docker: %v: %s", err, out)
		}
		if _, err := h.Exec(ctx, "mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", "/etc/sysctl.d"); err != nil {
			t.Fatal(err)
		}
		if out, err := sshCLI(ctx, f, "root", h.Address, "head -c 65536 /dev/zero > /etc/sysctl.d/big"); err == nil || !strings.Contains(out, "No space left") {
			t.Errorf("write to a full /etc/sysctl.d: %v: %s", err, out)
		}
		if err := h.SetLinkUp(ctx, false); err != nil {
			t.Fatal(err)
		}
		if conn, err := net.DialTimeout("tcp", h.SSHAddr(), 2*time.Second); err == nil {
			conn.Close()
			t.Error("host answered with its link down")
		}
		if err := h.SetLinkUp(ctx, true); err != nil {
			t.Fatal(err)
		}
		if out, err := sshCLI(ctx, f, "root", h.Address, "hostname"); err != nil || out != h.Name+"\n" {
			t.Errorf("after link up: %q, %v", out, err)
		}
		if other, err := hosts[1].Exec(ctx, "touch", "/etc/docker/y"); err != nil {
			t.Errorf("read-only mount leaked to %s: %v %s", hosts[1].Name, err, other)
		}
	})

	t.Run("GrowAndShrink", func(t *testing.T) {
		added, err := f.AddHosts(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range added {
			if out, err := sshCLI(ctx, f, "root", h.Address, "hostname"); err != nil || out != h.Name+"\n" {
				t.Errorf("new host %s: %q, %v", h.Address, out, err)
			}
		}
		gone := added[0]
		if err := f.RemoveHost(ctx, gone.Index); err != nil {
			t.Fatal(err)
		}
		if f.Host(gone.Index) != nil {
			t.Error("removed host still returned by Host")
		}
		if _, err := os.Stat("/run/netns/" + gone.Netns); err == nil {
			t.Errorf("netns %s left after RemoveHost", gone.Netns)
		}
		if linkExists(gone.Veth) {
			t.Errorf("link %s left after RemoveHost", gone.Veth)
		}
		if out := neighbour(t, "", gone.Address, f.Bridge); out != "" {
			t.Errorf("neighbour entry for removed host %s left: %s", gone.Address, out)
		}
		assertPermanentNeighbour(t, "", added[1].Address, f.Bridge, macFor(netip.MustParseAddr(added[1].Address)))
		kh, _ := os.ReadFile(f.KnownHostsPath)
		if strings.Contains(string(kh), gone.Address+" ") {
			t.Errorf("known_hosts still lists removed host %s", gone.Address)
		}
		if out, err := sshCLI(ctx, f, "root", added[1].Address, "getent hosts "+added[1].Name); err != nil || !strings.HasPrefix(out, added[1].Address) {
			t.Errorf("hosts file inside %s: %q, %v", added[1].Name, out, err)
		}
	})

	t.Run("CloseRemovesEverything", func(t *testing.T) {
		dir := f.Dir
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		assertRunGone(t, f.Prefix, f.RunID, dir)
	})
}

// neighbour is `ip neigh show ADDR dev DEV` in a namespace ("" for the machine's).
func neighbour(t *testing.T, netns, addr, dev string) string {
	t.Helper()
	args := []string{"neigh", "show", addr, "dev", dev}
	if netns != "" {
		args = append([]string{"-n", netns}, args...)
	}
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func assertPermanentNeighbour(t *testing.T, netns, addr, dev, mac string) {
	t.Helper()
	if out := neighbour(t, netns, addr, dev); !strings.Contains(out, "lladdr "+mac) || !strings.HasSuffix(out, "PERMANENT") {
		t.Errorf("neighbour %s on %s (namespace %q): %q, want a permanent entry for %s", addr, dev, netns, out, mac)
	}
}

func writeSFTP(t *testing.T, sc *sftp.Client, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	w, err := sc.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatalf("sftp create %s: %v", tmp, err)
	}
	if _, err := io.WriteString(w, content); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sc.PosixRename(tmp, path); err != nil {
		t.Fatalf("sftp posix-rename: %v", err)
	}
	r, err := sc.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	if string(b) != content {
		t.Errorf("sftp read back %q, want %q", b, content)
	}
}

// pipe is a session's stdout and stdin as one SFTP transport.
type pipe struct {
	io.Reader
	io.WriteCloser
}

// assertRunGone checks with the system's own tools that a run left nothing.
func assertRunGone(t *testing.T, prefix, runID, dir string) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), prefix+"-"+runID) {
		t.Errorf("ip netns list still shows the run:\n%s", out)
	}
	out, err = exec.Command("ip", "-o", "link").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), prefix+runID) {
		t.Errorf("ip link still shows the run's links:\n%s", out)
	}
	if out, err := exec.Command("pgrep", "-af", dir).Output(); err == nil {
		t.Errorf("processes of the run still exist:\n%s", out)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("run directory %s still exists", dir)
	}
}

// fileUID returns the owner of a file.
func fileUID(fi os.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}
