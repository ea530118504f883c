//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/htpasswd"
	"github.com/registry-operator/registry-operator/internal/testing/sandbox"
)

// Last: it turns auth on for good (a hot reload of the shared sandbox's
// config, which restarts the registry once on its new config.yml), where a
// sandbox of its own would cost another cold start.
func init() { register(13, "auth", auth) }

// auth: with spec.auth and spec.pullCredentials, anonymous pushes and
// pulls are refused; the ci user pushes; another agent pulls with nothing
// but the credentials the operator distributed (config.json, and the
// docker.tar.gz unpacked as Mesos does); a new ci password works without
// a registry restart; and a pull password rotation under a pull loop from
// every agent never refuses a pull, after which the old password is refused.
func auth(t *testing.T, sb *sandbox.Sandbox) {
	ready(t, sb)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pushPull(t, sb, 1, 2, "e2e/auth:before")
	task0 := registryTask(t, sb)

	if err := sb.EnableAuth(0); err != nil {
		t.Fatal(err)
	}
	// The new config.yml restarts the registry once; every agent gets the
	// pull credentials.
	sb.Eventually(t, convergeTimeout, "auth in force: the registry restarted on its new config, refusing anonymous pulls, "+
		"and every agent holds the pull credentials", check(func(ctx context.Context) error {
		if ok, found := sb.Converged(ctx); !ok {
			return fmt.Errorf("not converged: %s", found)
		}
		if task := registryTask(t, sb); task == task0 {
			return fmt.Errorf("registry task %s still runs from the config without auth", task)
		}
		if _, err := sb.PullAs(ctx, 2, "e2e/auth:before", sandbox.Creds{}); !sandbox.Unauthorized(err) {
			return fmt.Errorf("anonymous pull: %v, want 401", err)
		}
		for i := range sb.Agents() {
			if _, _, err := sb.PullCredentials(ctx, i, sandbox.DockerConfig); err != nil {
				return err
			}
		}
		return nil
	}))

	// Anonymous push refused; ci pushes; agent 2 pulls with config.json
	// alone, then with the docker.tar.gz unpacked into a task sandbox.
	if _, err := sb.PushAs(ctx, 1, "e2e/auth:anonymous", sandbox.Creds{}); !sandbox.Unauthorized(err) {
		sb.Fail(t, "an anonymous push is refused with 401", fmt.Sprint(err))
	}
	ci := ciCreds(t, sb)
	pushed, err := sb.PushAs(ctx, 1, "e2e/auth:ci", ci)
	if err != nil {
		sb.Fail(t, "the ci user pushes from agent 1", err.Error())
	}
	pullAs(t, sb, ctx, 2, "e2e/auth:ci", sandbox.Creds{AuthFile: sandbox.DockerConfig}, pushed)
	taskDir := filepath.Join(sb.Dir, "mesos-task-sandbox")
	if err := os.MkdirAll(taskDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := sb.Exec(ctx, 2, "tar", "-xzf", sandbox.DockerTarGz, "-C", taskDir); err != nil {
		sb.Fail(t, "docker.tar.gz on agent 2 unpacks", fmt.Sprintf("%v\n%s", err, out))
	}
	pullAs(t, sb, ctx, 2, "e2e/auth:ci", sandbox.Creds{AuthFile: filepath.Join(taskDir, ".docker", "config.json")}, pushed)

	ciPasswordChange(t, sb, ctx, ci)
	pullRotation(t, sb, ctx)
	noSecretInMarathon(t, sb, ci)
}

func ciCreds(t *testing.T, sb *sandbox.Sandbox) sandbox.Creds {
	t.Helper()
	pw, err := sb.CIPassword()
	if err != nil {
		t.Fatal(err)
	}
	return sandbox.Creds{User: sandbox.CIUser, Password: pw}
}

func pullAs(t *testing.T, sb *sandbox.Sandbox, ctx context.Context, agent int, ref string, c sandbox.Creds, want string) {
	t.Helper()
	got, err := sb.PullAs(ctx, agent, ref, c)
	if err != nil {
		sb.Fail(t, fmt.Sprintf("agent %d pulls %s with %s", agent, ref, c), err.Error())
	}
	if got != want {
		sb.Fail(t, "the pulled manifest is the pushed one ("+want+")", got)
	}
}

// ciPasswordChange: a new password in the ci user's passwordFile pushes
// and the old one is refused within a pass or two, from the same registry
// task (the registry re-reads htpasswd; no restart).
func ciPasswordChange(t *testing.T, sb *sandbox.Sandbox, ctx context.Context, old sandbox.Creds) {
	t.Helper()
	task := registryTask(t, sb)
	if err := sb.SetCIPassword(old.Password + "-changed"); err != nil {
		t.Fatal(err)
	}
	next := ciCreds(t, sb)
	sb.Eventually(t, 2*within(sb), "the new ci password pushes and the old one is refused", check(func(ctx context.Context) error {
		if _, err := sb.PushAs(ctx, 1, "e2e/auth:ci-new-password", next); err != nil {
			return fmt.Errorf("push with the new password: %w", err)
		}
		if _, err := sb.PushAs(ctx, 1, "e2e/auth:ci-old-password", old); !sandbox.Unauthorized(err) {
			return fmt.Errorf("push with the old password: %v, want 401", err)
		}
		return nil
	}))
	if now := registryTask(t, sb); now != task {
		sb.Fail(t, "the same registry task after a ci password change ("+task+")", now)
	}
}

// pullRotation: with pullPasswordRotation at its minimum (1m), the pull
// password rotates while every agent pulls in a loop with the config.json
// the operator keeps; no pull fails. Once the previous generation is
// dropped, its password is refused.
func pullRotation(t *testing.T, sb *sandbox.Sandbox, ctx context.Context) {
	t.Helper()
	ref := "e2e/auth:pulled-in-a-loop"
	digest, err := sb.PushAs(ctx, 1, ref, ciCreds(t, sb))
	if err != nil {
		sb.Fail(t, "the ci user pushes "+ref, err.Error())
	}
	oldUser, oldPassword, err := sb.PullCredentials(ctx, 1, sandbox.DockerConfig)
	if err != nil {
		t.Fatal(err)
	}
	loop := startPullLoops(sb, ref, digest)
	if err := sb.EditConfig(func(r *v1alpha1.Registry) {
		r.Spec.Auth.Htpasswd.PullPasswordRotation = v1alpha1.D(time.Minute)
	}); err != nil {
		t.Fatal(err)
	}
	// Rotation (at most 1m after the first password), the new user into
	// htpasswd, to every agent, then the grace (30s) and the old user out.
	sb.Eventually(t, 150*time.Second, "a new pull password on every agent and "+oldUser+" dropped from the registry's htpasswd",
		check(func(ctx context.Context) error { return rotatedPast(ctx, sb, oldUser) }))
	// Pulls go on a moment with only the new password valid.
	time.Sleep(sb.Interval())
	pulls, failures := loop.stop()
	if len(failures) > 0 {
		sb.Fail(t, "no pull fails during the pull password rotation", joinLines(failures))
	}
	for i, n := range pulls {
		if n < 3 {
			sb.Fail(t, "every agent pulled several times during the rotation", fmt.Sprintf("agent %d pulled %d times", i, n))
		}
	}
	t.Logf("pulls during the rotation, by agent: %v", pulls)
	if _, err := sb.PullAs(ctx, 2, ref, sandbox.Creds{User: oldUser, Password: oldPassword}); !sandbox.Unauthorized(err) {
		sb.Fail(t, "the previous pull password ("+oldUser+") is refused with 401 after the rotation", fmt.Sprint(err))
	}
	// No further rotation while the suite ends.
	if err := sb.EditConfig(func(r *v1alpha1.Registry) {
		r.Spec.Auth.Htpasswd.PullPasswordRotation = v1alpha1.D(720 * time.Hour)
	}); err != nil {
		t.Fatal(err)
	}
}

// rotatedPast checks that the rotation away from oldUser is complete: the
// operator accepts only a newer user, every agent carries it, and the
// htpasswd file on the registry's agent no longer holds oldUser.
func rotatedPast(ctx context.Context, sb *sandbox.Sandbox, oldUser string) error {
	st, err := sb.Status(ctx)
	if err != nil {
		return err
	}
	pp := st.PullPassword
	if pp == nil || pp.User == oldUser || slices.Contains(pp.ValidUsers, oldUser) {
		return fmt.Errorf("pull password status %+v", pp)
	}
	for i := range sb.Agents() {
		user, _, err := sb.PullCredentials(ctx, i, sandbox.DockerConfig)
		if err != nil {
			return err
		}
		if user != pp.User {
			return fmt.Errorf("agent %d carries %s, want %s", i, user, pp.User)
		}
	}
	b, err := sb.RegistryAgent().ReadFile(ctx, filepath.Join(sb.CertsDir(), "htpasswd"))
	if err != nil {
		return err
	}
	users, err := htpasswd.Parse(b)
	if err != nil {
		return err
	}
	if _, ok := users[oldUser]; ok {
		return fmt.Errorf("htpasswd on the registry's agent still holds %s", oldUser)
	}
	return nil
}

// pullLoops pull one image on every agent, again and again, with the
// agent's config.json, until stopped.
type pullLoops struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	mu       sync.Mutex
	pulls    []int
	failures []string
}

