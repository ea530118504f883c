package marathon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
)

// EventAttached is delivered after every (re)connect of the event stream:
// events sent while disconnected are lost, so the consumer resyncs all.
const EventAttached = "event_stream_attached"

// appEvents are the event types that say an app or a deployment changed.
// Marathon filters on them server-side (≥1.3.7); Watch filters again.
var appEvents = []string{
	EventAttached,
	"deployment_success", "deployment_failed", "deployment_info", "deployment_step_success", "deployment_step_failure",
	"status_update_event", "instance_changed_event", "health_status_changed_event", "instance_health_changed_event",
	"failed_health_check_event", "unhealthy_instance_kill_event", "unhealthy_task_kill_event",
	"api_post_event", "app_terminated_event",
}

// Event is one app or deployment event, reduced to what a reconciler needs:
// which apps to look at. Order is not guaranteed (Marathon does not promise
// it): use events only as "look now", never as state.
type Event struct {
	Type         string
	AppIDs       []string
	DeploymentID string
}

// maxEvent bounds one event's data (and so one line): deployment plans can
// be large, but an event larger than this ends the stream with an error,
// and the resync after reconnecting covers whatever it said.
const maxEvent = 16 << 20

// Backoff bounds for reconnecting the event stream.
const (
	watchMinBackoff = time.Second
	watchMaxBackoff = time.Minute
)

// Watch follows /v2/events until ctx ends, calling fn for each app and
// deployment event and after each (re)connect. It reconnects with
// exponential backoff (with jitter), trying the members in failover order,
// and returns ctx.Err() only. fn must not block.
//
// go-marathon's own SSE listener is not used: v0.7.1 drops the ≥1.4 event
// types (instance_changed_event ...), delivers out of order through one
// goroutine per event, never fails over and surfaces no errors.
func (c *Client) Watch(ctx context.Context, clk clock.Clock, log logr.Logger, fn func(Event)) error {
	backoff := watchMinBackoff
	attempt := 0
	for {
		member := c.members[attempt%len(c.members)]
		attempt++
		got, err := c.stream(ctx, member, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if got {
			backoff = watchMinBackoff // the stream worked: start over
			attempt--                 // and stay on this member first
		}
		log.Info("marathon event stream ended, reconnecting", "url", member, "error", errText(err), "after", backoff)
		jitter := time.Duration(rand.Int64N(int64(backoff)/4 + 1))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-clk.After(backoff + jitter):
		}
		backoff = min(backoff*2, watchMaxBackoff)
	}
}

// stream reads one connection. got reports whether the stream attached.
func (c *Client) stream(ctx context.Context, member string, fn func(Event)) (got bool, err error) {
	q := url.Values{"event_type": appEvents}
	req, err := http.NewRequestWithContext(ctx, "GET", member+"/v2/events?"+q.Encode(), nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if err := c.authorize(req); err != nil {
		return false, err
	}
	resp, err := c.base.RoundTrip(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("GET /v2/events: HTTP %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxEvent+len("data: \r\n"))
	var name string
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data.Len() > 0 || name != "" {
				if ev, ok := parseEvent(name, data.String()); ok {
					got = got || ev.Type == EventAttached
					fn(ev)
				}
			}
			name = ""
			data.Reset()
		case strings.HasPrefix(line, ":"): // comment / keepalive
		case strings.HasPrefix(line, "event:"):
			name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
			if data.Len() > maxEvent {
				return got, fmt.Errorf("GET /v2/events: an event's data is larger than %d bytes", maxEvent)
			}
		}
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return got, fmt.Errorf("GET /v2/events: a line is longer than %d bytes", maxEvent)
	} else if err != nil {
		return got, err
	}
	return got, fmt.Errorf("GET /v2/events: stream closed")
}

// parseEvent maps one SSE event onto Event. The type comes from
// data.eventType, falling back to the SSE event name.
func parseEvent(name, data string) (Event, bool) {
	var d struct {
		EventType   string              `json:"eventType"`
		AppID       string              `json:"appId"`
		RunSpecID   string              `json:"runSpecId"`
		ID          string              `json:"id"`
		AppDef      struct{ ID string } `json:"appDefinition"`
		Plan        *plan               `json:"plan"`
		CurrentStep *step               `json:"currentStep"`
	}
	if data != "" && json.Unmarshal([]byte(data), &d) != nil {
		return Event{}, false
	}
	ev := Event{Type: d.EventType}
	if ev.Type == "" {
		ev.Type = name
	}
	if !slices.Contains(appEvents, ev.Type) {
		return Event{}, false
	}
	add := func(id string) {
		if id != "" && !slices.Contains(ev.AppIDs, id) {
			ev.AppIDs = append(ev.AppIDs, id)
		}
	}
	add(d.AppID)
	add(d.RunSpecID)
	add(d.AppDef.ID)
	if d.Plan != nil {
		ev.DeploymentID = d.Plan.ID
		for _, s := range d.Plan.Steps {
			for _, a := range s.Actions {
				add(a.App)
			}
		}
	}
	if d.CurrentStep != nil {
		for _, a := range d.CurrentStep.Actions {
			add(a.App)
		}
	}
	if ev.DeploymentID == "" && strings.HasPrefix(ev.Type, "deployment_") {
		ev.DeploymentID = d.ID
	}
	return ev, true
}

type plan struct {
	ID    string `json:"id"`
	Steps []step `json:"steps"`
}

type step struct {
	Actions []struct {
		App string `json:"app"`
	} `json:"actions"`
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
