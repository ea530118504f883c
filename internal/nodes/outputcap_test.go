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
	for _, script := range []string{`exec yes`, `exec yes >&2`} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		err := e.Do(ctx, cfg, d.Addr, func(ctx context.Context, c Conn) error {
			_, err := c.Run(ctx, script)
			return err
		})
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrOutputTooLarge) || errors.Is(err, ErrTimeout) ||
			!strings.Contains(err.Error(), "more than "+strconv.Itoa(maxOutput)+" bytes") {
			t.Fatalf("%s: got %v, want the output cap error", script, err)
		}
		// Buffering up to the cap allocates a few times the cap at most.
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8*maxOutput {
			t.Errorf("%s: %d bytes allocated for a %d byte cap", script, alloc, maxOutput)
		}
		for i := 0; len(d.descendants(t, "yes")) > 0; i++ {
			if i == 200 {
				t.Fatalf("%s: yes still runs on the node: %v", script, d.descendants(t, "yes"))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Output up to the cap is fine, and the connection still serves.
	err := e.Do(ctx, cfg, d.Addr, func(ctx context.Context, c Conn) error {
		out, err := c.Run(ctx, `head -c "$1" /dev/zero`, strconv.Itoa(maxOutput))
		if err == nil && len(out) != maxOutput {
			t.Errorf("read %d bytes, want %d", len(out), maxOutput)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
