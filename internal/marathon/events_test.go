package marathon

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	clocktesting "k8s.io/utils/clock/testing"
)

const firstStream = `event: event_stream_attached
data: {"remoteAddress":"127.0.0.1","eventType":"event_stream_attached","timestamp":"2024-01-01T00:00:00Z"}

: keepalive

event: deployment_success
data: {"id":"dep-1","plan":{"id":"dep-1","steps":[{"actions":[{"action":"RestartApplication","app":"/registry"}]}]},"eventType":"deployment_success","timestamp":"2024-01-01T00:00:01Z"}

event: framework_message_event
data: {"eventType":"framework_message_event"}

event: instance_changed_event
data: {"instanceId":"registry.instance-1","condition":"Running","runSpecId":"/registry","eventType":"instance_changed_event"}

event: status_update_event
data: {"taskId":"ui.1","taskStatus":"TASK_RUNNING","appId":"/registry-ui","eventType":"status_update_event"}

`

func TestWatchDeliversAppEventsAndReconnects(t *testing.T) {
	var conns atomic.Int32
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "text/event-stream" {
			w.WriteHeader(405)
			return
		}
		n := conns.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		if n == 1 {
			fmt.Fprint(w, firstStream)
			return // the stream drops
		}
		fmt.Fprint(w, "event: event_stream_attached\ndata: {\"eventType\":\"event_stream_attached\"}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	c := newClient(t, Options{URLs: []string{f.srv.URL}})
	clk := clocktesting.NewFakeClock(time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan Event, 16)
	done := make(chan error, 1)
	go func() { done <- c.Watch(ctx, clk, logr.Discard(), func(e Event) { events <- e }) }()

	want := []Event{
		{Type: EventAttached},
		{Type: "deployment_success", AppIDs: []string{"/registry"}, DeploymentID: "dep-1"},
		{Type: "instance_changed_event", AppIDs: []string{"/registry"}},
		{Type: "status_update_event", AppIDs: []string{"/registry-ui"}},
	}
	for _, w := range want {
		got := <-events
		if got.Type != w.Type || !slices.Equal(got.AppIDs, w.AppIDs) || got.DeploymentID != w.DeploymentID {
			t.Errorf("event %+v, want %+v", got, w)
		}
	}
	// The stream dropped: Watch waits for its backoff on the clock, then reconnects.
	for !clk.HasWaiters() {
		time.Sleep(time.Millisecond)
	}
	clk.Step(2 * time.Minute)
	if got := <-events; got.Type != EventAttached {
		t.Errorf("after reconnect got %+v, want %s", got, EventAttached)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Watch returned %v", err)
	}
	q := f.requests()[0].URL.Query()["event_type"]
	if !slices.Contains(q, "deployment_success") {
		t.Errorf("no server-side event filter: %v", q)
	}
}
