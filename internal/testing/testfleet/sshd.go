package testfleet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// sshdPIDs lists the host's sshd processes (listener and sessions).
func (h *Host) sshdPIDs() ([]int, error) {
	ino, err := nsInode("/proc/" + strconv.Itoa(h.HolderPID()) + "/ns/pid")
	if err != nil {
		return nil, fmt.Errorf("testfleet: %s is not running: %w", h.Name, err)
	}
	var out []int
	for _, pid := range procsInNamespaces("pid", map[uint64]bool{ino: true}) {
		if procExe(pid) == h.f.opts.SSHD {
			out = append(out, pid)
		}
	}
	return out, nil
}

// StopSSHD kills the host's sshd, its listener and every session, as a
// crash or reboot would: new connections are refused and open ones drop.
func (h *Host) StopSSHD(ctx context.Context) error {
	pids, err := h.sshdPIDs()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for {
		left, err := h.sshdPIDs()
		if err != nil {
			return err
		}
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testfleet: %s: sshd processes %v still running: %w", h.Name, left, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// StartSSHD starts the host's sshd (after StopSSHD) and waits until it listens.
func (h *Host) StartSSHD(ctx context.Context) error {
	if pids, err := h.sshdPIDs(); err != nil {
		return err
	} else if len(pids) > 0 {
		return fmt.Errorf("testfleet: %s: sshd already running (pids %v)", h.Name, pids)
	}
	pidFile := filepath.Join(h.dir, "sshd.pid")
	if err := os.Remove(pidFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	argv := h.sshdArgv()
	if _, err := h.Exec(ctx, argv[0], argv[1:]...); err != nil {
		return err
	}
	// sshd writes its PID file once its socket listens.
	for {
		if fi, err := os.Stat(pidFile); err == nil && fi.Size() > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			log, _ := os.ReadFile(filepath.Join(h.dir, "sshd.log"))
			return fmt.Errorf("testfleet: %s: sshd did not start: %w: %s", h.Name, ctx.Err(), lastLines(log, 5))
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// ReplaceHostKey gives the host a new host key and restarts its sshd. With
// updateKnownHosts false, known_hosts keeps the old key, so clients see a
// host key mismatch.
func (h *Host) ReplaceHostKey(ctx context.Context, updateKnownHosts bool) (ssh.PublicKey, error) {
	signer, err := writeKeyPair(filepath.Join(h.dir, "ssh_host_ed25519_key"), "root@"+h.Name)
	if err != nil {
		return nil, fmt.Errorf("testfleet: %s: new host key: %w", h.Name, err)
	}
	if err := h.StopSSHD(ctx); err != nil {
		return nil, err
	}
	if err := h.StartSSHD(ctx); err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.hostKey = signer.PublicKey()
	if updateKnownHosts {
		h.knownKey = h.hostKey
	}
	h.mu.Unlock()
	if updateKnownHosts {
		h.f.mu.Lock()
		defer h.f.mu.Unlock()
		if err := h.f.publishLocked(); err != nil {
			return nil, err
		}
	}
	return signer.PublicKey(), nil
}
