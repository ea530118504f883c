package pki

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Store keeps one state set. Load returns the whole set as last saved (an
// empty set when there is none); Save replaces it as a whole, so a crash at
// any instant leaves either the old or the new set. The directory store is
// the default; a ZooKeeper store can hold the set in one znode.
type Store interface {
	Load(ctx context.Context) (Files, error)
	Save(ctx context.Context, f Files) error
	// Where names the store in messages (a path or a znode).
	Where() string
}

// DirStore keeps the set in a directory:
//
//	gen-<n>/          one complete set per generation, written before use
//	current -> gen-n  the set in force; switched by one atomic rename
//	ca.crt -> current/ca.crt, ...   stable paths for people and processes
//
// A reader following any stable path sees a single generation, and the
// switch is the rename of one symlink, which is what makes the set atomic.
// Files written by hand into the directory itself (no "current") are
// adopted as the set in force.
type DirStore struct {
	dir string
	// step, when set, runs before every write step; an error stops Save
	// there without any cleanup, as a crash would.
	step func(name string) error
}

// NewDirStore returns a store in dir (created with mode 0700 on first Save;
// an existing dir must be a real directory of the operator's own).
func NewDirStore(dir string) *DirStore { return &DirStore{dir: dir} }

// Where implements Store.
func (d *DirStore) Where() string { return d.dir }

const (
	currentLink = "current"
	genPrefix   = "gen-"
)

// Load implements Store. Keys readable by others are reported as
// corruption: they may have leaked and must not be used silently.
func (d *DirStore) Load(ctx context.Context) (Files, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	src := d.dir
	target, err := os.Readlink(filepath.Join(d.dir, currentLink))
	switch {
	case err == nil:
		src = filepath.Join(d.dir, target)
		if _, err := os.Stat(src); err != nil {
			return nil, Corruption{{File: currentLink, Reason: fmt.Sprintf("points to %s, which cannot be read: %v", target, err)}}
		}
	case errors.Is(err, fs.ErrNotExist):
		if _, err := os.Stat(d.dir); errors.Is(err, fs.ErrNotExist) {
			return Files{}, nil
		}
	default:
		return nil, fmt.Errorf("read %s: %w", filepath.Join(d.dir, currentLink), err)
	}
	f := Files{}
	var bad Corruption
	for _, name := range KnownFiles {
		p := filepath.Join(src, name)
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stat %s: %w", p, err)
		}
		if !fi.Mode().IsRegular() {
			bad = append(bad, &CorruptError{File: name, Reason: fmt.Sprintf("%s is not a regular file", p)})
			continue
		}
		if IsKeyFile(name) && fi.Mode().Perm()&0o077 != 0 {
			bad = append(bad, &CorruptError{File: name, Reason: fmt.Sprintf("%s has mode %04o: a private key must be 0600 "+
				"(it may have been read by others; if that is acceptable, chmod 600 it)", p, fi.Mode().Perm())})
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		f[name] = b
	}
	if len(bad) > 0 {
		return f, bad
	}
	return f, nil
}

// Save implements Store.
func (d *DirStore) Save(ctx context.Context, f Files) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	killed := false
	step := func(name string) error {
		if d.step != nil {
			if e := d.step(name); e != nil {
				killed = true
				return e
			}
		}
		return nil
	}
	if err := step("mkdir"); err != nil {
		return err
	}
	if err := d.ensureDir(); err != nil {
		return err
	}
	n, err := d.currentGen()
	if err != nil {
		return err
	}
	gen := genPrefix + strconv.FormatInt(n+1, 10)
	gdir := filepath.Join(d.dir, gen)
	defer func() {
		if err != nil && !killed {
			_ = os.RemoveAll(gdir) // never current: nothing points at it yet
		}
	}()
	// A crash may have left this generation half written; it was never current.
	if err := os.RemoveAll(gdir); err != nil {
		return d.fix(fmt.Errorf("remove stale %s: %w", gdir, err))
	}
	if err := os.Mkdir(gdir, 0o700); err != nil {
		return d.fix(fmt.Errorf("create %s: %w", gdir, err))
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range f {
			if !yield(k) {
				return
			}
		}
	})
	for _, name := range names {
		if !slices.Contains(KnownFiles, name) {
			return fmt.Errorf("refusing to store unknown file %q", name)
		}
		if err := step("write " + name); err != nil {
			return err
		}
		if err := writeFileSync(filepath.Join(gdir, name), f[name], fileMode(name)); err != nil {
			return d.fix(err)
		}
	}
	if err := step("fsync " + gen); err != nil {
		return err
	}
	if err := syncDir(gdir); err != nil {
		return d.fix(err)
	}
	// The commit point: one rename switches every file at once.
	if err := step("switch " + currentLink); err != nil {
		return err
	}
	if err := replaceSymlink(d.dir, currentLink, gen); err != nil {
		return d.fix(err)
	}
	if err := step("fsync " + d.dir); err != nil {
		return err
	}
	if err := syncDir(d.dir); err != nil {
		return d.fix(err)
	}
	return d.tidy(f, gen, step)
}

