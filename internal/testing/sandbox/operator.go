package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ErrOperatorNotRunning is returned when the operator was expected to run.
var ErrOperatorNotRunning = errors.New("sandbox: the operator is not running")

type operatorProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // Wait's result, set before exited closes
}

// LogPath is the operator's log file (appended to across restarts).
func (s *Sandbox) LogPath() string { return filepath.Join(s.Dir, "operator.log") }

// TasksLogPath is where the registry tasks' output goes.
func (s *Sandbox) TasksLogPath() string { return filepath.Join(s.Dir, "tasks.log") }

// OperatorAddr is the operator's --listen address (host:port).
func (s *Sandbox) OperatorAddr() string { return s.listen }

// OperatorURL is the operator's base URL: / is the status page, /metrics
// and /api/status are there too.
func (s *Sandbox) OperatorURL() string { return "http://" + s.listen }

// OperatorBinary is the registry-operator binary the sandbox runs.
func (s *Sandbox) OperatorBinary() string { return s.binary }

// StartOperator starts the operator and waits until it answers /healthz.
func (s *Sandbox) StartOperator(ctx context.Context) error {
	s.mu.Lock()
	if s.op != nil {
		select {
		case <-s.op.exited:
		default:
			s.mu.Unlock()
			return errors.New("sandbox: the operator is already running")
		}
	}
	s.mu.Unlock()
	logf, err := os.OpenFile(s.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	fmt.Fprintf(logf, "# sandbox: %s starting the operator\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(s.binary, "run", "--config", s.ConfigPath(), "--listen", s.listen)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "REGISTRY_OPERATOR_CONFIG=")
	// Its own process group, so a terminal's Ctrl-C reaches the sandbox's
	// owner only, which stops the operator itself; and it dies with its owner.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("sandbox: start %s: %w", s.binary, err)
	}
	p := &operatorProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	s.mu.Lock()
	s.op = p
	s.rec.OperatorPID, s.rec.OperatorStart = cmd.Process.Pid, procStart(cmd.Process.Pid)
	s.rec.OperatorURL = s.OperatorURL()
	s.mu.Unlock()
	if err := s.saveRecord(); err != nil {
		return err
	}
	return s.waitHealthy(ctx, p)
}

func (s *Sandbox) waitHealthy(ctx context.Context, p *operatorProc) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	url := s.OperatorURL() + "/healthz"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("sandbox: the operator exited at start (%v); its log ends with:\n%s", p.err, s.LogTail(30))
		case <-ctx.Done():
			return fmt.Errorf("sandbox: the operator did not answer %s within 30s; its log ends with:\n%s", url, s.LogTail(30))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// OperatorRunning tells whether the operator process runs.
func (s *Sandbox) OperatorRunning() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.op == nil {
		return false
	}
	select {
	case <-s.op.exited:
		return false
	default:
		return true
	}
}

// OperatorPID is the operator's process id, 0 when it does not run.
func (s *Sandbox) OperatorPID() int {
	if !s.OperatorRunning() {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.op.cmd.Process.Pid
}

// OperatorExit tells whether the last operator process has ended and how
// (a nil error for exit status 0).
func (s *Sandbox) OperatorExit() (exited bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.op == nil {
		return false, nil
	}
	select {
	case <-s.op.exited:
		return true, s.op.err
	default:
		return false, nil
	}
}

func (s *Sandbox) signalOperator(sig syscall.Signal) (*operatorProc, error) {
	s.mu.Lock()
	p := s.op
	s.mu.Unlock()
	if p == nil {
		return nil, ErrOperatorNotRunning
	}
	select {
	case <-p.exited:
		return nil, ErrOperatorNotRunning
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return nil, fmt.Errorf("sandbox: signal the operator: %w", err)
	}
	return p, nil
}

// KillOperator kills the operator with SIGKILL (a crash) and waits until
// it is gone.
func (s *Sandbox) KillOperator() error {
	p, err := s.signalOperator(syscall.SIGKILL)
	if err != nil {
		return err
	}
	<-p.exited
	return nil
}

// StopOperator asks the operator to stop (SIGTERM) and waits; after 30s
// it is killed and an error says so.
func (s *Sandbox) StopOperator(ctx context.Context) error {
	p, err := s.signalOperator(syscall.SIGTERM)
	if err != nil {
		return err
	}
	select {
	case <-p.exited:
		return nil
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	return fmt.Errorf("sandbox: the operator did not stop within 30s of SIGTERM and was killed; its log ends with:\n%s", s.LogTail(30))
}

// RestartOperator stops the operator (SIGTERM) if it runs and starts it again.
func (s *Sandbox) RestartOperator(ctx context.Context) error {
	if err := s.StopOperator(ctx); err != nil && !errors.Is(err, ErrOperatorNotRunning) {
		return err
	}
	return s.StartOperator(ctx)
}

// Log returns the whole operator log.
func (s *Sandbox) Log() ([]byte, error) { return os.ReadFile(s.LogPath()) }

// LogSize is the current length of the operator log: pass it to LogSince
// to get what was logged after this moment.
func (s *Sandbox) LogSize() int64 {
	fi, err := os.Stat(s.LogPath())
	if err != nil {
		return 0
	}
	return fi.Size()
}

// LogSince returns the operator log from byte offset mark on.
func (s *Sandbox) LogSince(mark int64) ([]byte, error) {
	f, err := os.Open(s.LogPath())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(mark, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}

// LogTail returns the last n lines of the operator log.
func (s *Sandbox) LogTail(n int) string {
	b, err := s.Log()
	if err != nil {
		return "(no operator log: " + err.Error() + ")"
	}
	return tail(b, n)
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// buildOperator compiles the operator from the module's source into the
// sandbox directory, so a test runs the code it is testing.
func (s *Sandbox) buildOperator(ctx context.Context) (string, error) {
	return BuildOperator(ctx, filepath.Join(s.Dir, "registry-operator"))
}

// BuildOperator runs go build for cmd/registry-operator of the module the
// working directory is in, writing the binary to out. It builds as the
// image and `make operator` do (static, no cgo), so the tests run the
// binary that ships.
func BuildOperator(ctx context.Context, out string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "./cmd/registry-operator")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("sandbox: go build ./cmd/registry-operator in %s: %w\n%s", root, err, buf.String())
	}
	return out, nil
}

// ModuleRoot finds the registry-operator module root from the working
// directory upward.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/registry-operator/registry-operator\n")) {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("sandbox: %s is not inside the registry-operator source tree (no go.mod found upward); "+
				"run from the repository or set Options.Template and Options.OperatorBinary", dir)
		}
	}
}
