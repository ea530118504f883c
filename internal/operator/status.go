package operator

import (
	"net/http"
	"os"

	"github.com/registry-operator/registry-operator/internal/status"
)

func mountStatus(mux *http.ServeMux, o *Operator) {
	mux.Handle("/", status.NewHandler(o.store, o.configInfo, o.opts.Log.WithName("status")))
}

// configInfo is what the status page says about the spec and this instance.
func (o *Operator) configInfo() status.ConfigInfo {
	in := o.src.Info()
	host, _ := os.Hostname()
	ci := status.ConfigInfo{
		Path: in.Path, SpecYAML: in.YAML, LoadedAt: in.LoadedAt, LastReloadError: in.LastError,
		Mode: o.spec().Reconcile.Mode, Instance: host, Version: o.opts.Version, IsLeader: true,
	}
	if o.leader != nil {
		ci.IsLeader = o.leader.IsLeader()
		ci.Leader = o.leader.Leader().String()
	}
	return ci
}
