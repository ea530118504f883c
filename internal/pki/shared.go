package pki

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Shared lets several reconcilers keep their own files in one state set.
// Store.Save replaces the whole set, so a reconciler that loaded the set,
// decided, and saved it would drop whatever another one saved meanwhile
// (the certificate reconciler would lose the pull password, and the next
// pass would silently make a new one). Each reconciler instead works on a
// Part: its Load shows only the part's files, and its Save reloads the set
// and replaces only the part's files, both under one lock, so the two
// never interleave a read and a write. One Shared must serve every part of
// a set in the process.
type Shared struct{ mu sync.Mutex }

// Part returns the view of st that holds only names.
func (s *Shared) Part(st Store, names ...string) Store {
	return &part{shared: s, st: st, names: names}
}

type part struct {
	shared *Shared
	st     Store
	names  []string
}

func (p *part) Where() string { return p.st.Where() }

// Load implements Store: the part's files, and the corruption that
// concerns them. Corruption of another part's file is left to its owner;
// corruption naming no known file (a broken "current" link, an unreadable
// znode) concerns every part and is kept.
func (p *part) Load(ctx context.Context) (Files, error) {
	p.shared.mu.Lock()
	defer p.shared.mu.Unlock()
	f, err := p.st.Load(ctx)
	var bad Corruption
	if err != nil && !errors.As(err, &bad) {
		return nil, err
	}
	var own Corruption
	for _, e := range bad {
		if p.owns(e.File) || !slices.Contains(KnownFiles, e.File) {
			own = append(own, e)
		}
	}
	out := Files{}
	for name, b := range f {
		if p.owns(name) {
			out[name] = b
		}
	}
	if len(own) > 0 {
		return out, own
	}
	return out, nil
}

// Save implements Store: f replaces the part's files, every other file of
// the set is saved again as it is now. It refuses when another part's file
// is corrupt: saving without it would delete it.
func (p *part) Save(ctx context.Context, f Files) error {
	for name := range f {
		if !p.owns(name) {
			return fmt.Errorf("refusing to save %q through the part of %s that holds %v", name, p.st.Where(), p.names)
		}
	}
	p.shared.mu.Lock()
	defer p.shared.mu.Unlock()
	all, err := p.st.Load(ctx)
	if bad := Corruption(nil); errors.As(err, &bad) {
		for _, e := range bad {
			if !p.owns(e.File) {
				return fmt.Errorf("refusing to save %v to %s: %s is unusable and would be lost (%s); repair or remove it first",
					p.names, p.st.Where(), e.File, e.Reason)
			}
		}
	} else if err != nil {
		return fmt.Errorf("read %s before saving %v: %w", p.st.Where(), p.names, err)
	}
	next := Files{}
	for name, b := range all {
		if !p.owns(name) {
			next[name] = b
		}
	}
	for name, b := range f {
		next[name] = b
	}
	if next.Equal(all) {
		return nil
	}
	return p.st.Save(ctx, next)
}

func (p *part) owns(name string) bool { return slices.Contains(p.names, name) }

// RecordingStore is a Store for report mode: Load reads through, Save
// writes nothing and records which files it would have written. After a
// recorded Save, Load returns what was recorded, so a long-running
// report-mode pass sees the state it would have made instead of making it
// afresh each time.
type RecordingStore struct {
	st       Store
	mu       sync.Mutex
	saved    Files
	recorded []string
}

// Recording wraps st.
func Recording(st Store) *RecordingStore { return &RecordingStore{st: st} }

// Where implements Store.
func (r *RecordingStore) Where() string { return r.st.Where() }

// Load implements Store.
func (r *RecordingStore) Load(ctx context.Context) (Files, error) {
	r.mu.Lock()
	saved := r.saved
	r.mu.Unlock()
	if saved != nil {
		out := Files{}
		for k, v := range saved {
			out[k] = v
		}
		return out, nil
	}
	return r.st.Load(ctx)
}

// Save implements Store: nothing is written.
func (r *RecordingStore) Save(_ context.Context, f Files) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(f))
	for k := range f {
		names = append(names, k)
	}
	slices.Sort(names)
	r.recorded = append(r.recorded, fmt.Sprintf("save %v to %s", names, r.st.Where()))
	r.saved = Files{}
	for k, v := range f {
		r.saved[k] = v
	}
	return nil
}

// Recorded lists the saves not made.
func (r *RecordingStore) Recorded() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.recorded)
}
