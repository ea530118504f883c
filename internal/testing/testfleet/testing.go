package testfleet

import (
	"context"
	"os"
	"testing"
	"time"
)

// StartT starts a fleet for a test and closes it in t.Cleanup, failed test
// or not. It skips the test when not root; any other failure to start
// (missing sshd, say) fails it, so a broken environment never passes.
func StartT(t testing.TB, opts Options) *Fleet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: testfleet builds network namespaces and runs sshd")
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("start test fleet: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("tear down test fleet: %v", err)
		}
	})
	return f
}
