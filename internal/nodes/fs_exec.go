package nodes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// execConn serves a pass with one exec session per call: the fallback for
// nodes without an sftp-server, and Run for everyone. Scripts are constants;
// paths and values arrive as positional arguments.
type execConn struct{ c *client }

// Exit status 3 means "does not exist" in every script below.
const (
	scriptRead = `[ -e "$1" ] || exit 3
stat -c %a -- "$1" && exec cat -- "$1"`
	scriptStat = `[ -e "$1" ] || [ -L "$1" ] || exit 3
if [ -L "$1" ]; then t=l; elif [ -d "$1" ]; then t=d; else t=f; fi
printf '%s %s' "$t" "$(stat -c %a -- "$1")"`
	scriptList = `[ -d "$1" ] || exit 3
cd -- "$1" || exit 1
for f in * .[!.]* ..?*; do
	if [ -L "$f" ]; then printf 'l %s %s\0' "$(stat -c %a -- "$f")" "$f"
	elif [ -d "$f" ]; then printf 'd %s %s\0' "$(stat -c %a -- "$f")" "$f"
	elif [ -e "$f" ]; then printf 'f %s %s\0' "$(stat -c %a -- "$f")" "$f"; fi
done`
	// scriptWrite and scriptSymlink make their temp entry the way
	// sftpConn.stage does: in a fresh 0700 directory next to the target
	// (mktemp -d, under umask 077), so nobody else can open it while it
	// is written. The file itself is created under that umask and with
	// noclobber (O_EXCL), 0600 before its chmod to the final mode.
	// Parents are created before the umask changes, so they stay 0755.
	scriptWrite = `set -e
d=$(dirname -- "$1")
mkdir -p -- "$d"
umask 077
s=$(mktemp -d "$d/.${1##*/}.tmp-XXXXXX")
trap 'rm -rf -- "$s"' EXIT
t="$s/${1##*/}"
(set -C; : > "$t")
chmod "$2" -- "$t"
cat > "$t"
sync -- "$t" 2>/dev/null || sync
mv -f -- "$t" "$1"
rmdir -- "$s"
trap - EXIT`
	scriptWriteInPlace = `[ -e "$1" ] || exit 3
cat > "$1"`
	scriptSymlink = `set -e
umask 077
s=$(mktemp -d "$(dirname -- "$2")/.${2##*/}.tmp-XXXXXX")
trap 'rm -rf -- "$s"' EXIT
ln -s -- "$1" "$s/${2##*/}"
if [ -L "$2" ] && [ -d "$2" ]; then rm -f -- "$2"; fi
mv -f -- "$s/${2##*/}" "$2"
rmdir -- "$s"
trap - EXIT`
	scriptReadlink = `[ -L "$1" ] || { [ -e "$1" ] && { echo "not a symbolic link" >&2; exit 1; }; exit 3; }
exec readlink -- "$1"`
	// scriptStatVFS prints the fundamental block size and the total, free
	// and available block counts, in that unit (statvfs's f_frsize,
	// f_blocks, f_bfree, f_bavail).
	scriptStatVFS = `[ -e "$1" ] || exit 3
exec stat -f -c '%S %b %f %a' -- "$1"`
	scriptChmod  = `chmod "$2" -- "$1"`
	scriptRemove = `if [ -d "$1" ] && [ ! -L "$1" ]; then rmdir -- "$1"; else [ -e "$1" ] || [ -L "$1" ] || exit 3; rm -f -- "$1"; fi`
)

func (e *execConn) Node() string { return e.c.node }

func (e *execConn) Run(ctx context.Context, script string, args ...string) ([]byte, error) {
	return e.c.run(ctx, nil, script, args...)
}

// do runs a file script and maps exit status 3 to fs.ErrNotExist.
func (e *execConn) do(ctx context.Context, what, p string, stdin []byte, script string, args ...string) ([]byte, error) {
	out, err := e.c.run(ctx, stdin, script, args...)
	var ee *ExitError
	if errors.As(err, &ee) && ee.Status == 3 {
		return nil, opErr(e.c.node, what, p, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, p, err)
	}
	return out, nil
}

