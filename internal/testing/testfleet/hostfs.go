package testfleet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// root opens the host's file system as the host sees it (its mounts
// included). Paths are resolved inside it; a symlink leading outside the
// host's root is refused rather than followed on the machine.
func (h *Host) root() (*os.Root, error) {
	return os.OpenRoot("/proc/" + strconv.Itoa(h.HolderPID()) + "/root")
}

func relPath(p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("testfleet: path %q must be absolute", p)
	}
	rel := strings.TrimPrefix(filepath.Clean(p), "/")
	if rel == "" {
		rel = "."
	}
	return rel, nil
}

// ReadFile reads an absolute path inside the host.
func (h *Host) ReadFile(_ context.Context, path string) ([]byte, error) {
	rel, err := relPath(path)
	if err != nil {
		return nil, err
	}
	r, err := h.root()
	if err != nil {
		return nil, fmt.Errorf("testfleet: %s: %w", h.Name, err)
	}
	defer r.Close()
	b, err := r.ReadFile(rel)
	if err != nil {
		return nil, fmt.Errorf("testfleet: %s: read %s: %w", h.Name, path, err)
	}
	return b, nil
}

// WriteFile writes an absolute path inside the host as root, creating
// missing parent directories (0755) and setting perm exactly.
func (h *Host) WriteFile(_ context.Context, path string, data []byte, perm fs.FileMode) error {
	rel, err := relPath(path)
	if err != nil {
		return err
	}
	r, err := h.root()
	if err != nil {
		return fmt.Errorf("testfleet: %s: %w", h.Name, err)
	}
	defer r.Close()
	if err := r.MkdirAll(filepath.Dir(rel), 0o755); err != nil {
		return fmt.Errorf("testfleet: %s: create parent of %s: %w", h.Name, path, err)
	}
	if err := r.WriteFile(rel, data, perm); err != nil {
		return fmt.Errorf("testfleet: %s: write %s: %w", h.Name, path, err)
	}
	if err := r.Chmod(rel, perm); err != nil {
		return fmt.Errorf("testfleet: %s: chmod %s: %w", h.Name, path, err)
	}
	return nil
}

// Remove removes an absolute path inside the host (a file or an empty
// directory). A missing path is not an error.
func (h *Host) Remove(_ context.Context, path string) error {
	rel, err := relPath(path)
	if err != nil {
		return err
	}
	r, err := h.root()
	if err != nil {
		return fmt.Errorf("testfleet: %s: %w", h.Name, err)
	}
	defer r.Close()
	if err := r.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("testfleet: %s: remove %s: %w", h.Name, path, err)
	}
	return nil
}

// Stat describes an absolute path inside the host without following a final symlink.
func (h *Host) Stat(_ context.Context, path string) (fs.FileInfo, error) {
	rel, err := relPath(path)
	if err != nil {
		return nil, err
	}
	r, err := h.root()
	if err != nil {
		return nil, fmt.Errorf("testfleet: %s: %w", h.Name, err)
	}
	defer r.Close()
	return r.Lstat(rel)
}

// ErrNoSysctl is wrapped by Sysctl and SetSysctl when the key does not exist
// in the host's network namespace.
var ErrNoSysctl = errors.New("sysctl key does not exist")

func (h *Host) sysctlErr(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		hint := ""
		if strings.HasPrefix(key, "net.netfilter.nf_conntrack") {
			hint = " (the nf_conntrack module is not loaded on this machine: run `modprobe nf_conntrack` as root)"
		}
		return fmt.Errorf("testfleet: %s: %w: %s%s", h.Name, ErrNoSysctl, key, hint)
	}
	return fmt.Errorf("testfleet: %s: sysctl %s: %w", h.Name, key, err)
}

// Sysctl reads a sysctl as the host sees it (net.* keys are per host).
func (h *Host) Sysctl(_ context.Context, key string) (string, error) {
	p, err := sysctlPath(key)
	if err != nil {
		return "", err
	}
	var v []byte
	err = inNetns("/run/netns/"+h.Netns, func() error {
		var rerr error
		v, rerr = os.ReadFile(p)
		return rerr
	})
	if err != nil {
		return "", h.sysctlErr(key, err)
	}
	return strings.TrimSpace(string(v)), nil
}

// SetSysctl sets a sysctl as the host sees it.
func (h *Host) SetSysctl(_ context.Context, key, value string) error {
	p, err := sysctlPath(key)
	if err != nil {
		return err
	}
	err = inNetns("/run/netns/"+h.Netns, func() error {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		if _, err := f.WriteString(value); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
	if err != nil {
		return h.sysctlErr(key, err)
	}
	return nil
}
