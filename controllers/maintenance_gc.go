package controllers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"

	"github.com/registry-operator/registry-operator/api/v1alpha1"
	"github.com/registry-operator/registry-operator/internal/gcwindow"
	"github.com/registry-operator/registry-operator/internal/nodes"
	"github.com/registry-operator/registry-operator/internal/registryconfig"
	"github.com/registry-operator/registry-operator/internal/registrygc"
)

// gcConfigFile is the config the binary runner's garbage-collect reads,
// beside the registry's own in app.certsHostPath: the same registry, with
// its storage at dataHostPath as the agent sees it (the registry's own
// file names the path inside the container).
const gcConfigFile = "gc-config.yml"

// gcBoundMargin: the connection's bound on garbage-collect exceeds the
// window's own timeout, so the window (not the connection) ends a hung
// command and counts it as a timeout.
const gcBoundMargin = 2 * gcwindow.Poll

// gcRun is the garbage-collect this process started.
type gcRun struct {
	running, done bool
	err           error
	freed         uint64
	report        registrygc.Report
	cancel        context.CancelFunc
}

// gcCommand is the command a run executes on the data agent.
func gcCommand(spec *v1alpha1.Spec) registrygc.Command {
	g, a := spec.Maintenance.GarbageCollection, spec.App
	c := registrygc.Command{Runner: registrygc.Runner(g.Runner), DeleteUntagged: g.DeleteUntagged}
	switch g.Runner {
	case v1alpha1.RunnerBinary:
		c.BinaryPath, c.ConfigPath = g.BinaryPath, path.Join(a.CertsHostPath, gcConfigFile)
	default:
		c.Image, c.DataHostPath, c.CertsHostPath = a.Image, a.DataHostPath, a.CertsHostPath
	}
	return c
}

// startGC starts garbage-collect on agent in the background; the next
// passes see it running, done or failed.
func (r *Maintenance) startGC(spec *v1alpha1.Spec, agent string, w gcwindow.Window) {
	ctx, cancel := context.WithCancel(r.base)
	r.mu.Lock()
	r.gc = gcRun{running: true, cancel: cancel}
	r.mu.Unlock()
	r.Log.Info("garbage-collect starting", "run", w.RunID, "agent", agent, "runner", spec.Maintenance.GarbageCollection.Runner)
	cfg := nodes.ConfigFrom(spec.Nodes.SSH)
	cfg.CommandTimeout = spec.Maintenance.GarbageCollection.Timeout.Duration + gcBoundMargin
	go func() {
		defer cancel()
		var run gcRun
		run.err = r.runGC(ctx, spec, cfg, agent, &run)
		r.mu.Lock()
		if r.gc.running && r.gc.cancel != nil {
			r.gc.running, r.gc.done, r.gc.err = false, run.err == nil, run.err
			r.gc.freed, r.gc.report = run.freed, run.report
		}
		r.mu.Unlock()
		if run.err != nil {
			r.Log.Error(run.err, "garbage-collect failed", "run", w.RunID, "agent", agent)
		} else {
			r.Log.Info("garbage-collect finished", "run", w.RunID, "deletedBlobs", run.report.DeletedBlobs,
				"freedBytes", run.freed)
		}
		r.opts.Wake()
	}()
}

// runGC runs the command on agent and measures what it freed.
func (r *Maintenance) runGC(ctx context.Context, spec *v1alpha1.Spec, cfg nodes.Config, agent string, run *gcRun) error {
	if agent == "" {
		return errors.New("the agent holding the registry's data is unknown")
	}
	cmd := gcCommand(spec)
	script, args, err := cmd.Script()
	if err != nil {
		return fmt.Errorf("garbage-collect command: %w", err)
	}
	var gcFile []byte
	if cmd.Runner == registrygc.RunnerBinary {
		if gcFile, err = r.renderGCConfig(spec); err != nil {
			return err
		}
	}
	data := spec.App.DataHostPath
	return r.opts.GCExec.Do(ctx, cfg, agent, func(ctx context.Context, c nodes.Conn) error {
		if spec.Report() {
			// Never reached (no window opens in report mode); a
			// recording connection refuses Run all the same.
			c = nodes.Recording(c)
		}
		if gcFile != nil {
			if err := c.WriteFile(ctx, cmd.ConfigPath, gcFile, 0o600); err != nil {
				return fmt.Errorf("write %s on %s: %w", cmd.ConfigPath, agent, err)
			}
		}
		before, err := c.StatVFS(ctx, data)
		if err != nil {
			return fmt.Errorf("statvfs %s on %s before garbage-collect: %w", data, agent, err)
		}
		out, err := c.Run(ctx, script, args...)
		if err != nil {
			return fmt.Errorf("garbage-collect on %s: %w%s", agent, err, tail(out))
		}
		if run.report, err = registrygc.Parse(out); err != nil {
			return fmt.Errorf("garbage-collect on %s: %w", agent, err)
		}
		after, err := c.StatVFS(ctx, data)
		if err != nil {
			return fmt.Errorf("statvfs %s on %s after garbage-collect: %w", data, agent, err)
		}
		run.freed = registrygc.FreedByStatVFS(before, after)
		return nil
	})
}

// renderGCConfig is the binary runner's config: the registry's, with the
// storage where the agent has it.
func (r *Maintenance) renderGCConfig(spec *v1alpha1.Spec) ([]byte, error) {
	c, err := registryConfigFor(spec, r.Store.PKI(), r.opts.ReadFile)
	if err != nil {
		return nil, fmt.Errorf("garbage-collect config: %w", err)
	}
	c.Storage.RootDirectory = spec.App.DataHostPath
	b, err := registryconfig.Render(c)
	if err != nil {
		return nil, fmt.Errorf("garbage-collect config: %w", err)
	}
	return b, nil
}

// stopGC ends a running garbage-collect (its session is killed).
func (r *Maintenance) stopGC() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gc.running && r.gc.cancel != nil {
		r.gc.cancel()
		r.gc.running, r.gc.err = false, errors.New("stopped: the window closed")
	}
}

// tail is the end of a command's output, for an error.
func tail(out []byte) string {
	out = bytes.TrimSpace(out)
	if len(out) == 0 {
		return ""
	}
	if len(out) > 400 {
		out = out[len(out)-400:]
	}
	return ": " + string(out)
}
