// Package marathonsim emulates the parts of Marathon 1.5+ (and of the Mesos
// master) that registry-operator talks to, closely enough that the real
// go-marathon client and the operator's own raw requests cannot tell the
// difference in the cases the project tests: app CRUD with Marathon's
// normalisation and defaults, validation errors, deployments with steps and
// locks, tasks with health results, the SSE event bus and Mesos /master/slaves.
//
// Behaviour follows Marathon 1.7 (the version whose JSON schema is embedded):
// maxLaunchDelaySeconds defaults to 3600, unreachableStrategy to 0/0, answers
// are always in the 1.5 "networks" format.
package marathonsim

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Agent is a Mesos agent the emulator schedules tasks on.
type Agent struct {
	Hostname string
	IP       string
	// ID is the Mesos agent id; generated ("<cluster>-S<n>") when empty.
	ID string
	// Attributes are the agent's Mesos text attributes (constraint fields
	// other than "hostname" match against them).
	Attributes map[string]string
	// Inactive agents are listed with "active": false and get no tasks.
	Inactive bool
	// Enter is a command prefix that runs a command inside the agent's
	// namespaces (e.g. "nsenter --net=/run/netns/a1 --mount=/proc/123/ns/mnt").
	// Only ProcExec uses it; empty means "run on this host".
	Enter []string
}

// Options configure a Server.
type Options struct {
	Agents []Agent
	// Executor runs tasks; defaults to a fresh MemExec (every task healthy).
	Executor Executor
	// Clock drives deployments, health bookkeeping and timestamps; defaults
	// to the real clock. Tests may pass a fake clock and call Step.
	Clock clock.WithTicker
	// Tick is how often deployments and tasks are advanced (default 50ms).
	Tick time.Duration
	// Leader is reported by /v2/info and /v2/leader (default "marathon.mesos:8080").
	Leader string
	// MesosRedirect, when set, makes GET /master/slaves answer 307 to this
	// URL (a non-leading Mesos master).
	MesosRedirect string
	// IgnoreUnknownFields accepts app fields the schema does not know, as
	// Marathon does. By default the emulator refuses them with 422 (schema
	// additionalProperties) so that typos in clients show up in tests.
	IgnoreUnknownFields bool
}

// Write is one state-changing request the emulator received.
type Write struct {
	Time   time.Time
	Method string
	Path   string
	Query  string
	Body   []byte
	Status int
}

// Fault makes matching requests fail or slow down.
type Fault struct {
	// Status answers matching requests with this HTTP status (0: no status override).
	Status int
	// Body is the response body; empty gives Marathon's shape for the status
	// (503 has an empty body, others {"message": ...}).
	Body string
	// Paths is a comma-separated list of path prefixes or path.Match globs
	// (containing '*'); empty matches every path.
	Paths string
	// Methods is a comma-separated list of HTTP methods; empty matches all.
	Methods string
	// Remaining is how many matching requests the fault answers before it
	// clears itself; 0 means no count limit.
	Remaining int
	// Until clears the fault at this instant (Options.Clock); zero: no limit.
	Until time.Time
	// Delay is added to matching requests before they are answered.
	Delay time.Duration
}

