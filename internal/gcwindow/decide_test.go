package gcwindow

import (
	"errors"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/registry-operator/registry-operator/internal/cron"
)

// Sunday 2026-12-06 03:00 UTC is the weekly run of "0 3 * * 0".
var (
	due     = time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	lastRun = due.AddDate(0, 0, -7)
	weekly  = cron.MustParse("0 3 * * 0")
	ok      = Blockers{Instances: 1, DataAgent: "10.0.0.5"}
)

const runID = "gc-20261206T030000Z"

func base() Inputs {
	return Inputs{Schedule: weekly, MaxReadOnly: 30 * time.Minute, GCTimeout: 20 * time.Minute, LastRun: lastRun, Blockers: ok}
}

func window(p Phase) *Window {
	return &Window{Version: Version, RunID: runID, Phase: p, Reason: "scheduled", OpenedAt: due,
		Deadline: due.Add(30 * time.Minute), CollectingSince: due.Add(time.Minute)}
}

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name   string
		now    time.Time
		edit   func(*Inputs)
		kind   Kind
		phase  Phase  // of the returned record; "" for none
		result Result // of the returned record
		status string // a part of the status line
	}{
		{name: "no schedule", now: due, edit: func(in *Inputs) { in.Schedule = nil },
			kind: None, status: "no garbage collection scheduled"},
		{name: "not due", now: due.Add(-time.Minute), kind: None, status: "next garbage collection at 2026-12-06T03:00:00Z"},
		{name: "due", now: due, kind: Open, phase: PhaseOpening, status: "making the registry read-only"},
		{name: "overdue runs once", now: due.AddDate(0, 0, 20), kind: Open, phase: PhaseOpening},
		{name: "certificate restart", now: due, edit: func(in *Inputs) { in.Blockers.CertificateRestart = true },
			kind: None, status: "not started: a certificate restart is under way"},
		{name: "CA rotation", now: due, edit: func(in *Inputs) { in.Blockers.CARotation = true },
			kind: None, status: "not started: a CA rotation is under way"},
		{name: "two instances", now: due, edit: func(in *Inputs) { in.Blockers.Instances = 2 },
			kind: None, status: "2 registry instances run; garbage collection needs exactly one"},
		{name: "no instance", now: due, edit: func(in *Inputs) { in.Blockers.Instances = 0 },
			kind: None, status: "no registry instance runs"},
		{name: "unknown data agent", now: due, edit: func(in *Inputs) { in.Blockers.DataAgent = "" },
			kind: None, status: "the agent holding the registry's data is unknown"},
		{name: "no maxReadOnly", now: due, edit: func(in *Inputs) { in.MaxReadOnly = 0 },
			kind: None, status: "maxReadOnly (0s) and the garbage-collect timeout (20m0s) must be positive"},
		{name: "no GC timeout", now: due, edit: func(in *Inputs) { in.GCTimeout = -time.Second },
			kind: None, status: "must be positive"},
		{name: "stopping before opening", now: due, edit: func(in *Inputs) { in.Stopping = true },
			kind: None, status: "the operator is stopping"},

		{name: "opening, read-only not requested yet", now: due, edit: own(PhaseOpening),
			kind: DeployReadOnly, phase: PhaseOpening},
		{name: "opening, read-only requested", now: due, edit: own(PhaseOpening, func(in *Inputs) { in.Registry.ReadOnlyRequested = true }),
			kind: Wait, phase: PhaseWaiting, status: "waiting until the registry refuses uploads"},
		{name: "waiting, uploads still accepted", now: due.Add(time.Minute), edit: own(PhaseWaiting, readOnlyRequested),
			kind: Wait, phase: PhaseWaiting},
		{name: "waiting, uploads refused", now: due.Add(time.Minute), edit: own(PhaseWaiting, readOnlyRequested, refused),
			kind: Collect, phase: PhaseCollecting, status: "running garbage-collect"},
		{name: "collecting", now: due.Add(5 * time.Minute), edit: own(PhaseCollecting, readOnlyRequested, refused, running),
			kind: Wait, phase: PhaseCollecting},
		{name: "collecting done", now: due.Add(5 * time.Minute),
			edit: own(PhaseCollecting, readOnlyRequested, refused, func(in *Inputs) { in.GC.Done = true }),
			kind: Close, phase: PhaseClosing, result: ResultSuccess, status: "restoring writes: garbage-collect finished"},
		{name: "collecting failed", now: due.Add(5 * time.Minute),
			edit: own(PhaseCollecting, readOnlyRequested, refused, func(in *Inputs) { in.GC.Err = errors.New("exit status 1") }),
			kind: Close, phase: PhaseClosing, result: ResultFailed, status: "garbage-collect failed: exit status 1"},
		{name: "collecting timed out", now: due.Add(21 * time.Minute), edit: own(PhaseCollecting, readOnlyRequested, refused, running),
			kind: Close, phase: PhaseClosing, result: ResultTimeout, status: "did not finish within 20m0s"},
		{name: "collecting, command lost", now: due.Add(5 * time.Minute), edit: own(PhaseCollecting, readOnlyRequested, refused),
			kind: Close, phase: PhaseClosing, result: ResultFailed, status: "not running"},
		{name: "maxReadOnly elapsed while collecting", now: due.Add(30 * time.Minute),
			edit: own(PhaseCollecting, readOnlyRequested, refused, running, func(in *Inputs) { in.GCTimeout = time.Hour }),
			kind: Close, phase: PhaseClosing, result: ResultAborted, status: "maxReadOnly (30m0s) elapsed"},
		{name: "maxReadOnly elapsed while waiting", now: due.Add(30 * time.Minute), edit: own(PhaseWaiting, readOnlyRequested),
			kind: Close, phase: PhaseClosing, result: ResultAborted, status: "maxReadOnly"},
		{name: "stopping while collecting", now: due.Add(5 * time.Minute),
			edit: own(PhaseCollecting, readOnlyRequested, refused, running, func(in *Inputs) { in.Stopping = true }),
			kind: Close, phase: PhaseClosing, result: ResultAborted, status: "stopping or lost leadership"},
		{name: "a previous operator's window, collecting", now: due.Add(5 * time.Minute),
			edit: func(in *Inputs) { in.Window = window(PhaseCollecting); in.Registry.ReadOnlyRequested = true },
			kind: Close, phase: PhaseClosing, result: ResultAborted, status: "left open by a previous operator"},
		{name: "a previous operator's window, opening", now: due.Add(time.Minute),
			edit: func(in *Inputs) { in.Window = window(PhaseOpening) },
			kind: Close, phase: PhaseClosing, result: ResultAborted},
		{name: "a previous operator's window, even while refused to start", now: due.Add(time.Minute),
			edit: func(in *Inputs) { in.Window = window(PhaseWaiting); in.Blockers.CARotation = true },
			kind: Close, phase: PhaseClosing, result: ResultAborted},

		{name: "closing, still read-only", now: due.Add(6 * time.Minute), edit: closingWith(ResultSuccess, readOnlyRequested, refused),
			kind: Close, phase: PhaseClosing, result: ResultSuccess},
		{name: "closing, writable requested, not served yet", now: due.Add(6 * time.Minute), edit: closingWith(ResultSuccess),
			kind: Wait, phase: PhaseClosing, result: ResultSuccess, status: "waiting until the registry accepts uploads again"},
		{name: "closing past the deadline says so", now: due.Add(40 * time.Minute), edit: closingWith(ResultAborted),
			kind: Wait, phase: PhaseClosing, result: ResultAborted, status: "read-only 10m0s past maxReadOnly"},
		{name: "closed", now: due.Add(7 * time.Minute), edit: closingWith(ResultSuccess, accepted),
			kind: Finish, phase: PhaseClosing, result: ResultSuccess, status: "writes restored; success"},
		{name: "a previous operator's closing window is finished too", now: due.Add(7 * time.Minute),
			edit: func(in *Inputs) { closingWith(ResultFailed, accepted)(in); in.OwnRunID = "" },
			kind: Finish, phase: PhaseClosing, result: ResultFailed},
		{name: "stopping while closing goes on closing", now: due.Add(7 * time.Minute),
			edit: closingWith(ResultSuccess, readOnlyRequested, func(in *Inputs) { in.Stopping = true }),
			kind: Close, phase: PhaseClosing, result: ResultSuccess},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base()
			if tc.edit != nil {
				tc.edit(&in)
			}
			before := in.Window
			var snapshot Window
			if before != nil {
				snapshot = *before
			}
			a := Decider{Clock: clocktesting.NewFakePassiveClock(tc.now)}.Decide(in)
			if a.Kind != tc.kind {
				t.Fatalf("kind %s, want %s (status %q)", a.Kind, tc.kind, a.Status)
			}
			if !strings.Contains(a.Status, tc.status) {
				t.Errorf("status %q, want it to contain %q", a.Status, tc.status)
			}
			if tc.phase == "" {
				if a.Window != nil {
					t.Errorf("a record %+v with %s", a.Window, a.Kind)
				}
			} else if a.Window == nil || a.Window.Phase != tc.phase || a.Window.Result != tc.result {
				t.Errorf("record %+v, want phase %s result %q", a.Window, tc.phase, tc.result)
			}
			if before != nil && *before != snapshot {
				t.Error("Decide changed its input record")
			}
			if in.Schedule != nil && a.Next.IsZero() {
				t.Error("no next run time with a schedule")
			}
		})
	}
}

