package status

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

func TestFetchRoundTrip(t *testing.T) {
	store := mixedStore()
	h := newHandler(store, testConfig, logr.Discard(), func() time.Time { return testNow })
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, addr := range []string{strings.TrimPrefix(srv.URL, "http://"), srv.URL, srv.URL + "/"} {
		got, err := Fetch(ctx, addr)
		if err != nil {
			t.Fatalf("Fetch(%q): %v", addr, err)
		}
		want := Build(store, testConfig(), testNow)
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		if !bytes.Equal(gj, wj) {
			t.Errorf("Fetch(%q) differs from Build:\n got %s\nwant %s", addr, gj, wj)
		}
	}
}

func TestFetchErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	notJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("<html>hello</html>"))
	}))
	t.Cleanup(notJSON.Close)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "rendering status page failed", http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedAddr := closed.Listener.Addr().String()
	closed.Close()

	for _, tc := range []struct{ addr, want string }{
		{"", "no address given"},
		{"host:1/path", "neither HOST:PORT nor an http(s) URL"},
		{notJSON.URL, "not a registry-operator status document"},
		{failing.URL, "500 Internal Server Error: rendering status page failed"},
		{closedAddr, "is the operator running with --listen on that address?"},
	} {
		_, err := Fetch(ctx, tc.addr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Fetch(%q) = %v, want an error containing %q", tc.addr, err, tc.want)
		}
	}
}

func TestRenderGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := Render(&buf, Build(mixedStore(), testConfig(), testNow)); err != nil {
		t.Fatal(err)
	}
	golden(t, "status-mixed.txt", buf.Bytes())
}

func TestRenderInSyncAndControlCharacters(t *testing.T) {
	store := healthyStore()
	store.SetContact("198.18.0.14", true, testNow, "")
	var buf bytes.Buffer
	if err := Render(&buf, Build(store, testConfig(), testNow)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "IN SYNC: the cluster matches the spec.") {
		t.Errorf("healthy rendering lacks the verdict:\n%s", buf.String())
	}

	store.SetContact("198.18.0.11", false, testNow, "boom\x1b[2J\x1b]0;owned\x07\nsecond line")
	buf.Reset()
	if err := Render(&buf, Build(store, testConfig(), testNow)); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.ContainsAny(out, "\x1b\x07") {
		t.Errorf("terminal control characters passed through:\n%q", out)
	}
	if !strings.Contains(out, "  - node 198.18.0.11: unreachable: boom[2J]0;owned second line\n") {
		t.Errorf("sanitised item missing:\n%s", out)
	}
}
