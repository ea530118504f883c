package testfleet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Fleet is a running set of hosts. Its methods are safe for concurrent use.
type Fleet struct {
	Prefix, RunID string
	Dir           string       // the run directory
	Subnet        netip.Prefix // this run's block of 198.18.0.0/16
	Gateway       netip.Addr   // the machine's address on the run's bridge
	Bridge        string
	// PrivateKeyPath is the client key (ed25519, 0600) every user logs in with.
	PrivateKeyPath string
	// Signer is the same key, for golang.org/x/crypto/ssh clients.
	Signer ssh.Signer
	// KnownHostsPath lists every live host's key by address.
	KnownHostsPath string
	// SudoUser may run anything with sudo -n; PlainUser is refused by sudo.
	SudoUser, PlainUser string
	// ConntrackAvailable tells whether net.netfilter.nf_conntrack_tcp_be_liberal
	// exists (the nf_conntrack module is loaded); Start tries modprobe first.
	ConntrackAvailable bool

	opts       Options
	ownerPID   int
	ownerStart uint64
	sudoUID    int
	plainUID   int

	mu     sync.Mutex
	hosts  []*Host // by index; nil once removed
	closed bool

	closeOnce sync.Once
	closeErr  error
}

// Start builds a fleet of opts.N hosts. On error nothing it made is left behind.
func Start(ctx context.Context, opts Options) (*Fleet, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if err := checkTools(&opts); err != nil {
		return nil, err
	}
	if strings.ContainsAny(opts.BaseDir, " \t\n\\") {
		return nil, fmt.Errorf("testfleet: BaseDir %q must not contain whitespace or backslashes (it goes into an fstab)", opts.BaseDir)
	}
	began := time.Now()
	f := &Fleet{
		Prefix: opts.Prefix,
		RunID:  opts.RunID,
		Dir:    filepath.Join(opts.BaseDir, runDirName(opts.Prefix, opts.RunID)),
		Bridge: bridgeName(opts.Prefix, opts.RunID),
		opts:   opts,
	}
	f.ownerPID = os.Getpid()
	f.ownerStart = procStart(f.ownerPID)
	if err := f.reserve(ctx); err != nil {
		return nil, err
	}
	if err := f.prepare(ctx); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	if _, err := f.AddHosts(ctx, opts.N); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	opts.Logf("testfleet: %d hosts up in %s (run %s, %s, bridge %s)", opts.N, time.Since(began).Round(time.Millisecond), f.RunID, f.Subnet, f.Bridge)
	return f, nil
}

// reserve removes stale runs, picks this run's address block and records
// the run, all under the base lock so concurrent Starts never collide.
func (f *Fleet) reserve(ctx context.Context) error {
	unlock, err := lockBase(f.opts.BaseDir)
	if err != nil {
		return err
	}
	defer unlock()
	if err := cleanupLocked(ctx, f.opts.BaseDir, f.opts.Prefix, f.opts.Logf); err != nil {
		return err
	}
	var taken []netip.Prefix
	runs, err := listRuns(f.opts.BaseDir)
	if err != nil {
		return err
	}
	for _, r := range runs {
		if p, err := netip.ParsePrefix(r.Subnet); err == nil {
			taken = append(taken, p)
		}
	}
	routes, err := routesInFleetRange()
	if err != nil {
		return fmt.Errorf("testfleet: read routes: %w", err)
	}
	taken = append(taken, routes...)
	if f.Subnet, err = allocateSubnet(f.opts.Capacity, taken); err != nil {
		return err
	}
	f.Gateway = gatewayAddr(f.Subnet)
	if err := os.Mkdir(f.Dir, 0o755); err != nil {
		return fmt.Errorf("testfleet: create run directory (run ID %s already used?): %w", f.RunID, err)
	}
	if err := writeState(f.stateLocked()); err != nil {
		return errors.Join(err, os.RemoveAll(f.Dir))
	}
	return nil
}

// prepare writes the run's shared files and creates its bridge.
func (f *Fleet) prepare(ctx context.Context) error {
	etc := filepath.Join(f.Dir, "etc")
	if err := os.MkdirAll(filepath.Join(f.Dir, "hosts"), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	var err error
	f.PrivateKeyPath = filepath.Join(f.Dir, "id_ed25519")
	if f.Signer, err = writeKeyPair(f.PrivateKeyPath, "fleet-client@"+f.RunID); err != nil {
		return fmt.Errorf("testfleet: client key: %w", err)
	}
	pub, err := os.ReadFile(f.PrivateKeyPath + ".pub")
	if err != nil {
		return err
	}
	authorized := filepath.Join(f.Dir, "authorized_keys")
	if err := os.WriteFile(authorized, pub, 0o644); err != nil {
		return err
	}
	f.KnownHostsPath = filepath.Join(f.Dir, "known_hosts")
	if err := os.WriteFile(f.KnownHostsPath, nil, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(f.Dir, "sshd_config"), []byte(sshdConfig(authorized, f.opts.SFTPServer)), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(f.Dir, "holder.sh"), []byte(holderScript), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(etc, "hosts"), hostsFile(f.Gateway.String(), nil), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte(resolvConf), 0o644); err != nil {
		return err
	}
	f.SudoUser, f.PlainUser = f.opts.SudoUser, f.opts.PlainUser
	if f.sudoUID, f.plainUID, err = writeUserFiles(etc, &f.opts); err != nil {
		return fmt.Errorf("testfleet: user files: %w", err)
	}
	// Mount points for the hosts' private directories; sshd's privilege
	// separation directory. Created on the machine only if missing.
	for _, p := range append([]string{"/run/sshd"}, PrivatePaths...) {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("testfleet: create mount point %s: %w", p, err)
		}
	}
	f.ConntrackAvailable = ensureConntrack(ctx)
	if !f.ConntrackAvailable {
		f.opts.Logf("testfleet: WARNING: %s does not exist and `modprobe nf_conntrack` did not load it: hosts have no conntrack sysctl", conntrackKey)
	}
	if f.opts.Capacity > 200 {
		if err := raiseNeighbourLimits(f.opts.Capacity); err != nil {
			return err
		}
	}
	if err := ipBatch(ctx, []string{
		// A bridge's own address is otherwise its lowest port's, which
		// changes as hosts come and go; the hosts' entries for the
		// gateway need it fixed.
		"link add " + f.Bridge + " address " + macFor(f.Gateway) + " type bridge",
		fmt.Sprintf("addr add %s/%d dev %s", f.Gateway, f.Subnet.Bits(), f.Bridge),
		"link set " + f.Bridge + " up",
	}, false); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return writeState(f.stateLocked())
}

