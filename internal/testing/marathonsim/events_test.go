package marathonsim

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

type sseFrame struct {
	name string
	data map[string]any
}

type sseStream struct {
	frames chan sseFrame
}

func openEvents(t *testing.T, base, query string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v2/events"+query, nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		t.Fatalf("events: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	s := &sseStream{frames: make(chan sseFrame, 4096)}
	go func() {
		defer close(s.frames)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var f sseFrame
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				f.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &f.data)
			case line == "":
				s.frames <- f
				f = sseFrame{}
			}
		}
	}()
	t.Cleanup(cancel)
	return s
}

func (s *sseStream) next(t *testing.T) sseFrame {
	t.Helper()
	select {
	case f, ok := <-s.frames:
		if !ok {
			t.Fatal("event stream ended")
		}
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return sseFrame{}
}

// waitFor returns the first event of that type, collecting the names seen.
func (s *sseStream) waitFor(t *testing.T, name string, seen *[]string) sseFrame {
	t.Helper()
	for {
		f := s.next(t)
		if seen != nil {
			*seen = append(*seen, f.name)
		}
		if f.name == name {
			return f
		}
	}
}

func TestEventStream(t *testing.T) {
	env := newManual(t, Options{})

	// Jetty's EventSourceServlet refuses anything but text/event-stream.
	if r := env.do(t, "GET", "/v2/events", nil); r.status != 405 {
		t.Fatalf("GET /v2/events with Accept json: %d", r.status)
	}

	all := openEvents(t, env.url, "")
	first := all.next(t)
	if first.name != "event_stream_attached" || first.data["eventType"] != "event_stream_attached" || first.data["remoteAddress"] == nil {
		t.Fatalf("first event: %+v", first)
	}
	filtered := openEvents(t, env.url, "?event_type=deployment_success&event_type=app_terminated_event")

	r := env.do(t, "POST", "/v2/apps", map[string]any{"id": "/web", "cmd": "serve", "healthChecks": []any{map[string]any{"protocol": "TCP"}}})
	depID := r.header.Get("Marathon-Deployment-Id")
	env.step(4)

	var seen []string
	succ := all.waitFor(t, "deployment_success", &seen)
	if succ.data["id"] != depID || obj(succ.data["plan"])["id"] != depID || succ.data["timestamp"] == nil {
		t.Fatalf("deployment_success: %+v", succ.data)
	}
	for _, want := range []string{"api_post_event", "group_change_success", "deployment_info", "status_update_event",
		"instance_changed_event", "health_status_changed_event", "instance_health_changed_event", "deployment_step_success"} {
		if !contains(seen, want) {
			t.Errorf("no %s before deployment_success: %v", want, seen)
		}
	}
	// event_type filters on the server: the filtered stream sees only its types.
	if f := filtered.next(t); f.name != "deployment_success" {
		t.Fatalf("filtered stream got %s", f.name)
	}

	env.do(t, "DELETE", "/v2/apps/web", nil)
	env.step(2)
	if f := filtered.next(t); f.name != "app_terminated_event" || f.data["appId"] != "/web" {
		t.Fatalf("filtered stream got %+v", f)
	}
}
