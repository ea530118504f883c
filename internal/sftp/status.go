package sftp

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// Status codes of SFTP version 3.
const (
	StatusOK               = 0
	StatusEOF              = 1
	StatusNoSuchFile       = 2
	StatusPermissionDenied = 3
	StatusFailure          = 4
	StatusBadMessage       = 5
	StatusNoConnection     = 6
	StatusConnectionLost   = 7
	StatusOpUnsupported    = 8
)

// ErrUnsupported is what a StatusError with StatusOpUnsupported matches
// (errors.Is): the server does not implement the request or extension.
var ErrUnsupported = errors.New("operation not supported by the SFTP server")

// StatusError is a request the server answered with a failure status.
// It matches fs.ErrNotExist, fs.ErrPermission or ErrUnsupported (with
// errors.Is) when its code says so. SFTP v3 has no code for "exists":
// sftp-server reports EEXIST as StatusFailure.
type StatusError struct {
	Code uint32
	Msg  string
}

func (e *StatusError) Error() string {
	if e.Msg != "" {
		return fmt.Sprintf("sftp status %d (%s)", e.Code, e.Msg)
	}
	return fmt.Sprintf("sftp status %d", e.Code)
}

// Is maps the code onto the standard errors.
func (e *StatusError) Is(target error) bool {
	switch e.Code {
	case StatusNoSuchFile:
		return target == fs.ErrNotExist
	case StatusPermissionDenied:
		return target == fs.ErrPermission
	case StatusOpUnsupported:
		return target == ErrUnsupported
	}
	return false
}

// statusErr decodes a STATUS body: nil for OK, io.EOF for EOF.
func statusErr(d *decoder) error {
	code := d.u32()
	msg := d.bytes()
	if d.err != nil {
		// The message and language tag are optional in practice.
		d.err = nil
	}
	switch code {
	case StatusOK:
		return nil
	case StatusEOF:
		return io.EOF
	}
	if len(msg) > 256 {
		msg = msg[:256]
	}
	return &StatusError{Code: code, Msg: string(msg)}
}
