package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/registry-operator/registry-operator/internal/testing/testfleet"
)

// recordFile is the sandbox record inside its directory.
const recordFile = "sandbox.json"

// record says who owns a sandbox and which processes and fleet it made, so
// Cleanup can remove the sandbox of a process that died (kill -9, a test
// binary's timeout) without touching a live one.
type record struct {
	Name          string `json:"name"`
	OwnerPID      int    `json:"ownerPID"`
	OwnerStart    uint64 `json:"ownerStart"`
	OperatorPID   int    `json:"operatorPID,omitempty"`
	OperatorStart uint64 `json:"operatorStart,omitempty"`
	FleetRunID    string `json:"fleetRunID,omitempty"`
	OperatorURL   string `json:"operatorURL,omitempty"`
}

func (s *Sandbox) saveRecord() error {
	s.mu.Lock()
	b, _ := json.MarshalIndent(s.rec, "", "  ")
	s.mu.Unlock()
	return testfleet.WriteFileAtomic(filepath.Join(s.Dir, recordFile), append(b, '\n'), 0o644)
}

func newDir(base, name string) (string, error) {
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("sandbox: create %s: %w", base, err)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	dir := filepath.Join(base, fmt.Sprintf("%s-%x", name, b))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("sandbox: create %s: %w", dir, err)
	}
	return dir, nil
}

// Running describes a live sandbox found under a base directory.
type Running struct {
	Dir         string
	Name        string
	OwnerPID    int
	OperatorURL string
	// FleetRunID names the agents' fleet run (testfleet's run record is
	// <testfleet.DefaultBaseDir>/<DefaultPrefix>-<FleetRunID>/fleet.json).
	FleetRunID string
}

// List returns the sandboxes under base whose owner still runs.
func List(base string) ([]Running, error) {
	recs, err := readRecords(base)
	var out []Running
	for dir, r := range recs {
		if alive(r.OwnerPID, r.OwnerStart) {
			out = append(out, Running{Dir: dir, Name: r.Name, OwnerPID: r.OwnerPID, OperatorURL: r.OperatorURL, FleetRunID: r.FleetRunID})
		}
	}
	return out, err
}

func readRecords(base string) (map[string]record, error) {
	ents, err := os.ReadDir(base)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]record{}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(base, e.Name())
		var r record
		if b, err := os.ReadFile(filepath.Join(dir, recordFile)); err == nil {
			_ = json.Unmarshal(b, &r)
		}
		out[dir] = r
	}
	return out, nil
}

// Cleanup removes the leftovers of sandboxes under DefaultBaseDir whose
// owner is gone.
func Cleanup(ctx context.Context) error { return CleanupIn(ctx, DefaultBaseDir) }

// CleanupIn removes the leftovers of sandboxes under base whose owner is
// gone: their operator process, their fleet (namespaces, links, processes)
// and their directory. Live sandboxes are left alone.
func CleanupIn(ctx context.Context, base string) error {
	recs, err := readRecords(base)
	if err != nil {
		return fmt.Errorf("sandbox: list %s: %w", base, err)
	}
	var errs []error
	for dir, r := range recs {
		if r.OwnerPID != 0 && alive(r.OwnerPID, r.OwnerStart) {
			continue
		}
		if r.OwnerPID == 0 {
			// No record yet: a sandbox being created right now, or one
			// killed in its first instant. Only an old one is removed.
			if fi, err := os.Stat(dir); err != nil || time.Since(fi.ModTime()) < time.Minute {
				continue
			}
		}
		if r.OperatorPID > 0 && alive(r.OperatorPID, r.OperatorStart) {
			_ = syscall.Kill(r.OperatorPID, syscall.SIGKILL)
		}
		errs = append(errs, os.RemoveAll(dir))
	}
	// Fleets clean their own leftovers by owner; the sandbox's prefix is
	// the default one unless a caller chose another.
	errs = append(errs, testfleet.Cleanup(ctx, DefaultPrefix))
	return errors.Join(errs...)
}

// alive tells whether pid is the process that started at start.
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	got := procStart(pid)
	return got != 0 && (start == 0 || got == start)
}

// procStart returns a process's start time in clock ticks since boot, or 0
// when it is gone; a zombie counts as gone, as the sandbox waits for its
// children to exit, not to be reaped.
func procStart(pid int) uint64 {
	start, zombie := testfleet.ProcStart(pid)
	if zombie {
		return 0
	}
	return start
}

// checkTools reports every missing program at once, with the fix.
func checkTools() error {
	if os.Geteuid() != 0 {
		return errors.New("sandbox: needs root (network namespaces, sshd, nsenter)")
	}
	var missing []string
	for _, t := range []string{"skopeo", "docker-registry", "nsenter", "ip", "/usr/sbin/sshd"} {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("sandbox: missing %v: run hack/install-deps.sh (Debian packages skopeo docker-registry util-linux iproute2 openssh-server)", missing)
	}
	return nil
}
