//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/internal/testing/sandbox"
)

func init() { register(2, "drift", drift) }

const driftMetric = "registry_operator_drift_corrections_total"

// drift: what people and crashes do to a converged cluster is undone
// within one interval, and counted.
//
//   - ca.crt deleted on agent 1          -> trust rewrites it (+1 trust)
//   - the conntrack sysctl set to 0 on 2  -> conntrack sets it (+1 conntrack)
//   - the app scaled to 0 with another
//     image, through the Marathon API     -> app restores both in one update (+1 app)
//   - the registry task killed            -> Marathon relaunches it; the
//     operator has nothing to correct (+0) and the registry serves again.
func drift(t *testing.T, sb *sandbox.Sandbox) {
	ready(t, sb)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	before := metrics(t, sb)
	spec, err := sb.Spec()
	if err != nil {
		t.Fatal(err)
	}
	wantImage := spec.Spec.App.Image
	bundle := readState(t, sb, "trust-bundle.crt")
	a1, a2 := sb.Agent(1), sb.Agent(2)

	// Inject all three at once.
	if err := a1.Remove(ctx, sb.CAPath()); err != nil {
		t.Fatal(err)
	}
	if err := a2.SetSysctl(ctx, sandbox.ConntrackKey, "0"); err != nil {
		t.Fatal(err)
	}
	scaleAndRetag(t, sb, ctx, "registry:2.7.1")
	injected := time.Now()

	sb.Eventually(t, within(sb), "ca.crt back on "+a1.Name+" with the trust bundle", check(func(ctx context.Context) error {
		b, err := a1.ReadFile(ctx, sb.CAPath())
		if err != nil {
			return err
		}
		if !bytes.Equal(b, bundle) {
			return fmt.Errorf("%s holds %d bytes that are not the bundle", sb.CAPath(), len(b))
		}
		return nil
	}))
	sb.Eventually(t, within(sb)-time.Since(injected)+time.Second, sandbox.ConntrackKey+"=1 again on "+a2.Name, check(func(ctx context.Context) error {
		v, err := a2.Sysctl(ctx, sandbox.ConntrackKey)
		if err != nil {
			return err
		}
		if v != "1" {
			return fmt.Errorf("%s=%s", sandbox.ConntrackKey, v)
		}
		return nil
	}))
	sb.Eventually(t, within(sb)-time.Since(injected)+time.Second, "app "+sandbox.AppID+" back to 1 instance of "+wantImage+" in Marathon",
		check(func(context.Context) error {
			app, ok, err := sb.App(sandbox.AppID)
			if err != nil || !ok {
				return fmt.Errorf("app: ok=%v err=%v", ok, err)
			}
			if app.Instances != 1 || app.Container.Docker.Image != wantImage {
				return fmt.Errorf("instances=%d image=%s", app.Instances, app.Container.Docker.Image)
			}
			return nil
		}))
	ready(t, sb)
	driftRisen(t, sb, before, map[string]float64{"trust": 1, "conntrack": 1, "app": 1})
	after := metrics(t, sb)
	pushPull(t, sb, 2, 1, "e2e/drift:1")

	// A crashed registry task is Marathon's to relaunch; the operator
	// sees the registry serve again and corrects nothing.
	app, _, _ := sb.App(sandbox.AppID)
	if len(app.Tasks) != 1 {
		sb.Fail(t, "one registry task before the kill", fmt.Sprintf("%+v", app.Tasks))
	}
	old := app.Tasks[0].ID
	if !sb.Sim.KillTask(sandbox.AppID) {
		sb.Fail(t, "a registry task to kill", "none")
	}
	sb.Eventually(t, within(sb), "a new registry task, running and healthy, replacing "+old, check(func(context.Context) error {
		app, _, err := sb.App(sandbox.AppID)
		if err != nil {
			return err
		}
		for _, tk := range app.Tasks {
			if tk.ID != old && tk.State == "TASK_RUNNING" && tk.Healthy() {
				return nil
			}
		}
		return fmt.Errorf("tasks: %+v", app.Tasks)
	}))
	ready(t, sb)
	if v, _ := metrics(t, sb).Get(driftMetric, "reconciler", "app"); v != func() float64 { x, _ := after.Get(driftMetric, "reconciler", "app"); return x }() {
		sb.Fail(t, "no app drift correction for a task Marathon relaunched itself", fmt.Sprintf("%s{reconciler=\"app\"} = %g", driftMetric, v))
	}
	pushPull(t, sb, 1, 2, "e2e/drift:2")
}

// scaleAndRetag does what a person with the Marathon API would: scale the
// registry app to 0 and give it another image, in one forced PUT.
func scaleAndRetag(t *testing.T, sb *sandbox.Sandbox, ctx context.Context, image string) {
	t.Helper()
	code, body, err := sb.Marathon(ctx, http.MethodGet, "/v2/apps"+sandbox.AppID, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET app: %d %v %s", code, err, body)
	}
	var cur struct {
		App struct {
			Container map[string]any `json:"container"`
		} `json:"app"`
	}
	if err := json.Unmarshal(body, &cur); err != nil {
		t.Fatal(err)
	}
	docker, _ := cur.App.Container["docker"].(map[string]any)
	if docker == nil {
		t.Fatalf("app has no docker container: %s", body)
	}
	docker["image"] = image
	code, body, err = sb.Marathon(ctx, http.MethodPut, "/v2/apps"+sandbox.AppID+"?force=true",
		map[string]any{"instances": 0, "container": cur.App.Container})
	if err != nil || code != http.StatusOK {
		t.Fatalf("PUT app: %d %v %s", code, err, body)
	}
}
