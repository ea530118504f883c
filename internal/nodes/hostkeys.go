package nodes

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/registry-operator/registry-operator/internal/fileid"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
)

// hostKeys checks host keys against known_hosts. The file is parsed again
// only when it changes (size, modification time or inode), so keys added by
// hand (or by acceptNew) take effect without a restart, while a pass over a
// thousand nodes does not parse a thousand-line file a thousand times.
type hostKeys struct {
	mu    sync.Mutex // serialises acceptNew appends and guards cache
	probe ssh.PublicKey
	cache knownFile
}

// knownFile is one parse of a known_hosts file and what identified it.
type knownFile struct {
	path string
	id   fileid.ID
	cb   ssh.HostKeyCallback
}

func newHostKeys() *hostKeys {
	// A key no host can present: asking knownhosts about it makes it list
	// the keys on record for a host, without trusting anything.
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		panic(err) // crypto/rand failing is unrecoverable
	}
	probe, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return &hostKeys{probe: probe}
}

// load returns the callback for one dial plus the host key algorithms on
// record for addr. The callback sets *acceptedNew when it records a key on
// first use (acceptNew) instead of checking it against one on record. Restricting the algorithms matters: if known_hosts holds
// only an ed25519 key and the client negotiates ECDSA first, a correct host
// would look like a mismatch.
func (h *hostKeys) load(cfg Config, node, addr string, acceptedNew *atomic.Bool) (ssh.HostKeyCallback, []string, error) {
	file := cfg.KnownHostsFile
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) && cfg.HostKeyPolicy == v1alpha1.HostKeyAcceptNew {
		if err := os.WriteFile(file, nil, 0o600); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, nil, fmt.Errorf("create known hosts file %s: %w", file, err)
		}
	}
	known, err := h.parsed(file)
	if err != nil {
		return nil, nil, fmt.Errorf("read known hosts file %s (nodes.ssh.knownHostsFile): %w", file, err)
	}
	var algos []string
	remote := &net.TCPAddr{IP: net.IPv4zero}
	var ke *knownhosts.KeyError
	if err := known(addr, remote, h.probe); errors.As(err, &ke) {
		for _, k := range ke.Want {
			algos = append(algos, algorithmsFor(k.Key.Type())...)
		}
	}
	slices.Sort(algos)
	algos = slices.Compact(algos)
	cb := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := known(hostname, remote, key)
		var re *knownhosts.RevokedError
		if errors.As(err, &re) {
			return &HostKeyError{Node: node, Revoked: true, Got: ssh.FingerprintSHA256(key), File: file}
		}
		var ke *knownhosts.KeyError
		if !errors.As(err, &ke) {
			return err // nil: the key is on record
		}
		if len(ke.Want) > 0 {
			want := make([]string, 0, len(ke.Want))
			for _, k := range ke.Want {
				want = append(want, ssh.FingerprintSHA256(k.Key))
			}
			return &HostKeyError{Node: node, Mismatch: true, Want: want, Got: ssh.FingerprintSHA256(key), File: file}
		}
		if cfg.HostKeyPolicy != v1alpha1.HostKeyAcceptNew {
			return &HostKeyError{Node: node, Got: ssh.FingerprintSHA256(key), File: file}
		}
		if err := h.record(file, hostname, key); err != nil {
			return err
		}
		acceptedNew.Store(true)
		return nil
	}
	return cb, algos, nil
}

// parsed returns the callback for file, parsing it again when it changed.
func (h *hostKeys) parsed(file string) (ssh.HostKeyCallback, error) {
	st, err := os.Stat(file)
	if err != nil {
		return nil, err
	}
	id := fileid.Of(st)
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.cache
	if c.cb != nil && c.path == file && c.id == id {
		return c.cb, nil
	}
	cb, err := knownhosts.New(file)
	if err != nil {
		return nil, err
	}
	h.cache = knownFile{path: file, id: id, cb: cb}
	return cb, nil
}

// record appends a first-seen key (acceptNew: trust on first use).
func (h *hostKeys) record(file, hostname string, key ssh.PublicKey) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("record new host key in %s: %w", file, err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key) + "\n"
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("record new host key in %s: %w", file, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("record new host key in %s: %w", file, err)
	}
	return f.Close()
}

func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// knownHostsWritable returns why acceptNew could not record a new key in
// file, or nil. Opening for append writes nothing; it fails on a read-only
// mount (the shipped Marathon app mounts secrets read-only) or a file the
// process may not write. A file that does not exist yet is created by load.
func knownHostsWritable(file string) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}
