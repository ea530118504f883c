package nodes

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A node that answers a command with endless output is cut off at
// maxOutput bytes with an error saying so, long before commandTimeout, and
// the command is killed on the node.
func TestRunCapsOutput(t *testing.T) {
	d := startSSHD(t, sshdOptions{})
	e, _, _ := newExecutor(t)
	cfg := d.config("root", false)
	cfg.CommandTimeout = 10 * time.Minute // a timeout would be a different error
	ctx := context.Background()
	// allocated runs fn in one pass and returns the bytes allocated
	// meanwhile, the whole process's (x/crypto's packets included).
	allocated := func(fn func(ctx context.Context, c Conn) error) (uint64, error) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		err := e.Do(ctx, cfg, d.Addr, fn)
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc, err
	}
	// Output up to the cap is fine. Reading it is the yardstick: what the
	// transport and the buffer cost for maxOutput bytes on this build (the
	// race detector's runtime doubles it).
	full, err := allocated(func(ctx context.Context, c Conn) error {
		out, err := c.Run(ctx, `head -c "$1" /dev/zero`, strconv.Itoa(maxOutput))
		if err == nil && len(out) != maxOutput {
			t.Errorf("read %d bytes, want %d", len(out), maxOutput)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, script := range []string{`exec yes`, `exec yes >&2`} {
		alloc, err := allocated(func(ctx context.Context, c Conn) error {
			_, err := c.Run(ctx, script)
			return err
		})
		if !errors.Is(err, ErrOutputTooLarge) || errors.Is(err, ErrTimeout) ||
			!strings.Contains(err.Error(), "more than "+strconv.Itoa(maxOutput)+" bytes") {
			t.Fatalf("%s: got %v, want the output cap error", script, err)
		}
		// Cutting endless output off costs about what reading up to the
		// cap does: what the node sends past it is not kept.
		if alloc > 2*full {
			t.Errorf("%s: %d bytes allocated, reading exactly the %d byte cap took %d", script, alloc, maxOutput, full)
		}
		for i := 0; len(d.descendants(t, "yes")) > 0; i++ {
			if i == 200 {
				t.Fatalf("%s: yes still runs on the node: %v", script, d.descendants(t, "yes"))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// And the connection still serves.
	if err := e.Do(ctx, cfg, d.Addr, func(ctx context.Context, c Conn) error {
		_, err := c.Run(ctx, "true")
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
