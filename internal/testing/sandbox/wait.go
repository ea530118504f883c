package sandbox

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// Check looks at the sandbox once: ok when the condition holds, found
// says what it saw (shown when the wait times out).
type Check func(ctx context.Context) (ok bool, found string)

// WaitError is a condition that did not hold in time.
type WaitError struct {
	What    string
	Timeout time.Duration
	Found   string
	LogTail string
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("not within %s:\n  expected: %s\n  found:    %s\n--- operator log (last 30 lines) ---\n%s\n---",
		e.Timeout, e.What, indent(e.Found), e.LogTail)
}

// indent lines up the continuation lines of a multi-line "found".
func indent(s string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n            ")
}

// Wait polls check every 250ms until it holds, ctx ends or timeout
// passes. The error names what was expected (what), what the last look
// found, and ends with the operator's last 30 log lines.
func (s *Sandbox) Wait(ctx context.Context, timeout time.Duration, what string, check Check) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	found := "(not checked)"
	for {
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		ok, f := check(cctx)
		ccancel()
		if ok {
			return nil
		}
		if f != "" {
			found = f
		}
		select {
		case <-ctx.Done():
			return &WaitError{What: what, Timeout: timeout, Found: found, LogTail: s.LogTail(30)}
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Eventually is Wait for tests: it fails the test (t.Fatal) with the same
// message when the condition does not hold in time.
func (s *Sandbox) Eventually(t testing.TB, timeout time.Duration, what string, check Check) {
	t.Helper()
	if err := s.Wait(context.Background(), timeout, what, check); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Fail fails the test now with what was expected and what was found,
// followed by the operator's last 30 log lines.
func (s *Sandbox) Fail(t testing.TB, expected, found string) {
	t.Helper()
	t.Fatalf("\n  expected: %s\n  found:    %s\n--- operator log (last 30 lines) ---\n%s\n---",
		expected, indent(found), s.LogTail(30))
}

// StartT starts a sandbox for a test and closes it in t.Cleanup, failed
// test or not; SIGINT/SIGTERM also tear it down. It skips the test when
// not root; any other failure to start fails it.
func StartT(t testing.TB, opts Options) *Sandbox {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the sandbox builds network namespaces and runs sshd")
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	opts.HandleSignals = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("start the sandbox: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("operator log (last 30 lines):\n%s", s.LogTail(30))
		}
		if err := s.Close(); err != nil {
			t.Errorf("tear down the sandbox: %v", err)
		}
	})
	return s
}