// Server is a running emulator. Its zero value is not usable; call New.
type Server struct {
	mu            sync.Mutex
	clock         clock.WithTicker
	exec          Executor
	leader        string
	mesosURL      string
	ignoreUnknown bool

	agents   []agentState
	agentSeq int

	apps        map[string]*app
	tasks       map[string]*task // by task id
	deployments []*deployment
	nextSvcPort int
	lastVersion time.Time

	writes  []Write
	faults  []Fault
	latency time.Duration

	events *broker
	mux    *http.ServeMux

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// New starts an emulator. Call Close to stop it and every task it runs.
func New(opts Options) *Server {
	s := &Server{
		clock:         opts.Clock,
		exec:          opts.Executor,
		leader:        opts.Leader,
		mesosURL:      opts.MesosRedirect,
		ignoreUnknown: opts.IgnoreUnknownFields,
		apps:          map[string]*app{},
		tasks:         map[string]*task{},
		nextSvcPort:   servicePortMin,
		stop:          make(chan struct{}),
		done:          make(chan struct{}),
	}
	if s.clock == nil {
		s.clock = clock.RealClock{}
	}
	if s.exec == nil {
		s.exec = NewMemExec()
	}
	if s.leader == "" {
		s.leader = "marathon.mesos:8080"
	}
	s.events = newBroker()
	s.setAgentsLocked(opts.Agents)
	s.mux = s.routes()
	tick := opts.Tick
	if tick <= 0 {
		tick = 50 * time.Millisecond
	}
	go s.loop(tick)
	return s
}

func (s *Server) loop(tick time.Duration) {
	defer close(s.done)
	t := s.clock.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C():
			s.Step()
		}
	}
}

// Step advances every deployment and task once (what the background loop
// does each tick). Tests with a fake clock call it directly.
func (s *Server) Step() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stepLocked()
}

// Handler serves the Marathon API and the Mesos master endpoints.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Close stops the emulator, kills every task and ends event streams.
func (s *Server) Close() {
	s.stopOnce.Do(func() {
		close(s.stop)
		<-s.done
		s.events.close()
		s.mu.Lock()
		for _, t := range s.tasks {
			t.handle.Kill()
		}
		s.tasks = map[string]*task{}
		s.mu.Unlock()
		if c, ok := s.exec.(interface{ Close() }); ok {
			c.Close()
		}
	})
}

// App returns the app as GET /v2/apps/{id} would (the "app" object, with
// counts, tasks and deployments embedded).
func (s *Server) App(id string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[canonicalID(id)]
	if !ok {
		return nil, false
	}
	b, _ := json.Marshal(s.appInfoLocked(a, embedAll))
	return b, true
}

// Writes returns every state-changing request received so far.
func (s *Server) Writes() []Write {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Write(nil), s.writes...)
}

// ResetWrites forgets the recorded writes.
func (s *Server) ResetWrites() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes = nil
}

// SetFault replaces the active faults with f; SetFault(Fault{}) clears them.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
	if f != (Fault{}) {
		s.faults = append(s.faults, f)
	}
}

// AddFault adds f to the active faults (the first matching one applies).
func (s *Server) AddFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// SetLatency delays every request (except the event stream) by d.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetMesosRedirect makes /master/slaves answer 307 to url ("" to serve it).
func (s *Server) SetMesosRedirect(url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mesosURL = url
}

// SetAgents replaces the agent list. Tasks on agents that are gone are lost
// and Marathon relaunches them elsewhere.
func (s *Server) SetAgents(agents []Agent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setAgentsLocked(agents)
	s.loseTasksOnMissingAgentsLocked()
}

// Agents returns the agents as the emulator knows them (with ids filled).
func (s *Server) Agents() []Agent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Agent, len(s.agents))
	for i, a := range s.agents {
		out[i] = a.Agent
	}
	return out
}

// KillTask kills the youngest task of an app as if it had crashed; Marathon
// then launches a replacement. It reports whether a task was killed.
func (s *Server) KillTask(appID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.appTasksLocked(canonicalID(appID))
	if len(ts) == 0 {
		return false
	}
	t := ts[len(ts)-1]
	t.handle.Kill()
	s.terminateLocked(t, "TASK_FAILED", "Command exited with status 137 (killed)")
	return true
}

// DeploymentIDs returns the ids of the running deployments.
func (s *Server) DeploymentIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, d := range s.deployments {
		ids = append(ids, d.id)
	}
	return ids
}

// WaitIdle blocks until no deployment runs or ctx ends.
func (s *Server) WaitIdle(ctx context.Context) error {
	for {
		s.mu.Lock()
		n := len(s.deployments)
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
