package nodes

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
)

// ErrNotApplied is what a recording connection returns from the
// operations whose effect a caller checks or whose output it uses: Run
// (a command's output cannot be made up) and WriteInPlace (a pass reads
// the kernel parameter back to check it took). The operation was recorded,
// not carried out. Callers that meet it go on as though the operation had
// been applied, without checking its effect.
var ErrNotApplied = errors.New("recorded, not applied: the connection is in report mode")

// RecordingConn is a Conn for report mode: reads go to the node, and every
// operation that would change it (WriteFile, WriteInPlace, Chmod, Remove,
// Symlink, Run) is recorded and not sent. A pass through it finds exactly
// what an enforcing pass would find, and changes nothing; Recorded tells
// whether that pass would have changed something.
type RecordingConn struct {
	conn Conn

	mu       sync.Mutex
	recorded []string
}

// Recording wraps c so that nothing is changed through it.
func Recording(c Conn) *RecordingConn { return &RecordingConn{conn: c} }

// Recorded returns the operations withheld so far, in order, one line
// each ("write /etc/x (mode 644, 12 bytes)").
func (r *RecordingConn) Recorded() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.recorded...)
}

func (r *RecordingConn) record(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recorded = append(r.recorded, fmt.Sprintf(format, a...))
}

// Node implements Conn.
func (r *RecordingConn) Node() string { return r.conn.Node() }

// HostKeyAcceptedOnFirstUse implements FirstUseReporter for the wrapped
// Conn: report mode must not hide that an agent's identity is uncertain.
func (r *RecordingConn) HostKeyAcceptedOnFirstUse() bool { return AcceptedOnFirstUse(r.conn) }

// ReadFile implements Conn: it reads the node.
func (r *RecordingConn) ReadFile(ctx context.Context, path string) ([]byte, fs.FileMode, error) {
	return r.conn.ReadFile(ctx, path)
}

// fileMatches lets FileMatches reach the wrapped Conn's: it only reads.
func (r *RecordingConn) fileMatches(ctx context.Context, path string, want []byte) (bool, []byte, fs.FileMode, error) {
	return FileMatches(ctx, r.conn, path, want)
}

// Stat implements Conn: it reads the node.
func (r *RecordingConn) Stat(ctx context.Context, path string) (FileInfo, error) {
	return r.conn.Stat(ctx, path)
}

// ReadDir implements Conn: it reads the node.
func (r *RecordingConn) ReadDir(ctx context.Context, dir string) ([]FileInfo, error) {
	return r.conn.ReadDir(ctx, dir)
}

// Readlink implements Conn: it reads the node.
func (r *RecordingConn) Readlink(ctx context.Context, path string) (string, error) {
	return r.conn.Readlink(ctx, path)
}

// StatVFS implements Conn: it reads the node.
func (r *RecordingConn) StatVFS(ctx context.Context, path string) (FSUsage, error) {
	return r.conn.StatVFS(ctx, path)
}

// WriteFile records the write and reports success.
func (r *RecordingConn) WriteFile(_ context.Context, path string, data []byte, perm fs.FileMode) error {
	r.record("write %s (mode %o, %d bytes)", path, perm.Perm(), len(data))
	return nil
}

// WriteInPlace records the write and returns ErrNotApplied.
func (r *RecordingConn) WriteInPlace(_ context.Context, path string, data []byte) error {
	r.record("write in place %s (%d bytes)", path, len(data))
	return fmt.Errorf("write %s: %w", path, ErrNotApplied)
}

// Chmod records the change and reports success.
func (r *RecordingConn) Chmod(_ context.Context, path string, perm fs.FileMode) error {
	r.record("chmod %s %o", path, perm.Perm())
	return nil
}

// Remove records the removal and reports success.
func (r *RecordingConn) Remove(_ context.Context, path string) error {
	r.record("remove %s", path)
	return nil
}

// Symlink records the link and reports success.
func (r *RecordingConn) Symlink(_ context.Context, target, link string) error {
	r.record("symlink %s -> %s", link, target)
	return nil
}

// Run records the script's first line and returns ErrNotApplied: no
// process starts on the node.
func (r *RecordingConn) Run(_ context.Context, script string, args ...string) ([]byte, error) {
	r.record("run %q with %d argument(s)", firstCommand(script), len(args))
	return nil, fmt.Errorf("run: %w", ErrNotApplied)
}

// firstCommand is the script's first line that is not a PATH setting:
// what the script does, for the record.
func firstCommand(script string) string {
	for _, l := range strings.Split(script, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "PATH=") {
			return l
		}
	}
	return ""
}
