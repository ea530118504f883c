package nodes

import (
	"context"
	"fmt"
	"testing"
)

// ContractTarget starts a real sshd node, with the SFTP subsystem or
// without (exec fallback), and returns how to run a pass on it through an
// executor and which kind of connection that executor holds. It serves the
// Conn contract in nodestest, which this package's own tests cannot import.
func ContractTarget(t *testing.T, sftp bool) (do func(context.Context, func(context.Context, Conn) error) error, kind func() string) {
	t.Helper()
	d := startSSHD(t, sshdOptions{NoSFTPSubsystem: !sftp})
	e, _, _ := newExecutor(t)
	cfg := d.config("root", false)
	do = func(ctx context.Context, fn func(context.Context, Conn) error) error {
		return e.Do(ctx, cfg, d.Addr, fn)
	}
	kind = func() string {
		switch c := e.state(d.Addr).conn.(type) {
		case *sftpConn:
			return "sftp"
		case *execConn:
			return "exec"
		default:
			return fmt.Sprintf("%T", c)
		}
	}
	return do, kind
}
