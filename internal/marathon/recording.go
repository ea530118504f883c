package marathon

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
)

// ErrNotSent is what a recording client returns from every write: the
// write was recorded and not sent to Marathon. A caller meeting it goes on
// as though Marathon had not been asked, which it has not.
var ErrNotSent = errors.New("recorded, not sent: the Marathon client is in report mode")

// AppAPI is the part of *Client a recording client wraps: reads it passes
// through, writes it withholds.
type AppAPI interface {
	GetApp(ctx context.Context, id string) (*AppStatus, error)
	CreateApp(ctx context.Context, app *App) (string, error)
	UpdateApp(ctx context.Context, id string, body map[string]any, force bool) (string, error)
	RestartApp(ctx context.Context, id string, force bool) (string, error)
	Watch(ctx context.Context, clk clock.Clock, log logr.Logger, fn func(Event)) error
}

// RecordingClient is a Marathon client for report mode: GetApp and Watch
// reach Marathon, CreateApp, UpdateApp and RestartApp are recorded and
// return ErrNotSent, so nothing a report-mode pass does can change an app.
type RecordingClient struct {
	api AppAPI

	mu       sync.Mutex
	recorded []string
}

// Recording wraps api so that no write is sent through it.
func Recording(api AppAPI) *RecordingClient { return &RecordingClient{api: api} }

// Recorded returns the writes withheld so far, in order, one line each
// ("update /registry (force false)").
func (r *RecordingClient) Recorded() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.recorded...)
}

func (r *RecordingClient) record(format string, a ...any) error {
	line := fmt.Sprintf(format, a...)
	r.mu.Lock()
	r.recorded = append(r.recorded, line)
	r.mu.Unlock()
	return fmt.Errorf("%s: %w", line, ErrNotSent)
}

// GetApp implements AppAPI: it asks Marathon.
func (r *RecordingClient) GetApp(ctx context.Context, id string) (*AppStatus, error) {
	return r.api.GetApp(ctx, id)
}

// Watch implements AppAPI: it follows Marathon's event stream.
func (r *RecordingClient) Watch(ctx context.Context, clk clock.Clock, log logr.Logger, fn func(Event)) error {
	return r.api.Watch(ctx, clk, log, fn)
}

// CreateApp records the creation and returns ErrNotSent.
func (r *RecordingClient) CreateApp(_ context.Context, app *App) (string, error) {
	return "", r.record("create %s", app.ID)
}

// UpdateApp records the update and returns ErrNotSent.
func (r *RecordingClient) UpdateApp(_ context.Context, id string, body map[string]any, force bool) (string, error) {
	return "", r.record("update %s (%d field(s), force %t)", id, len(body), force)
}

// RestartApp records the restart and returns ErrNotSent.
func (r *RecordingClient) RestartApp(_ context.Context, id string, force bool) (string, error) {
	return "", r.record("restart %s (force %t)", id, force)
}

var _ AppAPI = (*Client)(nil)
