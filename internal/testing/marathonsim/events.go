package marathonsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// broker fans events out to SSE subscribers. Publishing never blocks: a
// subscriber that falls behind loses events, as with Marathon.
type broker struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
}

type subscriber struct {
	ch     chan sseEvent
	filter map[string]bool
}

type sseEvent struct {
	name string
	data []byte
}

func newBroker() *broker { return &broker{subs: map[*subscriber]struct{}{}} }

func (b *broker) subscribe(filter map[string]bool) *subscriber {
	b.mu.Lock()
	defer b.mu.Unlock()
	sub := &subscriber{ch: make(chan sseEvent, 1024), filter: filter}
	if b.closed {
		close(sub.ch)
		return sub
	}
	b.subs[sub] = struct{}{}
	return sub
}

func (b *broker) unsubscribe(sub *subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[sub]; ok {
		delete(b.subs, sub)
		close(sub.ch)
	}
}

func (b *broker) publish(ev sseEvent) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for sub := range b.subs {
		if len(sub.filter) > 0 && !sub.filter[ev.name] {
			continue
		}
		select {
		case sub.ch <- ev:
		default:
		}
	}
}

func (b *broker) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for sub := range b.subs {
		close(sub.ch)
	}
	b.subs = map[*subscriber]struct{}{}
}

// emitLocked publishes one event with Marathon's eventType and timestamp.
func (s *Server) emitLocked(eventType string, payload map[string]any) {
	payload["eventType"] = eventType
	payload["timestamp"] = fmtTime(s.clock.Now())
	b, err := json.Marshal(payload)
	if err != nil {
		return
	}
	s.events.publish(sseEvent{name: eventType, data: b})
}

var instanceCondition = map[string]string{
	"TASK_STAGING": "Staging", "TASK_STARTING": "Starting", "TASK_RUNNING": "Running",
	"TASK_FINISHED": "Finished", "TASK_FAILED": "Failed", "TASK_KILLED": "Killed",
	"TASK_LOST": "Gone", "TASK_ERROR": "Error", "TASK_DROPPED": "Dropped", "TASK_GONE": "Gone",
}

// emitStatusLocked sends the status_update_event and instance_changed_event
// Marathon publishes for a Mesos status update.
func (s *Server) emitStatusLocked(t *task, state, msg string) {
	s.emitLocked("status_update_event", map[string]any{
		"slaveId": t.agent.ID, "taskId": t.id, "taskStatus": state, "message": msg,
		"appId": t.appID, "host": t.agent.Hostname, "ports": nonNilInts(t.ports),
		"ipAddresses": []any{map[string]any{"ipAddress": t.agent.IP, "protocol": "IPv4"}},
		"version":     fmtTime(t.version),
	})
	s.emitLocked("instance_changed_event", map[string]any{
		"instanceId": t.instanceID, "condition": instanceCondition[state], "runSpecId": t.appID,
		"agentId": t.agent.ID, "host": t.agent.Hostname, "runSpecVersion": fmtTime(t.version),
	})
}

// serveEvents is GET /v2/events: Jetty's EventSourceServlet refuses
// anything but Accept: text/event-stream with 405.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		w.Header().Set("Content-Type", "text/html;charset=iso-8859-1")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = fmt.Fprint(w, "<html><body><h2>HTTP ERROR 405</h2><p>Problem accessing /v2/events. Reason: Method Not Allowed</p></body></html>")
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	filter := map[string]bool{}
	for _, t := range r.URL.Query()["event_type"] {
		filter[t] = true
	}
	sub := s.events.subscribe(filter)
	defer s.events.unsubscribe(sub)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	s.mu.Lock()
	s.emitLocked("event_stream_attached", map[string]any{"remoteAddress": remoteIP(r)})
	s.mu.Unlock()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-sub.ch:
			if !ok {
				return
			}
			if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.name, ev.data); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}

func remoteIP(r *http.Request) string {
	host := r.RemoteAddr
	if i := strings.LastIndex(host, ":"); i >= 0 {
		host = host[:i]
	}
	return strings.Trim(host, "[]")
}
