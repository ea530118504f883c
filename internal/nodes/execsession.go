package nodes

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/crypto/ssh"
)

// The connection is a bare ssh.Conn, not an ssh.Client: a Client keeps
// three goroutines per connection (one answering global requests, one
// refusing channel opens, one waiting to close port forwards) for as long
// as it lives, and the executor keeps a connection per node for the whole
// run. The executor's one loop does the first two for every connection
// (poll), and exec sessions run on bare channels (execute).

// exitError is a command that ran and ended with a status other than 0,
// or by a signal (status 128+n, as a shell reports it).
type exitError struct {
	status int
	signal string
}

func (e *exitError) Error() string {
	if e.signal != "" {
		return fmt.Sprintf("killed by signal %s", e.signal)
	}
	return fmt.Sprintf("exited with status %d", e.status)
}

// errExitMissing: the channel closed without an exit status or signal, so
// the command's fate is unknown (RFC 4254 allows it; OpenSSH never does it
// for a command that ran).
var errExitMissing = errors.New("the session ended without an exit status")

// signalNumbers are the POSIX numbers of the signals RFC 4254 names.
var signalNumbers = map[string]int{
	"ABRT": 6, "ALRM": 14, "FPE": 8, "HUP": 1, "ILL": 4, "INT": 2, "KILL": 9, "PIPE": 13, "QUIT": 3, "SEGV": 11,
	"TERM": 15, "USR1": 10, "USR2": 12,
}

// startExec asks for cmd to be run on ch, a fresh "session" channel.
func startExec(ch ssh.Channel, cmd string) error {
	ok, err := ch.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{cmd}))
	if err == nil && !ok {
		err = errors.New("sshd refused the exec request")
	}
	return err
}

// execute feeds stdin to the command started on ch, copies its output and
// returns once the channel is closed: nil for status 0, *exitError for a
// failure, another error when the channel broke. Closing ch ends it.
func execute(ch ssh.Channel, reqs <-chan *ssh.Request, stdin []byte, stdout, stderr io.Writer) error {
	var wg sync.WaitGroup
	var inErr, outErr, errErr error
	wg.Go(func() {
		_, inErr = ch.Write(stdin)
		if err := ch.CloseWrite(); inErr == nil && err != io.EOF {
			inErr = err
		}
	})
	wg.Go(func() { _, outErr = io.Copy(stdout, ch) })
	wg.Go(func() { _, errErr = io.Copy(stderr, ch.Stderr()) })
	err := exitStatus(reqs)
	wg.Wait()
	if err != nil {
		return err
	}
	return errors.Join(inErr, outErr, errErr)
}

// exitStatus reads the channel's requests until it closes.
func exitStatus(reqs <-chan *ssh.Request) error {
	status, signal := -1, ""
	var bad error
	for r := range reqs {
		switch r.Type {
		case "exit-status":
			if len(r.Payload) < 4 {
				bad = errors.New("malformed exit-status request")
				continue
			}
			status = int(binary.BigEndian.Uint32(r.Payload))
		case "exit-signal":
			var sig struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}
			if err := ssh.Unmarshal(r.Payload, &sig); err != nil {
				bad = fmt.Errorf("malformed exit-signal request: %w", err)
				continue
			}
			signal = sig.Signal
		default:
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
	}
	switch {
	case bad != nil:
		return bad
	case status == 0:
		return nil
	case status > 0:
		return &exitError{status: status, signal: signal}
	case signal != "":
		return &exitError{status: 128 + signalNumbers[signal], signal: signal}
	}
	return errExitMissing
}
