package nodes

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// HostKeyError is a refused host key: a mismatch with known_hosts (possibly a
// machine in the middle), a key marked @revoked there or, under the strict
// policy, an unknown host. It is a security event, not a transient failure:
// retrying cannot fix it.
type HostKeyError struct {
	Node     string
	Mismatch bool     // false: the host is not in known_hosts (or Revoked)
	Revoked  bool     // the key presented is marked @revoked in known_hosts
	Want     []string // fingerprints on record
	Got      string   // fingerprint presented
	File     string
}

func (e *HostKeyError) Error() string {
	if e.Revoked {
		return fmt.Sprintf("node %s: host key %s is marked @revoked in %s: the node may be compromised or "+
			"impersonated; give it a new host key and record that in %s", e.Node, e.Got, e.File, e.File)
	}
	if e.Mismatch {
		return fmt.Sprintf("node %s: host key %s does not match %s (on record: %s): possible man in the middle; "+
			"if the node was reinstalled, remove its old line from %s", e.Node, e.Got, e.File,
			strings.Join(e.Want, ", "), e.File)
	}
	return fmt.Sprintf("node %s: host key %s is not in %s and hostKeyPolicy is strict: "+
		"add the node's key to %s (ssh-keyscan, checked out of band) or use acceptNew", e.Node, e.Got, e.File, e.File)
}

// ConnectError means the node could not be reached or logged into: nothing
// was read or changed on it. Backoff is set when the call was refused
// because the node is still backing off from an earlier failure.
type ConnectError struct {
	Node    string
	Err     error
	Backoff time.Time
}

func (e *ConnectError) Error() string {
	if !e.Backoff.IsZero() {
		return fmt.Sprintf("node %s unreachable (retrying after %s): %v", e.Node, e.Backoff.Format(time.RFC3339), e.Err)
	}
	return fmt.Sprintf("node %s unreachable: %v", e.Node, e.Err)
}

func (e *ConnectError) Unwrap() error { return e.Err }

// opError is a failed file operation on a node: "node N: WHAT PATH: ERR".
// Built on every missing file a pass checks for, so it formats only when
// printed (fmt.Errorf formatted each at once: most of a steady pass's
// garbage on nodes without the optional files).
type opError struct {
	node, what, path string
	err              error
}

func (e *opError) Error() string {
	return "node " + e.node + ": " + e.what + " " + e.path + ": " + e.err.Error()
}

func (e *opError) Unwrap() error { return e.err }

func opErr(node, what, p string, err error) error { return &opError{node, what, p, err} }

// ErrSudoRefused is wrapped when `sudo -n` wants a password or denies the
// user: sudo must allow the SSH user to run sh and sftp-server without one.
var ErrSudoRefused = errors.New("sudo -n refused (a password is required or the user may not run the command): " +
	"allow the SSH user NOPASSWD sudo, or set nodes.ssh.sudo: false and log in as root")

// ErrTimeout is wrapped when a command or file operation exceeds
// nodes.ssh.commandTimeout; the session (or the whole connection) is closed.
var ErrTimeout = errors.New("timed out (nodes.ssh.commandTimeout)")

// ErrOutputTooLarge is wrapped when a command sends more than maxOutput
// bytes: the node sent more than any operation reads, so the session is
// killed rather than buffered until commandTimeout.
var ErrOutputTooLarge = errors.New("node sent more than the operator reads from one command")

// IsUnreachable reports whether err means nothing could be done on the node
// at all: it could not be reached, logged into, or its host key was refused.
func IsUnreachable(err error) bool {
	var ce *ConnectError
	var he *HostKeyError
	return errors.As(err, &ce) || errors.As(err, &he)
}

// IsHostKeyError reports whether err is a refused host key.
func IsHostKeyError(err error) bool {
	var he *HostKeyError
	return errors.As(err, &he)
}
