// Package config holds the spec in force and reloads it when its file
// changes. A valid edit replaces the spec atomically; an invalid one is
// reported and the last good spec stays in force, so nothing on the cluster
// is touched because of it.
package config

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/registry-operator/registry-operator/internal/fileid"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
	"go.yaml.in/yaml/v3"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/metrics"
)

// PollInterval is the safety net under fsnotify: some volume types and
// editors produce no event we can see, and a valid edit must apply within 2s.
const PollInterval = time.Second

// Source is the spec in force.
type Source struct {
	path    string
	metrics *metrics.Metrics
	log     logr.Logger
	now     func() time.Time
	checks  []Check

	cur atomic.Pointer[v1alpha1.Registry]

	mu  sync.Mutex
	raw []byte
	// seen is the file's identity when it was last read: the poll
	// reads the file again only when it changed.
	seen     fileid.ID
	loadedAt time.Time
	lastErr  error
}

// Info describes the spec in force for the status page.
type Info struct {
	Path      string    `json:"path"`
	LoadedAt  time.Time `json:"loadedAt"`
	LastError string    `json:"lastError,omitempty"`
	YAML      string    `json:"yaml"`
}

// Check is a rule a reloaded spec must meet against the one in force, for
// settings that take effect at start only. An error rejects the edit like
// an invalid one: the spec in force stays, and the error is reported.
type Check func(inForce, next *v1alpha1.Registry) error

// Open loads path; the first load must succeed. Every reload after it must
// also pass checks.
func Open(path string, m *metrics.Metrics, log logr.Logger, checks ...Check) (*Source, error) {
	s := &Source{path: path, metrics: m, log: log, now: time.Now, checks: checks}
	if _, err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Registry returns the whole document in force. Never mutate it.
func (s *Source) Registry() *v1alpha1.Registry { return s.cur.Load() }

// Spec returns the spec in force. Never mutate it.
func (s *Source) Spec() *v1alpha1.Spec { return &s.cur.Load().Spec }

// Info returns what the status page shows about the config.
func (s *Source) Info() Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := Info{Path: s.path, LoadedAt: s.loadedAt}
	if s.lastErr != nil {
		in.LastError = s.lastErr.Error()
	}
	// The page is readable by anyone who reaches the port: show the spec
	// with URL user info and secret env values redacted.
	if r := s.cur.Load(); r != nil {
		if b, err := yaml.Marshal(r.Redact()); err == nil {
			in.YAML = string(b)
		}
	}
	return in
}

// Reload reads the file again. It reports changed=true when a new valid
// spec took effect; an unchanged file is a no-op.
func (s *Source) Reload() (changed bool, err error) {
	id := fileid.Stat(s.path)
	data, err := v1alpha1.ReadFile(s.path)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = id
	if err == nil && s.cur.Load() != nil && bytes.Equal(data, s.raw) {
		if s.lastErr != nil { // a bad edit was reverted: the spec in force is the file again
			s.lastErr = nil
			s.metrics.ConfigReloadSuccessful.Set(1)
		}
		return false, nil
	}
	var r *v1alpha1.Registry
	if err == nil {
		r, err = v1alpha1.Parse(data)
	}
	if err == nil {
		err = s.check(r)
	}
	if err != nil {
		s.lastErr = err
		s.metrics.ConfigReloadSuccessful.Set(0)
		return false, err
	}
	s.raw, s.lastErr, s.loadedAt = data, nil, s.now()
	s.cur.Store(r)
	s.metrics.ConfigReloadSuccessful.Set(1)
	s.metrics.ConfigReloadTimestamp.Set(float64(s.loadedAt.Unix()))
	return true, nil
}

// check applies the reload checks; the first load has nothing to compare.
func (s *Source) check(next *v1alpha1.Registry) error {
	cur := s.cur.Load()
	if cur == nil {
		return nil
	}
	for _, c := range s.checks {
		if err := c(cur, next); err != nil {
			return err
		}
	}
	return nil
}

// Watch reloads on every change of the file until ctx is done, and calls
// onChange after each valid change. It watches the file's directory (and a
// symlink target's), which sees in-place writes, atomic renames and the
// symlink swaps mounted volumes do.
func (s *Source) Watch(ctx context.Context, onChange func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	dirs := map[string]bool{filepath.Dir(s.path): true}
	if real, err := filepath.EvalSymlinks(s.path); err == nil {
		dirs[filepath.Dir(real)] = true
	}
	for d := range dirs {
		if err := w.Add(d); err != nil {
			s.log.Info("cannot watch config directory, polling only", "dir", d, "err", err.Error())
		}
	}
	tick := time.NewTicker(PollInterval)
	defer tick.Stop()
	var lastBad string
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-w.Errors:
			if ok {
				s.log.Info("config watch error, polling continues", "err", err.Error())
			}
			continue
		case _, ok := <-w.Events:
			if !ok {
				return errors.New("config watcher closed")
			}
			// Let an editor finish writing; several events collapse into one reload.
			time.Sleep(50 * time.Millisecond)
			drain(w.Events)
		case <-tick.C:
			if !s.moved() {
				continue
			}
		}
		changed, err := s.Reload()
		switch {
		case err != nil:
			if msg := err.Error(); msg != lastBad {
				lastBad = msg
				s.log.Error(err, "config reload rejected, keeping the last good spec", "path", s.path,
					"errors", fieldErrors(err))
			}
		case changed:
			lastBad = ""
			s.log.Info("config reloaded", "path", s.path)
			onChange()
		default:
			lastBad = ""
		}
	}
}

// moved reports whether the poll should read the file: it changed since
// the last read, cannot be stat'ed, or the last read failed. A stat a
// second, rather than reading and comparing a spec that lists a thousand
// agents, is what the poll costs in a steady state.
func (s *Source) moved() bool {
	id := fileid.Stat(s.path)
	s.mu.Lock()
	defer s.mu.Unlock()
	return id == (fileid.ID{}) || id != s.seen || s.lastErr != nil
}

func drain(ch <-chan fsnotify.Event) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func fieldErrors(err error) []string {
	var fe v1alpha1.FieldErrors
	if !errors.As(err, &fe) {
		return []string{err.Error()}
	}
	out := make([]string, len(fe))
	for i, e := range fe {
		out[i] = e.String()
	}
	return out
}