func startPullLoops(sb *sandbox.Sandbox, ref, digest string) *pullLoops {
	ctx, cancel := context.WithCancel(context.Background())
	l := &pullLoops{cancel: cancel, pulls: make([]int, len(sb.Agents()))}
	for i := range sb.Agents() {
		l.wg.Go(func() {
			for ctx.Err() == nil {
				got, err := sb.PullAs(ctx, i, ref, sandbox.Creds{AuthFile: sandbox.DockerConfig})
				if ctx.Err() != nil {
					return // stopped mid-pull: not a result
				}
				l.mu.Lock()
				switch {
				case err != nil:
					l.failures = append(l.failures, fmt.Sprintf("%s agent %d: %v", time.Now().Format(time.TimeOnly), i, err))
				case got != digest:
					l.failures = append(l.failures, fmt.Sprintf("agent %d pulled %s, want %s", i, got, digest))
				default:
					l.pulls[i]++
				}
				l.mu.Unlock()
				select {
				case <-ctx.Done():
				case <-time.After(2 * time.Second): // three loops on a shared 2-core machine
				}
			}
		})
	}
	return l
}

func (l *pullLoops) stop() (pulls []int, failures []string) {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.pulls), slices.Clone(l.failures)
}

// noSecretInMarathon: the registry app as Marathon returns it carries no
// password (ci's, old or new) nor the pull password.
func noSecretInMarathon(t *testing.T, sb *sandbox.Sandbox, ci sandbox.Creds) {
	t.Helper()
	raw, ok := sb.Sim.App(sandbox.AppID)
	if !ok {
		sb.Fail(t, "app "+sandbox.AppID+" in Marathon", "none")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, pull, err := sb.PullCredentials(ctx, 1, sandbox.DockerConfig)
	if err != nil {
		t.Fatal(err)
	}
	next := ciCreds(t, sb)
	for what, s := range map[string]string{"the first ci password": ci.Password, "the ci password": next.Password, "the pull password": pull} {
		if bytes.Contains(raw, []byte(s)) {
			sb.Fail(t, "no secret in the Marathon app", what+" is in it")
		}
	}
	if strings.Contains(string(raw), "REGISTRY_HTTP_SECRET") {
		sb.Fail(t, "no HTTP secret in the Marathon app's env", "REGISTRY_HTTP_SECRET is in it")
	}
}
