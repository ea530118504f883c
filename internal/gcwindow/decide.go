package gcwindow

import (
	"fmt"
	"time"

	"k8s.io/utils/clock"

	"github.com/registry-operator/registry-operator/internal/cron"
)

// Kind is what the caller is to do.
type Kind string

const (
	// None: nothing to do now; look again after RequeueAfter.
	None Kind = "none"
	// Open: persist Action.Window, then deploy the registry read-only.
	Open Kind = "open"
	// DeployReadOnly: read-only is not requested yet; request it.
	DeployReadOnly Kind = "deploy-read-only"
	// Wait: persist Action.Window (its phase may have moved on) and look
	// again after RequeueAfter.
	Wait Kind = "wait"
	// Collect: persist Action.Window, then start garbage-collect.
	Collect Kind = "collect"
	// Close: persist Action.Window (phase closing), stop garbage-collect
	// if it runs, and deploy the registry writable.
	Close Kind = "close"
	// Finish: writes are served again; delete the record and count the run
	// with Action.Window.Result.
	Finish Kind = "finish"
)

// Blockers are what keeps a run from starting.
type Blockers struct {
	CertificateRestart bool
	CARotation         bool
	// Instances is how many registry instances run (or are asked for).
	Instances int
	// DataAgent is the agent holding dataHostPath; "" when unknown.
	DataAgent string
}

// Registry is what the caller observed of the served registry.
type Registry struct {
	// ReadOnlyRequested: the deployed app asks for read-only.
	ReadOnlyRequested bool
	// UploadsRefused: an upload probe was answered 405.
	UploadsRefused bool
	// UploadsAccepted: an upload probe was accepted.
	UploadsAccepted bool
}

// GC is the state of the garbage-collect command this process started.
type GC struct {
	Running bool
	Done    bool
	Err     error
}

// Inputs is everything a decision looks at.
type Inputs struct {
	// Schedule is nil when no GC is scheduled.
	Schedule    *cron.Schedule
	MaxReadOnly time.Duration
	GCTimeout   time.Duration
	// LastRun is when the last window opened, or when the schedule was
	// first seen: the next run is the schedule's first minute after it.
	LastRun time.Time
	// Window is the persisted record; nil when none.
	Window *Window
	// OwnRunID is the run this process opened; "" when none. A record of
	// another run was left by a previous operator and is closed first.
	OwnRunID string
	// Stopping: SIGTERM or loss of leadership.
	Stopping bool
	Blockers Blockers
	Registry Registry
	GC       GC
}

// Action is a decision.
type Action struct {
	Kind Kind
	// Window is the record to persist before acting; nil with None. With
	// Finish it is the closed record (its Result and OpenedAt are the run's
	// to count and the next LastRun), which the caller deletes.
	Window *Window
	// Status is one line for the status page and logs.
	Status string
	// Next is the next scheduled run; zero when none is scheduled.
	Next time.Time
	// RequeueAfter is when to decide again; 0 means at the next event.
	RequeueAfter time.Duration
}

// Poll is how often an open window is looked at again.
const Poll = 5 * time.Second

// Retry is how soon a due run that was refused is looked at again.
const Retry = time.Minute

// Decider makes decisions against a clock.
type Decider struct{ Clock clock.PassiveClock }

// Decide returns what to do now.
func (d Decider) Decide(in Inputs) Action {
	now := d.Clock.Now().UTC()
	var a Action
	if in.Window == nil {
		a = d.idle(in, now)
	} else {
		a = d.open(in, *in.Window, now)
	}
	if in.Schedule != nil {
		// The run an open window belongs to is the last one.
		last := in.LastRun
		if a.Window != nil {
			last = a.Window.OpenedAt
		}
		a.Next = in.Schedule.Next(last)
	}
	return a
}

// idle: no window; open one when a run is due and nothing blocks it.
func (d Decider) idle(in Inputs, now time.Time) Action {
	if in.Schedule == nil {
		return Action{Kind: None, Status: "no garbage collection scheduled"}
	}
	due := in.Schedule.Next(in.LastRun)
	if now.Before(due) {
		return Action{Kind: None, Status: "next garbage collection at " + due.Format(time.RFC3339), RequeueAfter: due.Sub(now)}
	}
	if in.Stopping {
		return Action{Kind: None, Status: "garbage collection due, not started: the operator is stopping"}
	}
	if in.MaxReadOnly <= 0 || in.GCTimeout <= 0 {
		// Without both limits nothing would bound the read-only window.
		return Action{Kind: None, Status: fmt.Sprintf("garbage collection due, not started: maxReadOnly (%s) and the garbage-collect timeout (%s) must be positive", in.MaxReadOnly, in.GCTimeout), RequeueAfter: Retry}
	}
	if why := in.Blockers.refusal(); why != "" {
		return Action{Kind: None, Status: "garbage collection due since " + due.Format(time.RFC3339) + ", not started: " + why, RequeueAfter: Retry}
	}
	w := &Window{
		Version:  Version,
		RunID:    "gc-" + now.Format("20060102T150405Z"),
		Phase:    PhaseOpening,
		Reason:   fmt.Sprintf("scheduled %q, due %s, on agent %s", in.Schedule.String(), due.Format(time.RFC3339), in.Blockers.DataAgent),
		OpenedAt: now,
		Deadline: now.Add(in.MaxReadOnly),
	}
	return Action{Kind: Open, Window: w, Status: "garbage collection " + w.RunID + ": making the registry read-only", RequeueAfter: Poll}
}

