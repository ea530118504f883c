package nodes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/registry-operator/registry-operator/internal/sftp"
)

// startSFTP opens the persistent SFTP channel. With sudo or an explicit
// sftp-server path the server runs as a command (sudo -n PATH); otherwise the
// sshd "sftp" subsystem serves it. It returns (nil, nil) when the node has
// no sftp-server: callers fall back to exec sessions.
func (c *client) startSFTP(ctx context.Context) (*sftp.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.commandTimeout())
	defer cancel()
	path := c.cfg.SFTPServer
	if path == "" && c.cfg.Sudo {
		out, err := c.run(ctx, nil, `for p do if [ -x "$p" ]; then printf '%s' "$p"; exit 0; fi; done; exit 3`, sftpServerPaths...)
		var ee *ExitError
		if errors.As(err, &ee) && ee.Status == 3 {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("detect sftp-server: %w", err)
		}
		path = string(out)
	}
	// A peer that stops answering at any step below holds it until the
	// connection is closed, which ends the step.
	stop := context.AfterFunc(ctx, c.close)
	cl, err := c.openSFTP(path)
	if !stop() {
		if cl != nil {
			cl.Close()
		}
		return nil, fmt.Errorf("node %s: start sftp-server: %w", c.node, timeoutErr(ctx))
	}
	return cl, err
}

// openSFTP serves SFTP over a bare "session" channel rather than an
// ssh.Session: a Session keeps a goroutine reading the channel's requests
// and one copying its stderr for as long as it lives, two goroutines per
// node on a channel kept for the whole run. Here the executor's loop takes
// the channel's requests (client.poll): sshd's keepalive
// (ClientAliveInterval) asks on the first open channel, and hangs up when
// unanswered. sftp-server writes nothing to stderr unless it fails to
// start, which is read then (sftpStartError), or runs with -e, which logs
// errors there. Unread stderr takes from the
// channel's 2 MB window: only after megabytes of logged errors would the
// channel stall, and then the request timeout closes the connection and
// the next pass dials again.
func (c *client) openSFTP(path string) (*sftp.Client, error) {
	ch, reqs, err := c.ssh.OpenChannel("session", nil)
	if err != nil {
		c.close()
		return nil, &ConnectError{Node: c.node, Err: fmt.Errorf("open sftp session: %w", err)}
	}
	c.counter()
	c.keptChannel(reqs)
	if path == "" {
		ok, err := ch.SendRequest("subsystem", true, ssh.Marshal(struct{ Name string }{"sftp"}))
		if err != nil || !ok {
			ch.Close()
			return nil, nil // no sftp subsystem configured: exec fallback
		}
	} else {
		cmd := quote(path)
		if c.cfg.Sudo {
			cmd = "sudo -n -- " + cmd
		}
		ok, err := ch.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{cmd}))
		if err == nil && !ok {
			err = errors.New("sshd refused the exec request")
		}
		if err != nil {
			ch.Close()
			return nil, fmt.Errorf("node %s: start %s: %w", c.node, path, err)
		}
	}
	// Closing the client closes the channel (its writer).
	cl, err := sftp.NewClient(ch)
	if err != nil {
		return nil, c.sftpStartError(ch, path, err)
	}
	return cl, nil
}

// sftpStartError reads what the server said on stderr before it went away
// (sudo's refusal, say), waiting briefly for the channel's end, and names it.
func (c *client) sftpStartError(ch ssh.Channel, path string, err error) error {
	var stderr syncBuffer
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(&stderr, ch.Stderr())
		close(copied)
	}()
	t := time.NewTimer(2 * time.Second)
	select {
	case <-copied:
	case <-t.C:
		c.close() // ends the copy
		<-copied
	}
	t.Stop()
	ch.Close()
	if msg := strings.TrimSpace(stderr.String()); sudoRefused(msg) {
		return fmt.Errorf("node %s: start sftp-server %s: %w: %s", c.node, path, ErrSudoRefused, msg)
	} else if msg != "" {
		return fmt.Errorf("node %s: start sftp-server %s: %s: %w", c.node, path, msg, err)
	}
	return fmt.Errorf("node %s: start sftp-server %s: %w", c.node, path, err)
}
