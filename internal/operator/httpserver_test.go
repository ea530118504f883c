package operator

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// With the limit reached, one more connection is not served until an open
// one closes; then it is.
func TestHTTPConnectionLimit(t *testing.T) {
	const limit = 2
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, 16)
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) }))
	srv.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			accepted <- struct{}{}
		}
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(newLimitListener(ln, limit)) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var idle []net.Conn
	for range limit {
		idle = append(idle, dial()) // connected, never send a request
		<-accepted
	}
	extra := dial()
	if _, err := extra.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// Not accepted while the others hold every slot: no answer arrives.
	must(t, extra.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
	rd := bufio.NewReader(extra)
	if _, err := rd.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection %d was served while %d were open (read: %v)", limit+1, limit, err)
	}
	idle[0].Close()
	must(t, extra.SetReadDeadline(time.Time{}))
	resp, err := http.ReadResponse(rd, nil)
	if err != nil {
		t.Fatalf("after a slot freed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestHTTPServerTimeouts(t *testing.T) {
	srv := newHTTPServer(http.NotFoundHandler())
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 {
		t.Fatalf("a timeout is unset: %+v", srv)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
