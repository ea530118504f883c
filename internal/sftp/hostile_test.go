package sftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

// scripted is a server that answers with fixed bytes, whatever is asked.
type scripted struct {
	out bytes.Reader
}

func (s *scripted) Write(p []byte) (int, error) { return len(p), nil }
func (s *scripted) Read(p []byte) (int, error)  { return s.out.Read(p) }

func packet(typ byte, fields ...[]byte) []byte {
	body := append([]byte{typ}, bytes.Join(fields, nil)...)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func version() []byte { return packet(fxpVersion, u32(3)) }

func hostile(t *testing.T, answers ...[]byte) *Client {
	t.Helper()
	s := &scripted{}
	s.out.Reset(bytes.Join(append([][]byte{version()}, answers...), nil))
	c, err := NewClient(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func attrsBody() []byte { return append(u32(attrSize), 0, 0, 0, 0, 0, 0, 0, 7) }

func TestHostileServer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answers [][]byte
		want    string
	}{
		{"wrong id", [][]byte{packet(fxpAttrs, u32(99), attrsBody())}, "answer for request 99 came where the one for request 1 was due"},
		{"oversized length", [][]byte{binary.BigEndian.AppendUint32(nil, 1<<31)}, "more than the"},
		{"truncated packet", [][]byte{packet(fxpAttrs, u32(1), attrsBody())[:12]}, "unexpected EOF"},
		{"silent end", nil, "unexpected EOF"},
		{"wrong type", [][]byte{packet(fxpHandle, u32(1), u32(1), []byte("h"))}, "answered with packet type 102"},
		{"attrs cut short", [][]byte{packet(fxpAttrs, u32(1), u32(attrSize), []byte{0, 0})}, "malformed answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := hostile(t, tc.answers...)
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			before := ms.TotalAlloc
			_, err := c.Stat("/x")
			runtime.ReadMemStats(&ms)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			if grew := ms.TotalAlloc - before; grew > 1<<20 {
				t.Errorf("the answer made the client allocate %d bytes", grew)
			}
			// The session is broken for good: no later call reads a
			// stale answer as its own.
			if _, err2 := c.Stat("/y"); err2 == nil || !strings.Contains(err2.Error(), tc.want) {
				t.Errorf("next call: %v; want the same broken-session error", err2)
			}
		})
	}
}

func TestHostileListings(t *testing.T) {
	// OPENDIR answered, then a NAME claiming four billion entries.
	c := hostile(t,
		packet(fxpHandle, u32(1), u32(1), []byte("h")),
		packet(fxpName, u32(2), u32(0xffffffff)),
	)
	_, err := c.ReadDir("/d")
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v, want a protocol error", err)
	}
}

func TestHostileVersion(t *testing.T) {
	for name, out := range map[string][]byte{
		"version 6":     packet(fxpVersion, u32(6)),
		"not a version": packet(fxpStatus, u32(0)),
		"huge":          binary.BigEndian.AppendUint32(nil, MaxPacket+1),
	} {
		s := &scripted{}
		s.out.Reset(out)
		if _, err := NewClient(s); err == nil {
			t.Errorf("%s: the client accepted it", name)
		}
	}
	s := &scripted{}
	s.out.Reset(nil)
	if _, err := NewClient(s); !errors.Is(err, io.EOF) {
		t.Errorf("no answer: %v", err)
	}
}

// A server without fsync@openssh.com answers OP_UNSUPPORTED: a typed
// error the caller can ignore, and the session stays usable.
func TestUnsupported(t *testing.T) {
	status := func(id, code uint32) []byte {
		return packet(fxpStatus, u32(id), u32(code), u32(0), u32(0))
	}
	c := hostile(t, status(1, StatusOpUnsupported), packet(fxpAttrs, u32(2), attrsBody()))
	f := &File{c: c, handle: "h"}
	err := f.Sync()
	var se *StatusError
	if !errors.Is(err, ErrUnsupported) || !errors.As(err, &se) || se.Code != StatusOpUnsupported {
		t.Fatalf("fsync: %v; want a StatusError matching ErrUnsupported", err)
	}
	if a, err := c.Stat("/x"); err != nil || a.Size != 7 {
		t.Fatalf("the next request: %+v, %v", a, err)
	}
}
