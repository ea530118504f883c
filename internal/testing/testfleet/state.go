package testfleet

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/registry-operator/registry-operator/internal/procstat"
)

// StateFile is the name of the run record inside a run directory.
const StateFile = "fleet.json"

// State is the run record written to <run dir>/fleet.json on every change.
// Humans, the demo and the benchmarks read it (see hack/fleet.sh); Cleanup
// uses the owner fields to tell live runs from leftovers.
type State struct {
	Prefix         string      `json:"prefix"`
	RunID          string      `json:"runID"`
	Dir            string      `json:"dir"`
	OwnerPID       int         `json:"ownerPID"`
	OwnerStart     uint64      `json:"ownerStart"` // /proc/<pid>/stat starttime, guards against PID reuse
	Subnet         string      `json:"subnet"`
	Gateway        string      `json:"gateway"`
	Bridge         string      `json:"bridge"`
	Capacity       int         `json:"capacity"`
	PrivateKeyPath string      `json:"privateKeyPath"`
	KnownHostsPath string      `json:"knownHostsPath"`
	SudoUser       string      `json:"sudoUser"`
	PlainUser      string      `json:"plainUser"`
	Hosts          []HostState `json:"hosts"`
}

// HostState describes one host in the run record.
type HostState struct {
	Index     int    `json:"index"`
	Name      string `json:"name"`
	Address   string `json:"address"`
	Netns     string `json:"netns"`
	Veth      string `json:"veth"`
	HolderPID int    `json:"holderPID"` // PID 1 of the host's PID namespace, as seen from the machine
}

// ReadState loads a run record.
func ReadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("testfleet: read run record: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("testfleet: parse run record %s: %w", path, err)
	}
	return &s, nil
}

func writeState(s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(s.Dir, StateFile), append(b, '\n'), 0o644)
}

// WriteFileAtomic writes via a temp file and rename so readers never see half a file.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// procStart returns the start time of a process (clock ticks since boot),
// or 0 if it does not exist.
func procStart(pid int) uint64 {
	start, _ := ProcStart(pid)
	return start
}

// ProcStart returns a process's start time in clock ticks since boot (0 if
// it does not exist) and whether it is a zombie. The start time tells a
// recorded process from a later one that reused its pid.
func ProcStart(pid int) (start uint64, zombie bool) {
	st, err := procstat.Read(pid)
	if err != nil {
		return 0, false
	}
	return st.StartTime, st.Zombie()
}

// ownerAlive tells whether the process that made a run still runs.
func (s *State) ownerAlive() bool {
	start := procStart(s.OwnerPID)
	return s.OwnerPID > 0 && start != 0 && start == s.OwnerStart
}

// lockBase serialises run creation and cleanup across processes.
func lockBase(base string) (unlock func(), err error) {
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, fmt.Errorf("testfleet: create %s: %w", base, err)
	}
	if err := checkSecureDir(base); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(base, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("testfleet: open lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("testfleet: lock %s: %w", base, err)
	}
	return func() { f.Close() }, nil
}

// checkSecureDir refuses a base directory that sshd's StrictModes would
// reject (group/world writable or not root-owned, up to /), so a bad
// BaseDir fails here with the reason instead of as "Permission denied
// (publickey)" at the first login.
func checkSecureDir(dir string) error {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("testfleet: %w", err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
			return fmt.Errorf("testfleet: BaseDir %s: %s is not root-owned or is group/world writable; sshd would refuse the authorized keys file there (use a directory like %s)", dir, d, DefaultBaseDir)
		}
		if d == "/" {
			return nil
		}
	}
}

// listRuns reads every run record under base.
func listRuns(base string) ([]*State, error) {
	ents, err := os.ReadDir(base)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []*State
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		s, err := ReadState(filepath.Join(base, e.Name(), StateFile))
		if err != nil {
			continue // half-made or half-removed run: Cleanup judges it by name
		}
		out = append(out, s)
	}
	return out, nil
}