// Host returns host i (its index from creation), or nil if there is no
// such host or it was removed.
func (f *Fleet) Host(i int) *Host {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i < 0 || i >= len(f.hosts) {
		return nil
	}
	return f.hosts[i]
}

// Hosts returns the live hosts in index order.
func (f *Fleet) Hosts() []*Host {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.liveLocked()
}

func (f *Fleet) liveLocked() []*Host {
	var out []*Host
	for _, h := range f.hosts {
		if h != nil {
			out = append(out, h)
		}
	}
	return out
}

// Addresses returns the live hosts' IP addresses (sshd listens on port 22).
func (f *Fleet) Addresses() []string {
	var out []string
	for _, h := range f.Hosts() {
		out = append(out, h.Address)
	}
	return out
}

// HostKeyCallback checks host keys against KnownHostsPath as it is now.
func (f *Fleet) HostKeyCallback() (ssh.HostKeyCallback, error) {
	return knownhosts.New(f.KnownHostsPath)
}

// ClientConfig is a strict x/crypto/ssh configuration for user, with the
// fleet's client key and known_hosts.
func (f *Fleet) ClientConfig(user string) (*ssh.ClientConfig, error) {
	cb, err := f.HostKeyCallback()
	if err != nil {
		return nil, err
	}
	return &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(f.Signer)},
		HostKeyCallback: cb,
		Timeout:         10 * time.Second,
	}, nil
}

// SSHArgs are the OpenSSH client options for logging into a fleet host
// strictly and without stalls: append "user@address" and a command.
func (f *Fleet) SSHArgs() []string {
	return []string{
		"-F", "/dev/null",
		"-i", f.PrivateKeyPath,
		"-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + f.KnownHostsPath,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "GSSAPIAuthentication=no",
		"-o", "PasswordAuthentication=no",
		"-o", "BatchMode=yes",
		"-o", "ConnectTimeout=10",
	}
}

// StatePath is the run record (see State).
func (f *Fleet) StatePath() string { return filepath.Join(f.Dir, StateFile) }

// State returns a copy of the run record.
func (f *Fleet) State() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.stateLocked()
}

func (f *Fleet) stateLocked() *State {
	s := &State{
		Prefix: f.Prefix, RunID: f.RunID, Dir: f.Dir,
		OwnerPID: f.ownerPID, OwnerStart: f.ownerStart,
		Subnet: f.Subnet.String(), Gateway: f.Gateway.String(), Bridge: f.Bridge,
		Capacity:       f.opts.Capacity,
		PrivateKeyPath: f.PrivateKeyPath, KnownHostsPath: f.KnownHostsPath,
		SudoUser: f.opts.SudoUser, PlainUser: f.opts.PlainUser,
	}
	for _, h := range f.liveLocked() {
		s.Hosts = append(s.Hosts, HostState{
			Index: h.Index, Name: h.Name, Address: h.Address,
			Netns: h.Netns, Veth: h.Veth, HolderPID: h.holderPID,
		})
	}
	return s
}

// publishLocked rewrites the files that list hosts: known_hosts, the
// hosts' /etc/hosts and the run record.
func (f *Fleet) publishLocked() error {
	live := f.liveLocked()
	if err := WriteFileAtomic(f.KnownHostsPath, knownHostsFile(live), 0o644); err != nil {
		return fmt.Errorf("testfleet: write known_hosts: %w", err)
	}
	// Rewritten in place: each host bind-mounts this very inode.
	if err := os.WriteFile(filepath.Join(f.Dir, "etc", "hosts"), hostsFile(f.Gateway.String(), live), 0o644); err != nil {
		return fmt.Errorf("testfleet: write hosts file: %w", err)
	}
	return writeState(f.stateLocked())
}

// Close stops every host and removes every namespace, link, process and
// directory of the run. It is idempotent.
func (f *Fleet) Close() error {
	f.closeOnce.Do(func() {
		f.mu.Lock()
		f.closed = true
		hosts := f.liveLocked()
		f.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		err := teardownRun(ctx, f.opts.BaseDir, f.Prefix, f.RunID, hosts)
		f.closeErr = err
		if err == nil {
			f.opts.Logf("testfleet: run %s removed", f.RunID)
		}
	})
	return f.closeErr
}
