package marathonsim

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// registryConfigArg is the config file an app's args name for the registry
// image, whose entrypoint runs `registry <args>`: "serve <path>".
func registryConfigArg(app AppSpec) (string, bool) {
	if len(app.Args) == 2 && app.Args[0] == "serve" && strings.HasPrefix(app.Args[1], "/") {
		return app.Args[1], true
	}
	return "", false
}

// registryConfigFromFile reads the config file the app's args name, as the
// container would through its volumes: from the agent, at the volume's host
// path. The process runs on the agent without the container's mounts, so
// every path in the file under a volume's containerPath is rewritten to
// the volume's hostPath, and http.addr to the task's address (no NAT here).
// A file that is absent fails the launch, as the registry would exit.
func registryConfigFromFile(spec LaunchSpec, file, listen string) ([]byte, error) {
	hostFile := translatePath(file, spec.App)
	if hostFile == file {
		return nil, fmt.Errorf("app %s: args name %s, which is in no hostPath volume", spec.AppID, file)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	argv := append(append([]string(nil), spec.Agent.Enter...), "cat", hostFile)
	b, err := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
	if err != nil {
		return nil, fmt.Errorf("app %s on %s: registry config %s (host path %s): %w", spec.AppID, spec.Agent.Hostname, file, hostFile, err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("app %s: registry config %s: %w", spec.AppID, file, err)
	}
	translated, _ := translateTree(cfg, spec.App).(map[string]any)
	httpSec, _ := translated["http"].(map[string]any)
	if httpSec == nil {
		httpSec = map[string]any{}
		translated["http"] = httpSec
	}
	httpSec["addr"] = listen
	out, err := yaml.Marshal(translated)
	if err != nil {
		return nil, fmt.Errorf("app %s: registry config %s: %w", spec.AppID, file, err)
	}
	return out, nil
}

// translateTree rewrites every absolute path string in v through the app's
// volumes.
func translateTree(v any, app AppSpec) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = translateTree(e, app)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = translateTree(e, app)
		}
		return x
	case string:
		if strings.HasPrefix(x, "/") {
			return translatePath(x, app)
		}
	}
	return v
}
