package testfleet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestCleanupRemovesLeftoversOfKilledOwner starts a fleet in a child process,
// kills the child with SIGKILL (as a test timeout would), and checks that
// Cleanup removes what it left, while a live run of the same prefix stays.
func TestCleanupRemovesLeftoversOfKilledOwner(t *testing.T) {
	if os.Getenv("TESTFLEET_CHILD") == "1" {
		childHoldFleet()
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: testfleet builds network namespaces and runs sshd")
	}
	ctx := testCtx(t)
	const prefix = "rofk"
	live := StartT(t, Options{N: 1, Prefix: prefix})
	// A live run kept under another base directory has no record where
	// Cleanup looks; its running hosts must still protect it.
	otherBase := filepath.Join("/run", "testfleet-other-"+newRunID())
	t.Cleanup(func() { os.RemoveAll(otherBase) })
	other := StartT(t, Options{N: 1, Prefix: prefix, BaseDir: otherBase})

	cmd := exec.Command(os.Args[0], "-test.run=^TestCleanupRemovesLeftoversOfKilledOwner$")
	cmd.Env = append(os.Environ(), "TESTFLEET_CHILD=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var runID, dir string
	if _, err := fmt.Fscanf(stdout, "READY %s %s\n", &runID, &dir); err != nil {
		t.Fatalf("child fleet did not start: %v", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the killed run left no directory to clean (%v): the test would prove nothing", err)
	}
	if ns, _ := filepath.Glob("/run/netns/" + prefix + "-" + runID + "-*"); len(ns) != 2 {
		t.Fatalf("the killed run left %d namespaces, want 2", len(ns))
	}

	if err := Cleanup(ctx, prefix); err != nil {
		t.Fatal(err)
	}
	assertRunGone(t, prefix, runID, dir)
	for _, f := range []*Fleet{live, other} {
		if out, err := sshCLI(ctx, f, "root", f.Host(0).Address, "hostname"); err != nil || out != f.Host(0).Name+"\n" {
			t.Errorf("Cleanup harmed live run %s: %q, %v", f.RunID, out, err)
		}
	}
}

func childHoldFleet() {
	f, err := Start(context.Background(), Options{N: 2, Prefix: "rofk"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	fmt.Printf("READY %s %s\n", f.RunID, f.Dir)
	select {}
}
