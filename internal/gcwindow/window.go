// Package gcwindow decides, step by step, how a registry garbage
// collection runs: inside a read-only window that is recorded before it
// opens and closed on every way out. It does no I/O: the caller observes
// the registry, persists the window record the decision returns before it
// acts, and carries out the action.
package gcwindow

import (
	"encoding/json"
	"fmt"
	"time"
)

// Phase is where a window stands.
type Phase string

const (
	// PhaseOpening: the read-only deployment is being requested.
	PhaseOpening Phase = "opening"
	// PhaseWaiting: read-only was requested; the served registry does not
	// refuse uploads yet.
	PhaseWaiting Phase = "waiting"
	// PhaseCollecting: garbage-collect runs on the data agent.
	PhaseCollecting Phase = "collecting"
	// PhaseClosing: writes are being restored.
	PhaseClosing Phase = "closing"
)

// Result is how a run ended, for the runs counter.
type Result string

const (
	ResultSuccess Result = "success"
	ResultFailed  Result = "failed"
	ResultTimeout Result = "timeout"
	// ResultAborted: closed before garbage-collect finished, by
	// maxReadOnly, a shutdown, a leadership loss or a restart.
	ResultAborted Result = "aborted"
)

// Version is the window record's format.
const Version = 1

// Window is the record of an open window. It is persisted before the
// window opens and at every phase change, so an operator that starts (after
// a crash, or as the new leader) finds it and closes it first.
type Window struct {
	Version int    `json:"version"`
	RunID   string `json:"runID"`
	Phase   Phase  `json:"phase"`
	// Reason is why the window opened ("scheduled 0 3 * * 0").
	Reason   string    `json:"reason"`
	OpenedAt time.Time `json:"openedAt"`
	// Deadline is OpenedAt + maxReadOnly: writes come back then, whatever
	// garbage-collect is doing.
	Deadline time.Time `json:"deadline"`
	// CollectingSince is when garbage-collect started.
	CollectingSince time.Time `json:"collectingSince,omitzero"`
	// Result and CloseReason are set when the window starts closing.
	Result      Result `json:"result,omitempty"`
	CloseReason string `json:"closeReason,omitempty"`
}

// Encode returns the record as JSON.
func Encode(w Window) ([]byte, error) {
	w.Version = Version
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode GC window record: %w", err)
	}
	return b, nil
}

// Decode reads a record Encode wrote. A record of another version, or one
// missing what closing needs, is an error: the caller must not guess, and
// should report it and restore writes.
func Decode(b []byte) (Window, error) {
	var w Window
	if err := json.Unmarshal(b, &w); err != nil {
		return Window{}, fmt.Errorf("GC window record: %w", err)
	}
	if w.Version != Version {
		return Window{}, fmt.Errorf("GC window record has version %d, this operator reads version %d", w.Version, Version)
	}
	switch w.Phase {
	case PhaseOpening, PhaseWaiting, PhaseCollecting, PhaseClosing:
	default:
		return Window{}, fmt.Errorf("GC window record %s: unknown phase %q", w.RunID, w.Phase)
	}
	if w.RunID == "" || w.OpenedAt.IsZero() || w.Deadline.IsZero() {
		return Window{}, fmt.Errorf("GC window record %q: runID, openedAt and deadline are required", w.RunID)
	}
	return w, nil
}
