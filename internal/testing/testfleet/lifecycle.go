package testfleet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// AddHosts adds n hosts to a running fleet (the growth scenario) and
// returns them. On error none of them is left behind.
func (f *Fleet) AddHosts(ctx context.Context, n int) ([]*Host, error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, errors.New("testfleet: fleet is closed")
	}
	first := len(f.hosts)
	if first+n > f.opts.Capacity {
		f.mu.Unlock()
		return nil, fmt.Errorf("testfleet: %d more hosts would exceed the run's capacity of %d (set Options.Capacity)", n, f.opts.Capacity)
	}
	added := make([]*Host, n)
	for i := range added {
		idx := first + i
		added[i] = &Host{
			Index:   idx,
			Name:    fmt.Sprintf("agent-%d", idx),
			Address: hostAddr(f.Subnet, idx).String(),
			Netns:   netnsName(f.Prefix, f.RunID, idx),
			Veth:    vethName(f.Prefix, f.RunID, idx),
			f:       f,
			dir:     filepath.Join(f.Dir, "hosts", strconv.Itoa(idx)),
		}
		// Reserve the index now; the slot stays nil until the host runs.
		f.hosts = append(f.hosts, nil)
	}
	f.mu.Unlock()
	if n == 0 {
		return nil, nil
	}

	fail := func(err error) ([]*Host, error) {
		return nil, errors.Join(err, teardownNamespaces(context.Background(), netnsNames(added), vethNames(added), added))
	}
	for _, h := range added {
		if err := os.Mkdir(h.dir, 0o755); err != nil {
			return fail(err)
		}
		if err := h.prepareDir(); err != nil {
			return fail(fmt.Errorf("testfleet: prepare %s: %w", h.Name, err))
		}
	}
	// Permanent neighbour entries on both ends: on one bridge every ARP
	// broadcast is processed by every host's namespace on the machine's
	// few cores, so resolving each host once per contact would cost
	// O(hosts) each and grow a pass over the fleet quadratically (real
	// agents answer ARP on their own CPUs). The kernel never expires
	// these entries.
	var lines []string
	for _, h := range added {
		mac := macFor(netip.MustParseAddr(h.Address))
		lines = append(lines,
			"netns add "+h.Netns,
			"link add "+h.Veth+" type veth peer name eth0 address "+mac+" netns "+h.Netns,
			"link set "+h.Veth+" master "+f.Bridge+" up",
			"neigh replace "+h.Address+" lladdr "+mac+" dev "+f.Bridge+" nud permanent")
	}
	began := time.Now()
	if err := ipBatch(ctx, lines, false); err != nil {
		return fail(err)
	}
	f.opts.Logf("testfleet: %d namespaces and links made in %s", n, time.Since(began).Round(time.Millisecond))
	began = time.Now()

	sem := make(chan struct{}, f.opts.Parallel)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, h := range added {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = h.startHolder(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	f.opts.Logf("testfleet: %d hosts started in %s", n, time.Since(began).Round(time.Millisecond))

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fail(errors.New("testfleet: fleet closed while hosts were being added"))
	}
	for _, h := range added {
		f.hosts[h.Index] = h
	}
	if err := f.publishLocked(); err != nil {
		return nil, err
	}
	return added, nil
}

// RemoveHost stops host i and removes its namespaces and link (a node
// leaving the cluster). Its index is not reused.
func (f *Fleet) RemoveHost(ctx context.Context, i int) error {
	f.mu.Lock()
	if i < 0 || i >= len(f.hosts) || f.hosts[i] == nil {
		f.mu.Unlock()
		return fmt.Errorf("testfleet: no host %d", i)
	}
	h := f.hosts[i]
	f.hosts[i] = nil
	err := f.publishLocked()
	f.mu.Unlock()
	hs := []*Host{h}
	err = errors.Join(err, teardownNamespaces(ctx, netnsNames(hs), vethNames(hs), hs))
	err = errors.Join(err, ipBatch(ctx, []string{"neigh del " + h.Address + " dev " + f.Bridge}, true))
	return errors.Join(err, os.RemoveAll(h.dir))
}

func netnsNames(hs []*Host) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Netns)
	}
	return out
}

func vethNames(hs []*Host) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Veth)
	}
	return out
}

