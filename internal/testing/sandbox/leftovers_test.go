package sandbox

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// A sandbox whose owner died (kill -9) is removed by the next Cleanup:
// its operator process is killed and its directory goes; a sandbox whose
// owner lives is left alone.
func TestCleanupRemovesDeadOwnersLeftovers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: Cleanup also removes fleet leftovers")
	}
	base := t.TempDir()
	// A dead owner: a process that has exited and been reaped.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	op := exec.Command("sleep", "300")
	if err := op.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = op.Wait(); close(exited) }()
	t.Cleanup(func() { _ = op.Process.Kill(); <-exited })

	write := func(name string, r record) string {
		dir := filepath.Join(base, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(r)
		if err := os.WriteFile(filepath.Join(dir, recordFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	stale := write("e2e-dead", record{Name: "e2e", OwnerPID: dead.Process.Pid, OwnerStart: 1,
		OperatorPID: op.Process.Pid, OperatorStart: procStart(op.Process.Pid)})
	live := write("demo-live", record{Name: "demo", OwnerPID: os.Getpid(), OwnerStart: procStart(os.Getpid())})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := CleanupIn(ctx, base); err != nil {
		t.Fatalf("CleanupIn: %v", err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the dead owner's sandbox %s is still there (stat: %v)", stale, err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Error("the dead owner's operator process was not killed")
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("the live sandbox was removed: %v", err)
	}
	running, err := List(base)
	if err != nil || len(running) != 1 || running[0].Name != "demo" {
		t.Errorf("List = %+v, %v; want the live demo only", running, err)
	}
}
