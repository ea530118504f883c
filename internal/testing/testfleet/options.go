package testfleet

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
)

// Defaults for Options fields left zero.
const (
	DefaultPrefix    = "rof"
	DefaultBaseDir   = "/run/registry-operator-fleet"
	DefaultSudoUser  = "fleetsudo"
	DefaultPlainUser = "fleetuser"
	DefaultSSHD      = "/usr/sbin/sshd"
	DefaultSFTP      = "/usr/lib/openssh/sftp-server"
	defaultSpare     = 16
	runIDLen         = 5
	maxIfName        = 15 // IFNAMSIZ - 1
)

// PrivatePaths are the directories each host gets its own empty copy of.
var PrivatePaths = []string{
	"/etc/docker", "/etc/sysctl.d", "/etc/modules-load.d", "/etc/privateregistry",
	"/etc/containers", "/etc/containerd", "/var/lib/dcos", "/data", "/root", "/home",
	// The OS trust store, so update-ca-certificates inside a host changes
	// only that host; /etc/ca-certificates holds its hooks, which would
	// otherwise act on the machine (ca-certificates-java runs dpkg).
	"/etc/ssl/certs", "/usr/local/share/ca-certificates", "/etc/ca-certificates",
}

// Options configures a fleet. Only N is required.
type Options struct {
	// N is the number of hosts to start with.
	N int
	// Prefix names every namespace, link and directory of the run
	// (1-4 lowercase letters). Cleanup(Prefix) finds leftovers by it.
	Prefix string
	// RunID makes this run's names unique (5 characters [a-z0-9]); random if empty.
	RunID string
	// BaseDir holds one directory per run. It must not be under a
	// world-writable directory: sshd's StrictModes checks the path of the
	// authorized keys file kept there.
	BaseDir string
	// Capacity is the most hosts the run may ever have (AddHosts included);
	// it sizes the run's address block. Default N+16.
	Capacity int
	// Parallel bounds how many hosts are set up at once. Default 4*NumCPU.
	Parallel int
	// SudoUser may run any command with sudo -n; PlainUser may not use sudo.
	SudoUser, PlainUser string
	// SSHD and SFTPServer are the OpenSSH binaries the hosts run.
	SSHD, SFTPServer string
	// Seed lists private paths whose content starts as a copy of the
	// machine's (configuration a real agent would have, like skopeo's
	// /etc/containers/policy.json); the others start empty. nil means
	// DefaultSeed; an empty, non-nil slice seeds nothing.
	Seed []string
	// Logf, if set, receives progress lines.
	Logf func(format string, args ...any)
}

// DefaultSeed is Options.Seed when left nil.
var DefaultSeed = []string{"/etc/containers"}

var (
	prefixRE = regexp.MustCompile(`^[a-z]{1,4}$`)
	runIDRE  = regexp.MustCompile(`^[a-z0-9]{5}$`)
	userRE   = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,30}$`)
)

func (o *Options) setDefaults() error {
	if o.N < 0 {
		return fmt.Errorf("testfleet: Options.N is %d, want 0 or more", o.N)
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if !prefixRE.MatchString(o.Prefix) {
		return fmt.Errorf("testfleet: Options.Prefix %q must be 1-4 lowercase letters (it goes into 15-character interface names)", o.Prefix)
	}
	if o.RunID == "" {
		o.RunID = newRunID()
	}
	if !runIDRE.MatchString(o.RunID) {
		return fmt.Errorf("testfleet: Options.RunID %q must be 5 characters [a-z0-9]", o.RunID)
	}
	if o.BaseDir == "" {
		o.BaseDir = DefaultBaseDir
	}
	if o.Capacity == 0 {
		o.Capacity = o.N + defaultSpare
	}
	if o.Capacity < o.N || o.Capacity > maxHosts {
		return fmt.Errorf("testfleet: Options.Capacity %d must be between N (%d) and %d", o.Capacity, o.N, maxHosts)
	}
	if o.Parallel <= 0 {
		o.Parallel = 4 * runtime.NumCPU()
	}
	if o.SudoUser == "" {
		o.SudoUser = DefaultSudoUser
	}
	if o.PlainUser == "" {
		o.PlainUser = DefaultPlainUser
	}
	for _, u := range []string{o.SudoUser, o.PlainUser} {
		if !userRE.MatchString(u) || u == "root" {
			return fmt.Errorf("testfleet: user name %q is not a valid new user name", u)
		}
	}
	if o.SudoUser == o.PlainUser {
		return fmt.Errorf("testfleet: SudoUser and PlainUser are both %q; they must differ", o.SudoUser)
	}
	if o.SSHD == "" {
		o.SSHD = DefaultSSHD
	}
	if o.SFTPServer == "" {
		o.SFTPServer = DefaultSFTP
	}
	if o.Seed == nil {
		o.Seed = DefaultSeed
	}
	for _, p := range o.Seed {
		if !slices.Contains(PrivatePaths, p) || p == "/root" || p == "/home" {
			return fmt.Errorf("testfleet: Options.Seed: %q is not one of the seedable private paths %v", p, PrivatePaths)
		}
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return nil
}

// checkTools reports every missing prerequisite at once, with the fix.
func checkTools(o *Options) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("testfleet: needs root (network, mount and PID namespaces)")
	}
	var missing []string
	for _, p := range []string{o.SSHD, o.SFTPServer} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	for _, t := range []string{"ip", "nsenter", "mount", "bash", "sudo"} {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("testfleet: missing %v: install with apt-get install -y openssh-server openssh-client iproute2 util-linux sudo", missing)
	}
	return nil
}

func newRunID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, runIDLen)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// Names of a run's kernel objects. Interface names are at most 15 bytes:
// prefix (<=4) + run ID (5) + "v" + index (<=5).
func bridgeName(prefix, runID string) string { return prefix + runID + "br" }
func vethName(prefix, runID string, idx int) string {
	return fmt.Sprintf("%s%sv%d", prefix, runID, idx)
}
func netnsName(prefix, runID string, idx int) string {
	return fmt.Sprintf("%s-%s-%d", prefix, runID, idx)
}
func runDirName(prefix, runID string) string { return prefix + "-" + runID }