// refusal says why a run may not start, or "".
func (b Blockers) refusal() string {
	switch {
	case b.CertificateRestart:
		return "a certificate restart is under way"
	case b.CARotation:
		return "a CA rotation is under way"
	case b.Instances > 1:
		return fmt.Sprintf("%d registry instances run; garbage collection needs exactly one (a read-only window cannot cover the others' uploads)", b.Instances)
	case b.Instances < 1:
		return "no registry instance runs"
	case b.DataAgent == "":
		return "the agent holding the registry's data is unknown"
	}
	return ""
}

// open: a window is recorded; move it on, or close it.
func (d Decider) open(in Inputs, w Window, now time.Time) Action {
	if w.Phase == PhaseClosing {
		return closing(in, w, now)
	}
	switch {
	case w.RunID != in.OwnRunID:
		return closeWindow(w, ResultAborted, "left open by a previous operator (restart or new leader)")
	case in.Stopping:
		return closeWindow(w, ResultAborted, "the operator is stopping or lost leadership")
	case !now.Before(w.Deadline):
		return closeWindow(w, ResultAborted, fmt.Sprintf("maxReadOnly (%s) elapsed", w.Deadline.Sub(w.OpenedAt)))
	}
	switch w.Phase {
	case PhaseOpening:
		if !in.Registry.ReadOnlyRequested {
			return Action{Kind: DeployReadOnly, Window: &w, Status: status(w, "making the registry read-only"), RequeueAfter: Poll}
		}
		w.Phase = PhaseWaiting
		return Action{Kind: Wait, Window: &w, Status: status(w, "waiting until the registry refuses uploads"), RequeueAfter: Poll}
	case PhaseWaiting:
		if !in.Registry.UploadsRefused {
			return Action{Kind: Wait, Window: &w, Status: status(w, "waiting until the registry refuses uploads"), RequeueAfter: Poll}
		}
		w.Phase, w.CollectingSince = PhaseCollecting, now
		return Action{Kind: Collect, Window: &w, Status: status(w, "running garbage-collect"), RequeueAfter: Poll}
	default: // PhaseCollecting
		return collecting(in, w, now)
	}
}

func collecting(in Inputs, w Window, now time.Time) Action {
	switch {
	case in.GC.Err != nil:
		return closeWindow(w, ResultFailed, "garbage-collect failed: "+in.GC.Err.Error())
	case in.GC.Done:
		return closeWindow(w, ResultSuccess, "garbage-collect finished")
	case in.GC.Running && now.Sub(w.CollectingSince) >= in.GCTimeout:
		return closeWindow(w, ResultTimeout, fmt.Sprintf("garbage-collect did not finish within %s", in.GCTimeout))
	case !in.GC.Running:
		// The record says collecting but nothing runs here: the command
		// was lost with its connection.
		return closeWindow(w, ResultFailed, "garbage-collect is not running and did not report an end")
	}
	return Action{Kind: Wait, Window: &w, Status: status(w, "running garbage-collect"), RequeueAfter: Poll}
}

// closeWindow moves w to closing with its result.
func closeWindow(w Window, r Result, why string) Action {
	w.Phase, w.Result, w.CloseReason = PhaseClosing, r, why
	return Action{Kind: Close, Window: &w, Status: status(w, "restoring writes: "+why), RequeueAfter: Poll}
}

// closing: writes are being restored; the record goes when the registry
// accepts uploads again.
func closing(in Inputs, w Window, now time.Time) Action {
	if in.Registry.ReadOnlyRequested {
		return Action{Kind: Close, Window: &w, Status: status(w, "restoring writes: "+w.CloseReason), RequeueAfter: Poll}
	}
	if !in.Registry.UploadsAccepted {
		msg := "waiting until the registry accepts uploads again"
		if !now.Before(w.Deadline) {
			msg += fmt.Sprintf(" (read-only %s past maxReadOnly)", now.Sub(w.Deadline))
		}
		return Action{Kind: Wait, Window: &w, Status: status(w, msg), RequeueAfter: Poll}
	}
	return Action{Kind: Finish, Window: &w, Status: status(w, "writes restored; "+string(w.Result)+": "+w.CloseReason)}
}

func status(w Window, msg string) string { return "garbage collection " + w.RunID + ": " + msg }