func own(p Phase, edits ...func(*Inputs)) func(*Inputs) {
	return func(in *Inputs) {
		in.Window, in.OwnRunID = window(p), runID
		for _, e := range edits {
			e(in)
		}
	}
}

func closingWith(r Result, edits ...func(*Inputs)) func(*Inputs) {
	return own(PhaseClosing, append([]func(*Inputs){func(in *Inputs) {
		in.Window.Result, in.Window.CloseReason = r, "garbage-collect finished"
	}}, edits...)...)
}

func readOnlyRequested(in *Inputs) { in.Registry.ReadOnlyRequested = true }
func refused(in *Inputs)           { in.Registry.UploadsRefused = true }
func accepted(in *Inputs)          { in.Registry.UploadsAccepted = true }
func running(in *Inputs)           { in.GC.Running = true }

// The record written before the window opens holds what a new operator
// needs to close it: its deadline is maxReadOnly after it opened.
func TestOpenRecord(t *testing.T) {
	now := due.Add(90 * time.Second)
	a := Decider{Clock: clocktesting.NewFakePassiveClock(now)}.Decide(base())
	w := a.Window
	if a.Kind != Open || w == nil {
		t.Fatalf("%+v", a)
	}
	if w.Version != Version || w.RunID != "gc-20261206T030130Z" || !w.OpenedAt.Equal(now) || !w.Deadline.Equal(now.Add(30*time.Minute)) {
		t.Errorf("record %+v", w)
	}
	if !strings.Contains(w.Reason, `scheduled "0 3 * * 0", due 2026-12-06T03:00:00Z, on agent 10.0.0.5`) {
		t.Errorf("reason %q", w.Reason)
	}
	// The run that opens counts as the last: the next is a week on.
	if want := due.AddDate(0, 0, 7); !a.Next.Equal(want) {
		t.Errorf("next %s, want %s", a.Next, want)
	}
	if a.RequeueAfter <= 0 {
		t.Error("an opened window is not looked at again")
	}
}