// teardownNamespaces kills every process in the given network namespaces,
// then deletes the links and the namespaces. own are hosts this process
// started (their holders are reaped here).
func teardownNamespaces(ctx context.Context, netns, links []string, own []*Host) error {
	for _, h := range own {
		h.mu.Lock()
		if h.stdin != nil {
			h.stdin.Close() // the holder's read ends; as PID 1 its exit kills the host
		}
		if h.holderPID > 0 && h.exited != nil {
			_ = syscall.Kill(h.holderPID, syscall.SIGKILL)
		}
		h.mu.Unlock()
	}
	inodes := map[uint64]bool{}
	for _, n := range netns {
		if ino, err := nsInode("/run/netns/" + n); err == nil {
			inodes[ino] = true
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var pids []int
		for _, pid := range procsInNamespaces("net", inodes) {
			if pid != os.Getpid() {
				pids = append(pids, pid)
			}
		}
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("testfleet: processes %v in the fleet's namespaces survived SIGKILL", pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, h := range own {
		if h.exited == nil {
			continue
		}
		select {
		case <-h.exited:
		case <-ctx.Done():
			return fmt.Errorf("testfleet: holder of %s (pid %d) not reaped: %w", h.Name, h.holderPID, ctx.Err())
		}
	}
	// Deleting a namespace removes its end of the veth and so the
	// machine's end too, in one batched unregister in the kernel; deleting
	// veths one by one costs a synchronize_net each (~25 ms).
	var lines []string
	for _, n := range netns {
		if _, err := os.Lstat("/run/netns/" + n); err == nil {
			lines = append(lines, "netns del "+n)
		}
	}
	batchErr := ipBatch(ctx, lines, true)
	// Namespaces are destroyed asynchronously; wait for their links to go.
	for wait := time.Now().Add(30 * time.Second); time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
		if !slices.ContainsFunc(links, func(l string) bool { return linkExists(l) && !isBridge(l) }) {
			break
		}
	}
	lines = nil
	for _, l := range links {
		if linkExists(l) {
			lines = append(lines, "link del "+l)
		}
	}
	batchErr = errors.Join(batchErr, ipBatch(ctx, lines, true))
	var left []string
	for _, l := range links {
		if linkExists(l) {
			left = append(left, "link "+l)
		}
	}
	for _, n := range netns {
		if _, err := os.Lstat("/run/netns/" + n); err == nil {
			left = append(left, "netns "+n)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("testfleet: could not remove %v: %w", left, batchErr)
	}
	return nil
}

// teardownRun removes everything of one run: its processes, namespaces,
// links and directory, found by name so it also works on leftovers.
func teardownRun(ctx context.Context, base, prefix, runID string, own []*Host) error {
	nsRE := regexp.MustCompile(`^` + prefix + `-` + runID + `-[0-9]+$`)
	linkRE := regexp.MustCompile(`^` + prefix + runID + `(v[0-9]+|br)$`)
	var netns, links []string
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if nsRE.MatchString(e.Name()) {
			netns = append(netns, e.Name())
		}
	}
	// Veths first, then the bridge they are in.
	br := bridgeName(prefix, runID)
	for _, l := range linksWithPrefix(prefix + runID) {
		if linkRE.MatchString(l) && l != br {
			links = append(links, l)
		}
	}
	links = append(links, br)
	err := teardownNamespaces(ctx, netns, links, own)
	dir := filepath.Join(base, runDirName(prefix, runID))
	if rmErr := os.RemoveAll(dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("testfleet: remove %s: %w", dir, rmErr))
	}
	return err
}

// Cleanup removes leftovers of runs with this prefix whose owning process
// is gone: namespaces, links, processes and run directories. Runs of live
// processes are left alone, and so is a run with no record under the base
// directory (one kept under another BaseDir) while its hosts run.
func Cleanup(ctx context.Context, prefix string) error {
	return CleanupIn(ctx, DefaultBaseDir, prefix)
}

// CleanupIn is Cleanup for runs kept under base.
func CleanupIn(ctx context.Context, base, prefix string) error {
	if !prefixRE.MatchString(prefix) {
		return fmt.Errorf("testfleet: bad prefix %q", prefix)
	}
	unlock, err := lockBase(base)
	if err != nil {
		return err
	}
	defer unlock()
	return cleanupLocked(ctx, base, prefix, func(string, ...any) {})
}

func cleanupLocked(ctx context.Context, base, prefix string, logf func(string, ...any)) error {
	runs, err := listRuns(base)
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, r := range runs {
		if r.Prefix == prefix && r.ownerAlive() {
			live[r.RunID] = true
		}
	}
	stale := map[string]bool{}
	nsRE := regexp.MustCompile(`^` + prefix + `-([a-z0-9]{5})-[0-9]+$`)
	dirRE := regexp.MustCompile(`^` + prefix + `-([a-z0-9]{5})$`)
	linkRE := regexp.MustCompile(`^` + prefix + `([a-z0-9]{5})(v[0-9]+|br)$`)
	note := func(re *regexp.Regexp, name string) {
		if m := re.FindStringSubmatch(name); m != nil && !live[m[1]] {
			stale[m[1]] = true
		}
	}
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		note(nsRE, e.Name())
	}
	ents, _ = os.ReadDir(base)
	for _, e := range ents {
		note(dirRE, e.Name())
	}
	for _, l := range linksWithPrefix(prefix) {
		note(linkRE, l)
	}
	recorded := map[string]bool{}
	for _, r := range runs {
		if r.Prefix == prefix {
			recorded[r.RunID] = true
		}
	}
	var errs []error
	for id := range stale {
		// Without a record (a run kept under another BaseDir, say), a run
		// whose hosts still have processes is alive: hosts end with their owner.
		if !recorded[id] && runHasProcesses(prefix, id) {
			logf("testfleet: run %s-%s has no record under %s but its hosts run; leaving it", prefix, id, base)
			continue
		}
		logf("testfleet: removing leftovers of run %s-%s", prefix, id)
		errs = append(errs, teardownRun(ctx, base, prefix, id, nil))
	}
	return errors.Join(errs...)
}

// runHasProcesses reports whether any process lives in the run's network namespaces.
func runHasProcesses(prefix, runID string) bool {
	inodes := map[uint64]bool{}
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix+"-"+runID+"-") {
			if ino, err := nsInode("/run/netns/" + e.Name()); err == nil {
				inodes[ino] = true
			}
		}
	}
	return len(procsInNamespaces("net", inodes)) > 0
}
