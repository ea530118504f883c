package testfleet

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// nsInode returns the inode identifying a namespace file (e.g. /run/netns/x).
func nsInode(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// procsInNamespaces returns the PIDs of every process whose namespace of the
// given kind ("net", "pid") is one of inodes.
func procsInNamespaces(kind string, inodes map[uint64]bool) []int {
	if len(inodes) == 0 {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		l, err := os.Readlink("/proc/" + e.Name() + "/ns/" + kind)
		if err != nil {
			continue // exited, or a zombie
		}
		// l is like "net:[4026532281]".
		i, j := strings.IndexByte(l, '['), strings.IndexByte(l, ']')
		if i < 0 || j < i {
			continue
		}
		ino, err := strconv.ParseUint(l[i+1:j], 10, 64)
		if err == nil && inodes[ino] {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procExe returns the executable of a process, or "".
func procExe(pid int) string {
	p, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	return p
}

// inNetns runs fn on an OS thread that has joined the network namespace at
// nsPath. Files under /proc/sys/net opened by fn belong to that namespace.
func inNetns(nsPath string, fn func() error) error {
	target, err := os.Open(nsPath)
	if err != nil {
		return err
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", nsPath, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime retires it when this
		// goroutine exits, so no other goroutine runs in the wrong namespace.
		return fmt.Errorf("setns back from %s: %w", nsPath, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// sysctlPath maps "net.ipv4.ip_forward" to /proc/sys/net/ipv4/ip_forward.
// Keys are checked so a test's typo cannot reach outside /proc/sys.
func sysctlPath(key string) (string, error) {
	if key == "" || strings.Contains(key, "..") || strings.ContainsAny(key, " \t\n") || strings.HasPrefix(key, "/") {
		return "", fmt.Errorf("testfleet: bad sysctl key %q", key)
	}
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/")), nil
}