func (e *execConn) ReadFile(ctx context.Context, p string) ([]byte, fs.FileMode, error) {
	out, err := e.do(ctx, "read", p, nil, scriptRead, p)
	if err != nil {
		return nil, 0, err
	}
	modeText, data, ok := bytes.Cut(out, []byte("\n"))
	if !ok {
		return nil, 0, fmt.Errorf("node %s: read %s: unexpected output", e.c.node, p)
	}
	mode, err := strconv.ParseUint(string(modeText), 8, 32)
	if err != nil {
		return nil, 0, fmt.Errorf("node %s: read %s: mode %q: %w", e.c.node, p, modeText, err)
	}
	if len(data) > maxRead {
		return nil, 0, fmt.Errorf("node %s: read %s: larger than %d bytes", e.c.node, p, maxRead)
	}
	return data, fs.FileMode(mode).Perm(), nil
}

func (e *execConn) Stat(ctx context.Context, p string) (FileInfo, error) {
	out, err := e.do(ctx, "stat", p, nil, scriptStat, p)
	if err != nil {
		return FileInfo{}, err
	}
	return parseInfo(path.Base(p), string(out))
}

func parseInfo(name, s string) (FileInfo, error) {
	typ, modeText, ok := strings.Cut(s, " ")
	mode, err := strconv.ParseUint(modeText, 8, 32)
	if !ok || err != nil {
		return FileInfo{}, fmt.Errorf("unexpected stat output %q", s)
	}
	return FileInfo{Name: name, IsDir: typ == "d", IsLink: typ == "l", Mode: fs.FileMode(mode).Perm()}, nil
}

func (e *execConn) ReadDir(ctx context.Context, dir string) ([]FileInfo, error) {
	out, err := e.do(ctx, "list", dir, nil, scriptList, dir)
	if err != nil {
		return nil, err
	}
	var res []FileInfo
	for _, rec := range strings.Split(string(out), "\x00") {
		if rec == "" {
			continue
		}
		head, name, ok := strings.Cut(rec[min(len(rec), 2):], " ")
		if !ok {
			return nil, fmt.Errorf("node %s: list %s: unexpected output %q", e.c.node, dir, rec)
		}
		fi, err := parseInfo(name, rec[:1]+" "+head)
		if err != nil {
			return nil, fmt.Errorf("node %s: list %s: %w", e.c.node, dir, err)
		}
		res = append(res, fi)
	}
	return res, nil
}

func (e *execConn) WriteFile(ctx context.Context, p string, data []byte, perm fs.FileMode) error {
	if data == nil {
		data = []byte{}
	}
	_, err := e.do(ctx, "write", p, data, scriptWrite, p, strconv.FormatUint(uint64(perm.Perm()), 8))
	return err
}

func (e *execConn) WriteInPlace(ctx context.Context, p string, data []byte) error {
	if data == nil {
		data = []byte{}
	}
	_, err := e.do(ctx, "write", p, data, scriptWriteInPlace, p)
	return err
}

func (e *execConn) Chmod(ctx context.Context, p string, perm fs.FileMode) error {
	_, err := e.do(ctx, "chmod", p, nil, scriptChmod, p, strconv.FormatUint(uint64(perm.Perm()), 8))
	return err
}

func (e *execConn) Remove(ctx context.Context, p string) error {
	_, err := e.do(ctx, "remove", p, nil, scriptRemove, p)
	return err
}

func (e *execConn) Symlink(ctx context.Context, target, link string) error {
	_, err := e.do(ctx, "symlink", link, nil, scriptSymlink, target, link)
	return err
}

func (e *execConn) Readlink(ctx context.Context, p string) (string, error) {
	out, err := e.do(ctx, "readlink", p, nil, scriptReadlink, p)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(out), "\n"), nil
}

func (e *execConn) StatVFS(ctx context.Context, p string) (FSUsage, error) {
	out, err := e.do(ctx, "statvfs", p, nil, scriptStatVFS, p)
	if err != nil {
		return FSUsage{}, err
	}
	u, err := parseStatVFS(string(out))
	if err != nil {
		return FSUsage{}, fmt.Errorf("node %s: statvfs %s: %w", e.c.node, p, err)
	}
	return u, nil
}

// parseStatVFS reads scriptStatVFS's "frsize blocks bfree bavail".
func parseStatVFS(s string) (FSUsage, error) {
	f := strings.Fields(s)
	if len(f) != 4 {
		return FSUsage{}, fmt.Errorf("unexpected stat -f output %q", s)
	}
	var n [4]uint64
	for i, w := range f {
		v, err := strconv.ParseUint(w, 10, 64)
		if err != nil {
			return FSUsage{}, fmt.Errorf("unexpected stat -f output %q: %w", s, err)
		}
		n[i] = v
	}
	return FSUsage{Size: n[0] * n[1], Free: n[0] * n[2], Avail: n[0] * n[3]}, nil
}
