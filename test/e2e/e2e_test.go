//go:build e2e

// Package e2e proves the operator's whole job on a sandbox (internal/testing/sandbox):
// real sshd agents in network namespaces, the Marathon emulator running the
// real docker-registry, real skopeo, and the operator binary as a process.
//
// One sandbox is shared by every scenario; scenarios run in the order of
// their number. A scenario file registers itself:
//
//	func init() { register(5, "ca-rotation", caRotation) }
//
// and starts from a converged sandbox (ready waits for that), so a failed
// scenario does not leave the next one to fail for its reasons. Run one
// scenario with: go test -tags e2e ./test/e2e -run 'TestE2E/1-'.
// Needs root; `make e2e` runs it.
package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/internal/testing/sandbox"
)

// Agents is the sandbox's starting size: agent 0 runs the registry, the
// others push and pull.
const Agents = 3

// convergeTimeout bounds the wait for a sandbox to settle (cold start,
// after a restart of the registry, after a fault is lifted).
const convergeTimeout = 2 * time.Minute

type scenario struct {
	order int
	name  string
	run   func(t *testing.T, sb *sandbox.Sandbox)
}

var scenarios []scenario

// register adds a scenario; order decides when it runs (1, 2, ...).
func register(order int, name string, run func(t *testing.T, sb *sandbox.Sandbox)) {
	scenarios = append(scenarios, scenario{order: order, name: name, run: run})
}

func TestE2E(t *testing.T) {
	sb := sandbox.StartT(t, sandbox.Options{Agents: Agents, Name: "e2e"})
	t.Logf("sandbox in %s; operator at %s; Marathon emulator at %s; registry %s",
		sb.Dir, sb.OperatorURL(), sb.MarathonURL, sb.RegistryAddress)
	slices.SortStableFunc(scenarios, func(a, b scenario) int { return a.order - b.order })
	for _, sc := range scenarios {
		t.Run(fmt.Sprintf("%d-%s", sc.order, sc.name), func(t *testing.T) {
			began := time.Now()
			sc.run(t, sb)
			t.Logf("scenario %d took %s", sc.order, time.Since(began).Round(time.Second))
		})
	}
}

// ready waits until the sandbox is converged: the starting point of
// every scenario.
func ready(t *testing.T, sb *sandbox.Sandbox) {
	t.Helper()
	sb.Eventually(t, convergeTimeout, "the operator reports everything in sync, the probe succeeds and the registry app is healthy", sb.Converged)
}

// within is how long a repair may take: one reconcile interval, plus the
// time the repair itself needs (an SSH round trip, a Marathon write) and
// scheduling slack on a busy 2-core machine.
func within(sb *sandbox.Sandbox) time.Duration { return sb.Interval() + 10*time.Second }

// metrics scrapes /metrics or fails.
func metrics(t *testing.T, sb *sandbox.Sandbox) sandbox.Metrics {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := sb.Metrics(ctx)
	if err != nil {
		sb.Fail(t, "a /metrics scrape", err.Error())
	}
	return m
}

// pushPull pushes a fresh image from agent from and pulls it on agent to,
// and checks both saw the same manifest.
func pushPull(t *testing.T, sb *sandbox.Sandbox, from, to int, ref string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pushed, err := sb.Push(ctx, from, ref)
	if err != nil {
		sb.Fail(t, fmt.Sprintf("skopeo push of %s from agent %d succeeds", ref, from), err.Error())
	}
	pulled, err := sb.Pull(ctx, to, ref)
	if err != nil {
		sb.Fail(t, fmt.Sprintf("skopeo pull of %s on agent %d succeeds", ref, to), err.Error())
	}
	if pulled != pushed {
		sb.Fail(t, "the pulled manifest is the pushed one ("+pushed+")", pulled)
	}
}

// check adapts a func returning an error to a sandbox.Check.
func check(fn func(ctx context.Context) error) sandbox.Check {
	return func(ctx context.Context) (bool, string) {
		if err := fn(ctx); err != nil {
			return false, err.Error()
		}
		return true, ""
	}
}

// metricIs is a check that the series of name with labels kv has value want.
func metricIs(sb *sandbox.Sandbox, want float64, name string, kv ...string) sandbox.Check {
	return func(ctx context.Context) (bool, string) {
		m, err := sb.Metrics(ctx)
		if err != nil {
			return false, err.Error()
		}
		v, ok := m.Get(name, kv...)
		if ok && v == want {
			return true, ""
		}
		return false, m.Describe(name)
	}
}

// driftRisen waits until driftMetric has risen from before by exactly
// rise[r] for each reconciler r ("" for the sum over all of them). A node
// pass counts its correction when it ends, after the repair is already
// visible on the node and the status page still shows the node in sync
// from before, so the count may trail what a test sees by a moment. A
// counter only grows: once every count has reached its rise, one more
// scrape must find each exactly there.
func driftRisen(t *testing.T, sb *sandbox.Sandbox, before sandbox.Metrics, rise map[string]float64) {
	t.Helper()
	names := slices.Sorted(maps.Keys(rise))
	sum := func(m sandbox.Metrics, r string) float64 {
		if r == "" {
			return m.Sum(driftMetric)
		}
		return m.Sum(driftMetric, "reconciler", r)
	}
	var want []string
	for _, r := range names {
		series := fmt.Sprintf("%s{reconciler=%q}", driftMetric, r)
		if r == "" {
			series = driftMetric + " summed over every reconciler"
		}
		want = append(want, fmt.Sprintf("%s rose by %g (from %g)", series, rise[r], sum(before, r)))
	}
	what := strings.Join(want, ", ")
	sb.Eventually(t, 10*time.Second, what, func(ctx context.Context) (bool, string) {
		m, err := sb.Metrics(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, r := range names {
			if sum(m, r)-sum(before, r) < rise[r] {
				return false, m.Describe(driftMetric)
			}
		}
		return true, ""
	})
	m := metrics(t, sb)
	for _, r := range names {
		if sum(m, r)-sum(before, r) != rise[r] {
			sb.Fail(t, what, m.Describe(driftMetric))
		}
	}
}

func joinLines(items []string) string { return strings.Join(items, "\n") }
