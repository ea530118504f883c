package testfleet

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/crypto/ssh"
)

// Host is one fleet host.
type Host struct {
	Index   int    // position in the fleet, stable for the host's life
	Name    string // host name inside the host, e.g. agent-3
	Address string // IPv4 address; sshd listens on port 22
	Netns   string // network namespace name (/run/netns/<Netns>)
	Veth    string // the machine's end of the host's link

	f   *Fleet
	dir string

	mu        sync.Mutex
	hostKey   ssh.PublicKey
	knownKey  ssh.PublicKey // the key known_hosts lists for this host
	holderPID int
	stdin     io.Closer     // closing it ends the host (nil when attached)
	exited    chan struct{} // closed when the holder has been reaped (nil when attached)
}

// cleanEnv is the environment of every process started in a host.
var cleanEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C"}

// SSHAddr is the host's sshd address, "ip:22".
func (h *Host) SSHAddr() string { return h.Address + ":22" }

// HostKey is the host's current public host key.
func (h *Host) HostKey() ssh.PublicKey {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hostKey
}

// HolderPID is PID 1 of the host's PID namespace, as the machine sees it.
func (h *Host) HolderPID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.holderPID
}

func (h *Host) sshdArgv() []string {
	return []string{
		h.f.opts.SSHD,
		"-f", filepath.Join(h.f.Dir, "sshd_config"),
		"-o", "ListenAddress=" + h.SSHAddr(),
		"-o", "HostKey=" + filepath.Join(h.dir, "ssh_host_ed25519_key"),
		"-o", "PidFile=" + filepath.Join(h.dir, "sshd.pid"),
		"-E", filepath.Join(h.dir, "sshd.log"),
	}
}

