package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strings"
	"sync"

	"github.com/registry-operator/registry-operator/internal/testing/testfleet"
)

// The workload: what the operator's trust and conntrack reconcilers keep
// on every agent, and what the other contenders are asked to do.
const (
	registryAddr    = "registry.bench.test:5000"
	certsDir        = "/etc/docker/certs.d"
	caPath          = certsDir + "/" + registryAddr + "/ca.crt"
	sysctlKey       = "net.netfilter.nf_conntrack_tcp_be_liberal"
	persistFile     = "/etc/sysctl.d/90-registry-operator.conf"
	modulesLoadFile = "/etc/modules-load.d/registry-operator.conf"
)

var persistRE = regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(sysctlKey) + `\s*=\s*1\s*$`)

// hostRoot is a path inside the host's mount namespace, seen from the machine.
func hostRoot(h *testfleet.Host, p string) string {
	return fmt.Sprintf("/proc/%d/root%s", h.HolderPID(), p)
}

// forEach runs fn on every host, 16 at a time, and joins the errors.
func forEach(ctx context.Context, hosts []*testfleet.Host, fn func(context.Context, int, *testfleet.Host) error) error {
	sem := make(chan struct{}, 16)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, i, h); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 5 {
		errs = append(errs[:5], fmt.Errorf("... and %d more", len(errs)-5))
	}
	return errors.Join(errs...)
}

// reset puts hosts in the cold state: none of the files, the sysctl at 0,
// and nothing a previous Ansible run left in root's home.
func reset(ctx context.Context, hosts []*testfleet.Host) error {
	return forEach(ctx, hosts, func(ctx context.Context, _ int, h *testfleet.Host) error {
		for _, p := range []string{certsDir, persistFile, modulesLoadFile, "/root/.ansible"} {
			if err := os.RemoveAll(hostRoot(h, p)); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
		}
		return h.SetSysctl(ctx, sysctlKey, "0")
	})
}

// drift breaks every tenth host: a stale CA file and the sysctl back at 0
// (what a reimaged or rebooted agent looks like). It returns how many.
func drift(ctx context.Context, hosts []*testfleet.Host) (int, error) {
	var picked []*testfleet.Host
	for i, h := range hosts {
		if i%10 == 0 {
			picked = append(picked, h)
		}
	}
	err := forEach(ctx, picked, func(ctx context.Context, _ int, h *testfleet.Host) error {
		if err := os.WriteFile(hostRoot(h, caPath), []byte("stale CA\n"), 0o644); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
		return h.SetSysctl(ctx, sysctlKey, "0")
	})
	return len(picked), err
}

// verify checks that every host carries the workload's end state.
func verify(ctx context.Context, hosts []*testfleet.Host, ca []byte) error {
	return forEach(ctx, hosts, func(ctx context.Context, _ int, h *testfleet.Host) error {
		var bad []string
		if b, err := os.ReadFile(hostRoot(h, caPath)); err != nil || !bytes.Equal(b, ca) {
			bad = append(bad, caPath)
		}
		if b, err := os.ReadFile(hostRoot(h, persistFile)); err != nil || !persistRE.Match(b) {
			bad = append(bad, persistFile)
		}
		if b, err := os.ReadFile(hostRoot(h, modulesLoadFile)); err != nil || !strings.Contains(string(b), "nf_conntrack") {
			bad = append(bad, modulesLoadFile)
		}
		if v, err := h.Sysctl(ctx, sysctlKey); err != nil || strings.TrimSpace(v) != "1" {
			bad = append(bad, sysctlKey)
		}
		if len(bad) > 0 {
			return fmt.Errorf("%s (%s): not converged: %s", h.Name, h.Address, strings.Join(bad, ", "))
		}
		return nil
	})
}

// readCA reads what the operator put on a host: the bytes every contender distributes.
func readCA(h *testfleet.Host) ([]byte, error) {
	b, err := os.ReadFile(hostRoot(h, caPath))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: the operator did not write %s", h.Name, path.Clean(caPath))
	}
	return b, err
}
