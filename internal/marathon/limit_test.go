package marathon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// endless writes chunk until the client hangs up (or max bytes, so a
// client without a cap still ends).
func endless(w http.ResponseWriter, r *http.Request, prefix string, chunk []byte, max int) {
	w.Write([]byte(prefix))
	for n := 0; n < max && r.Context().Err() == nil; n += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
}

// Every answer is capped: a raw call (GetApp) and a go-marathon call
// (RestartApp) fail with an error naming the cap rather than buffering
// whatever a server sends, or quietly using a truncated answer.
func TestAnswersAreCapped(t *testing.T) {
	chunk := bytes.Repeat([]byte(`"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",`), 1024)
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		endless(w, r, `{"app":{"id":"/registry","labels":[`, chunk, 4*maxBody)
	})
	c := newClient(t, Options{URLs: []string{f.srv.URL}})
	ctx := context.Background()
	_, err := c.GetApp(ctx, "/registry")
	checkTooLarge(t, "GetApp", err)
	_, err = c.RestartApp(ctx, "/registry", false)
	checkTooLarge(t, "RestartApp", err)
	_, err = c.Deployments(ctx)
	checkTooLarge(t, "Deployments", err)

	// An answer just under the cap is read whole.
	small := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		pad := strings.Repeat(" ", maxBody-len(restartOK))
		fmt.Fprint(w, restartOK+pad)
	})
	c = newClient(t, Options{URLs: []string{small.srv.URL}})
	if dep, err := c.RestartApp(ctx, "/registry", false); err != nil || dep != "dep-1" {
		t.Fatalf("answer of exactly %d bytes: %q, %v", maxBody, dep, err)
	}
}

func checkTooLarge(t *testing.T, call string, err error) {
	t.Helper()
	var me *Error
	if !errors.Is(err, ErrAnswerTooLarge) || !errors.As(err, &me) || me.Kind != KindOther ||
		!strings.Contains(err.Error(), fmt.Sprintf("more than %d bytes", maxBody)) {
		t.Errorf("%s: got %v, want an error naming the %d byte cap", call, err, maxBody)
	}
}

// An endless line on the event stream, or an event of endless data: lines,
// ends the stream with an error naming the cap.
func TestEventStreamCapsEvents(t *testing.T) {
	line := bytes.Repeat([]byte("x"), 64<<10)
	many := []byte("data: " + strings.Repeat("y", 1<<20) + "\n")
	for name, tc := range map[string]struct {
		serve func(w http.ResponseWriter, r *http.Request)
		want  string
	}{
		"endless line": {func(w http.ResponseWriter, r *http.Request) {
			endless(w, r, "event: deployment_info\ndata: ", line, 2*maxEvent)
		}, fmt.Sprintf("a line is longer than %d bytes", maxEvent)},
		"endless data lines": {func(w http.ResponseWriter, r *http.Request) {
			endless(w, r, "event: deployment_info\n", many, 2*maxEvent)
		}, fmt.Sprintf("an event's data is larger than %d bytes", maxEvent)},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				tc.serve(w, r)
			})
			c := newClient(t, Options{URLs: []string{f.srv.URL}})
			_, err := c.stream(context.Background(), f.srv.URL, func(Event) { t.Error("event delivered") })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