// A whole run, step by step, with the clock moving: every action is fed
// back as the next input, the way the reconciler will.
func TestRunThrough(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(due)
	d := Decider{Clock: clk}
	in := base()
	var kinds []Kind
	for range 12 {
		a := d.Decide(in)
		kinds = append(kinds, a.Kind)
		switch a.Kind {
		case Open:
			in.OwnRunID = a.Window.RunID
		case DeployReadOnly:
			in.Registry.ReadOnlyRequested = true
		case Wait:
			if a.Window.Phase == PhaseWaiting {
				in.Registry.UploadsRefused = true
			}
		case Collect:
			in.GC.Running = true
		case Close:
			in.Registry.ReadOnlyRequested, in.Registry.UploadsRefused, in.GC = false, false, GC{}
		case Finish:
			in.Window, in.LastRun = nil, a.Window.OpenedAt
			continue
		case None:
			if want := due.AddDate(0, 0, 7); !a.Next.Equal(want) {
				t.Errorf("after the run, next %s, want %s", a.Next, want)
			}
			got := strings.Join(kindStrings(kinds), " ")
			if want := "open deploy-read-only wait collect wait close wait finish none"; got != want {
				t.Errorf("steps %s, want %s", got, want)
			}
			return
		}
		if a.Window != nil {
			w := *a.Window
			in.Window = &w
		}
		if a.Kind == Wait && in.Window.Phase == PhaseCollecting {
			in.GC = GC{Done: true}
		}
		if a.Kind == Wait && in.Window.Phase == PhaseClosing {
			in.Registry.UploadsAccepted = true // served writable by the next look
		}
		clk.SetTime(clk.Now().Add(Poll))
	}
	t.Fatalf("no end after %v", kinds)
}

func kindStrings(ks []Kind) []string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return s
}
