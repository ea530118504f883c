package manager

import "time"

// Observer is told what the manager does, so that metrics and status pages
// follow the reconcilers without the manager knowing either. Workers call
// it concurrently and wait for it: it must be safe for that, and quick.
type Observer interface {
	// Enabled reports whether reconciler name runs, on Add and on every
	// resync (a config change may switch it on or off).
	Enabled(name string, on bool)
	// Finished reports one reconcile's outcome. A disabled reconciler's
	// skipped keys are not reported.
	Finished(r Report)
}

// Report is one reconcile's outcome.
type Report struct {
	Reconciler, Key string
	Result          Result
	Err             error // a recovered panic is an error too
	Start           time.Time
	Duration        time.Duration
}

// End is when the reconcile returned.
func (r Report) End() time.Time { return r.Start.Add(r.Duration) }

func (m *Manager) notifyEnabled(name string, on bool) {
	for _, o := range m.cfg.Observers {
		o.Enabled(name, on)
	}
}

func (m *Manager) notifyFinished(r Report) {
	for _, o := range m.cfg.Observers {
		o.Finished(r)
	}
}