// prepareDir writes the host's directory: private file systems, host key,
// fstab and network commands.
func (h *Host) prepareDir() error {
	f := h.f
	for _, p := range PrivatePaths {
		if err := os.MkdirAll(filepath.Join(h.dir, "fs", p), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(h.dir, "fs", "root"), 0o700); err != nil {
		return err
	}
	for _, p := range f.opts.Seed {
		if err := copyTree(p, filepath.Join(h.dir, "fs", p)); err != nil {
			return fmt.Errorf("seed %s: %w", p, err)
		}
	}
	for _, u := range []struct {
		name string
		id   int
	}{{f.SudoUser, f.sudoUID}, {f.PlainUser, f.plainUID}} {
		home := filepath.Join(h.dir, "fs", "home", u.name)
		if err := os.Mkdir(home, 0o755); err != nil {
			return err
		}
		if err := os.Chown(home, u.id, u.id); err != nil {
			return err
		}
	}
	signer, err := writeKeyPair(filepath.Join(h.dir, "ssh_host_ed25519_key"), "root@"+h.Name)
	if err != nil {
		return err
	}
	h.hostKey, h.knownKey = signer.PublicKey(), signer.PublicKey()
	if err := os.WriteFile(filepath.Join(h.dir, "fstab"), []byte(hostFstab(f.Dir, h.dir)), 0o644); err != nil {
		return err
	}
	batch := fmt.Sprintf("link set lo up\naddr add %s/%d dev eth0\nlink set eth0 up\nneigh replace %s lladdr %s dev eth0 nud permanent\nroute add default via %s\n",
		h.Address, f.Subnet.Bits(), f.Gateway, macFor(f.Gateway), f.Gateway)
	return os.WriteFile(filepath.Join(h.dir, "net.batch"), []byte(batch), 0o644)
}

// startHolder starts the host's PID 1 in its namespaces and waits until its
// sshd listens.
func (h *Host) startHolder(ctx context.Context) error {
	args := append([]string{"netns", "exec", h.Netns, "bash", filepath.Join(h.f.Dir, "holder.sh"), h.dir, h.Name}, h.sshdArgv()...)
	cmd := exec.Command("ip", args...)
	cmd.Env = cleanEnv
	cmd.Dir = "/"
	// New PID and UTS namespaces; `ip netns exec` adds the mount namespace.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	errPath := filepath.Join(h.dir, "holder.err")
	errFile, err := os.Create(errPath)
	if err != nil {
		return err
	}
	cmd.Stderr = errFile
	err = cmd.Start()
	errFile.Close()
	if err != nil {
		return fmt.Errorf("testfleet: start host %s: %w", h.Name, err)
	}
	line := make(chan string, 1)
	go func() {
		b := make([]byte, 6)
		n, _ := io.ReadFull(stdout, b)
		line <- string(b[:n])
	}()
	var got string
	select {
	case got = <-line:
	case <-ctx.Done():
	}
	if got != "ready\n" {
		_ = cmd.Process.Kill()
		<-line
		_ = cmd.Wait()
		msg, _ := os.ReadFile(errPath)
		if ctx.Err() != nil {
			return fmt.Errorf("testfleet: host %s (%s) not ready: %w: %s", h.Name, h.Address, ctx.Err(), bytes.TrimSpace(msg))
		}
		return fmt.Errorf("testfleet: host %s (%s) failed to start: %s (sshd log: %s)", h.Name, h.Address, bytes.TrimSpace(msg), filepath.Join(h.dir, "sshd.log"))
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	h.mu.Lock()
	h.holderPID, h.stdin, h.exited = cmd.Process.Pid, stdin, exited
	h.mu.Unlock()
	return h.ensureMounts(ctx)
}

// ensureMounts checks the host's mount table against its fstab and makes
// any mount that is missing: `mount -a` has been seen to skip a bind entry
// as "already mounted" when it was not.
func (h *Host) ensureMounts(ctx context.Context) error {
	mi, err := os.ReadFile("/proc/" + strconv.Itoa(h.HolderPID()) + "/mountinfo")
	if err != nil {
		return fmt.Errorf("testfleet: %s: read mount table: %w", h.Name, err)
	}
	roots := map[string]string{} // target -> root of the topmost mount there
	for _, line := range strings.Split(string(mi), "\n") {
		fl := strings.Fields(line)
		if len(fl) < 5 {
			continue
		}
		roots[fl[4]] = fl[3]
		if i := slices.Index(fl, "-"); i > 0 && i+2 < len(fl) && fl[4] == "/proc" {
			roots["/proc"] = fl[i+2] // the proc mount's source name
		}
	}
	fstab, err := os.ReadFile(filepath.Join(h.dir, "fstab"))
	if err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(fstab)), "\n") {
		fl := strings.Fields(line)
		src, target := fl[0], fl[1]
		root := roots[target]
		if src == root || (root != "" && root != "/" && strings.HasSuffix(src, root)) {
			continue
		}
		h.f.opts.Logf("testfleet: %s: %s was not mounted by mount -a; mounting it", h.Name, target)
		args := []string{"--bind", src, target}
		if src == "fleetproc" {
			args = []string{"-t", "proc", src, target}
		}
		if _, err := h.Exec(ctx, "mount", args...); err != nil {
			return err
		}
	}
	return nil
}

// Command prepares a command that runs inside the host's network, mount,
// UTS and PID namespaces as root, with a clean environment. Processes it
// leaves behind are killed when the host goes.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	argv := append([]string{"--target", strconv.Itoa(h.HolderPID()), "--net", "--mount", "--uts", "--pid", "--wd", "--", name}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", argv...)
	cmd.Env = cleanEnv
	return cmd
}

// Exec runs a command inside the host and returns its standard output. A
// non-zero exit is an error carrying the command's standard error.
func (h *Host) Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := h.Command(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("testfleet: %s: %s %s: %w: %s", h.Name, name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// SetLinkUp takes the host's link down (up=false) or back up. While down,
// the host is unreachable: new connections time out and open ones stall.
func (h *Host) SetLinkUp(ctx context.Context, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return ipBatch(ctx, []string{"link set " + h.Veth + " " + state}, false)
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
