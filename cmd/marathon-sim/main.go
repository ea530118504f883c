// Command marathon-sim serves the Marathon emulator (internal/testing/marathonsim)
// on its own, for demos, manual testing and benchmarks:
//
//	marathon-sim --listen 127.0.0.1:8080 --agents agent-1=198.18.0.11,agent-2=198.18.0.12
//	marathon-sim --agents agents.json --executor process
//
// --agents is either a file or a comma-separated list of hostname[=ip]. A
// file holds a JSON array of {"hostname","ip","attributes","enter"} or lines
// of "hostname ip [enter command...]".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/registry-operator/registry-operator/internal/testing/marathonsim"
)

type agentFile struct {
	Hostname   string            `json:"hostname"`
	IP         string            `json:"ip"`
	Attributes map[string]string `json:"attributes"`
	Enter      []string          `json:"enter"`
	Inactive   bool              `json:"inactive"`
}

func parseAgents(v string) ([]marathonsim.Agent, error) {
	if v == "" {
		return nil, nil
	}
	b, err := os.ReadFile(v)
	if errors.Is(err, os.ErrNotExist) {
		var out []marathonsim.Agent
		for _, item := range strings.Split(v, ",") {
			host, ip, _ := strings.Cut(strings.TrimSpace(item), "=")
			if host == "" {
				return nil, fmt.Errorf("--agents %q: empty hostname", v)
			}
			out = append(out, marathonsim.Agent{Hostname: host, IP: ip})
		}
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read agents file: %w", err)
	}
	if trimmed := strings.TrimSpace(string(b)); strings.HasPrefix(trimmed, "[") {
		var list []agentFile
		if err := json.Unmarshal(b, &list); err != nil {
			return nil, fmt.Errorf("agents file %s: %w", v, err)
		}
		var out []marathonsim.Agent
		for _, a := range list {
			out = append(out, marathonsim.Agent{Hostname: a.Hostname, IP: a.IP, Attributes: a.Attributes, Enter: a.Enter, Inactive: a.Inactive})
		}
		return out, nil
	}
	var out []marathonsim.Agent
	for n, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("agents file %s line %d: want \"hostname ip [enter...]\"", v, n+1)
		}
		out = append(out, marathonsim.Agent{Hostname: f[0], IP: f[1], Enter: f[2:]})
	}
	return out, nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve the Marathon and Mesos APIs on")
	agents := flag.String("agents", "agent-1=127.0.0.1", "agents file, or comma-separated hostname[=ip] list")
	executor := flag.String("executor", "mem", "task executor: mem (in-memory, always healthy) or process (real processes)")
	checkEvery := flag.Duration("check-interval", 0, "process executor: override every health check interval")
	containerPorts := flag.Bool("container-ports", false, "process executor: bridge tasks listen on agentIP:containerPort instead of an assigned host port")
	mesosRedirect := flag.String("mesos-redirect", "", "answer /master/slaves with 307 to this leader URL")
	flag.Parse()

	list, err := parseAgents(*agents)
	if err != nil {
		log.Fatal(err)
	}
	opts := marathonsim.Options{Agents: list, Leader: *listen, MesosRedirect: *mesosRedirect}
	switch *executor {
	case "mem":
		opts.Executor = marathonsim.NewMemExec()
	case "process":
		opts.Executor = marathonsim.NewProcExec(marathonsim.ProcOptions{AllowCmd: true, CheckInterval: *checkEvery, Log: os.Stderr, ContainerPortAsHostPort: *containerPorts})
	default:
		log.Fatalf("--executor %q: want mem or process", *executor)
	}
	sim := marathonsim.New(opts)
	srv := &http.Server{Addr: *listen, Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		// Closing the emulator first ends the event streams Shutdown would wait for.
		sim.Close()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	log.Printf("marathon-sim: serving on http://%s with %d agents (%s executor)", *listen, len(list), *executor)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("marathon-sim: %v", err)
	}
	sim.Close()
}