// tidy points the stable names at current and removes old generations.
// It runs after the commit: a crash here leaves the new set in force.
func (d *DirStore) tidy(f Files, gen string, step func(string) error) error {
	for _, name := range KnownFiles {
		p := filepath.Join(d.dir, name)
		want := filepath.Join(currentLink, name)
		have, err := os.Readlink(p)
		_, inSet := f[name]
		switch {
		case inSet && have == want:
			continue
		case inSet:
			if err := step("link " + name); err != nil {
				return err
			}
			if err := replaceSymlink(d.dir, name, want); err != nil {
				return d.fix(err)
			}
		case err == nil || fileExists(p):
			// A name the set no longer holds, or a hand-written file the
			// set has adopted and now replaces.
			if err := step("unlink " + name); err != nil {
				return err
			}
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return d.fix(fmt.Errorf("remove %s: %w", p, err))
			}
		}
	}
	if err := step("fsync links"); err != nil {
		return err
	}
	if err := syncDir(d.dir); err != nil {
		return d.fix(err)
	}
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return d.fix(fmt.Errorf("list %s: %w", d.dir, err))
	}
	for _, e := range entries {
		n := e.Name()
		if (strings.HasPrefix(n, genPrefix) && n != gen) || strings.HasPrefix(n, ".tmp-") {
			if err := step("remove " + n); err != nil {
				return err
			}
			if err := os.RemoveAll(filepath.Join(d.dir, n)); err != nil {
				return d.fix(fmt.Errorf("remove old generation %s: %w", n, err))
			}
		}
	}
	return nil
}

// ensureDir creates the state directory (0700) when it is missing. An
// existing one is used as it is, never chmodded: it is refused when it is a
// symlink, not a directory, owned by another uid or writable by others,
// since the operator keeps private keys there and removes old generations
// from it, and must not do either in a directory someone else controls.
func (d *DirStore) ensureDir() error {
	fi, err := os.Lstat(d.dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(d.dir), 0o700); err != nil {
			return d.fix(fmt.Errorf("create state directory %s: %w", d.dir, err))
		}
		err = os.Mkdir(d.dir, 0o700)
		if err == nil {
			return d.chmodCreated()
		}
		if !errors.Is(err, fs.ErrExist) {
			return d.fix(fmt.Errorf("create state directory %s: %w", d.dir, err))
		}
		fi, err = os.Lstat(d.dir) // created meanwhile by someone else: check it
	}
	if err != nil {
		return d.fix(fmt.Errorf("stat state directory %s: %w", d.dir, err))
	}
	return ownedDir(d.dir, fi)
}

// chmodCreated sets 0700 exactly (Mkdir honours the umask) on the directory
// ensureDir just created, through a descriptor opened without following a
// symlink, so a link swapped in meanwhile is never chmodded through.
func (d *DirStore) chmodCreated() error {
	fh, err := os.OpenFile(d.dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return d.fix(fmt.Errorf("open state directory %s: %w", d.dir, err))
	}
	defer fh.Close()
	if err := fh.Chmod(0o700); err != nil {
		return d.fix(fmt.Errorf("chmod 0700 %s: %w", d.dir, err))
	}
	return nil
}

// ownedDir accepts an existing state directory the operator may use.
func ownedDir(dir string, fi os.FileInfo) error {
	m := fi.Mode()
	switch {
	case m&os.ModeSymlink != 0:
		target, _ := filepath.EvalSymlinks(dir)
		return fmt.Errorf("tls.stateDir %s is a symlink (to %s): the operator does not follow one to its key store; "+
			"set tls.stateDir to the real directory", dir, target)
	case !m.IsDir():
		return fmt.Errorf("tls.stateDir %s exists and is not a directory: move it away or choose another stateDir", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("tls.stateDir %s belongs to uid %d, not to the operator's uid %d: it keeps private keys "+
			"there and removes old files, so give it a directory of its own (or chown the directory to uid %d)",
			dir, st.Uid, os.Geteuid(), os.Geteuid())
	}
	if m.Perm()&0o022 != 0 {
		return fmt.Errorf("tls.stateDir %s has mode %04o: others could replace the keys in it; chmod 700 it",
			dir, m.Perm())
	}
	return nil
}

func (d *DirStore) currentGen() (int64, error) {
	t, err := os.Readlink(filepath.Join(d.dir, currentLink))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, d.fix(fmt.Errorf("read %s: %w", filepath.Join(d.dir, currentLink), err))
	}
	n, err := strconv.ParseInt(strings.TrimPrefix(t, genPrefix), 10, 64)
	if err != nil || !strings.HasPrefix(t, genPrefix) {
		return 0, fmt.Errorf("%s points to %q, not a generation this operator wrote: move it away", filepath.Join(d.dir, currentLink), t)
	}
	return n, nil
}

// fix appends the likely remedies to an I/O error of the state directory.
func (d *DirStore) fix(err error) error {
	return fmt.Errorf("%w (the state in %s is unchanged; check that the directory is writable by the operator and "+
		"that its file system has free space and inodes)", err, d.dir)
}

func fileMode(name string) os.FileMode {
	if IsKeyFile(name) {
		return 0o600
	}
	return 0o644
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// writeFileSync creates p with mode, writes b and fsyncs it. p must not
// exist (a fresh generation directory).
func writeFileSync(p string, b []byte, mode os.FileMode) error {
	fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	if _, err := fh.Write(b); err != nil {
		fh.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return fmt.Errorf("fsync %s: %w", p, err)
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("close %s: %w", p, err)
	}
	return nil
}

// replaceSymlink makes dir/name a symlink to target by renaming a
// temporary link over it, so the name never dangles or disappears.
func replaceSymlink(dir, name, target string) error {
	tmp := filepath.Join(dir, ".tmp-"+name)
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("create symlink %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("rename %s to %s: %w", tmp, name, err)
	}
	return nil
}

func syncDir(dir string) error {
	fh, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer fh.Close()
	if err := fh.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
