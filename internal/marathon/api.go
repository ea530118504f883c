package marathon

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"

	gomarathon "github.com/gambol99/go-marathon"
)

// AppStatus is an app as Marathon reports it: the definition as raw JSON
// (for Diff) and the server-managed counts, tasks and deployments.
type AppStatus struct {
	Definition     map[string]any
	Version        string
	Instances      int
	TasksRunning   int
	TasksHealthy   int
	TasksUnhealthy int
	HealthChecks   int
	Deployments    []string
	Tasks          []Task
}

// Task is one task of an app.
type Task struct {
	ID                 string         `json:"id"`
	AppID              string         `json:"appId"`
	Host               string         `json:"host"`
	State              string         `json:"state"`
	Version            string         `json:"version"`
	Ports              []int          `json:"ports"`
	HealthCheckResults []HealthResult `json:"healthCheckResults"`
}

// HealthResult is one health check result of a task.
type HealthResult struct {
	Alive bool `json:"alive"`
}

// Deployment is a running deployment.
type Deployment struct {
	ID           string
	Version      string
	AffectedApps []string
	CurrentStep  int
	TotalSteps   int
}

// GetApp reads one app with its tasks, counts and deployments. The
// definition is read raw: go-marathon's struct would drop `networks` and
// `container.portMappings`, which the diff needs.
func (c *Client) GetApp(ctx context.Context, id string) (*AppStatus, error) {
	var body struct {
		App map[string]any `json:"app"`
	}
	q := url.Values{"embed": {"app.tasks", "app.counts", "app.deployments"}}
	err := c.failover(ctx, false, func(ctx context.Context, m string) error {
		_, err := c.raw(ctx, m, "GET", appPath(id), q, nil, &body, "")
		return err
	})
	if err != nil {
		return nil, err
	}
	if body.App == nil {
		return nil, &Error{Kind: KindOther, Method: "GET", Path: appPath(id), Message: "answer has no app"}
	}
	return parseAppStatus(body.App)
}

func parseAppStatus(app map[string]any) (*AppStatus, error) {
	s := &AppStatus{Definition: app}
	s.Version, _ = app["version"].(string)
	s.Instances = int(num(app["instances"], 1))
	s.TasksRunning = int(num(app["tasksRunning"], 0))
	s.TasksHealthy = int(num(app["tasksHealthy"], 0))
	s.TasksUnhealthy = int(num(app["tasksUnhealthy"], 0))
	s.HealthChecks = len(list(app["healthChecks"]))
	for _, d := range list(app["deployments"]) {
		if id, ok := obj(d)["id"].(string); ok {
			s.Deployments = append(s.Deployments, id)
		}
	}
	if t, ok := app["tasks"]; ok {
		b, err := json.Marshal(t)
		if err == nil {
			err = json.Unmarshal(b, &s.Tasks)
		}
		if err != nil {
			return nil, fmt.Errorf("marathon: tasks of app %v: %w", app["id"], err)
		}
	}
	// Definition is compared with the desired app: drop what Marathon manages.
	for _, k := range []string{"tasks", "deployments", "tasksRunning", "tasksHealthy", "tasksUnhealthy",
		"tasksStaged", "lastTaskFailure", "readinessCheckResults", "tasksStats", "version", "versionInfo"} {
		delete(app, k)
	}
	return s, nil
}

// CreateApp posts a new app and returns its deployment id. Raw, because
// go-marathon cannot send the 1.5 networks format nor integer zeros.
func (c *Client) CreateApp(ctx context.Context, app *App) (string, error) {
	var out struct {
		Deployments []struct {
			ID string `json:"id"`
		} `json:"deployments"`
	}
	var dep string
	err := c.failover(ctx, true, func(ctx context.Context, m string) error {
		h, err := c.raw(ctx, m, "POST", "/v2/apps", nil, app, &out, "")
		if err == nil {
			dep = h.Get("Marathon-Deployment-Id")
		}
		return err
	})
	if err != nil {
		return "", err
	}
	if dep == "" && len(out.Deployments) > 0 {
		dep = out.Deployments[0].ID
	}
	return dep, nil
}

// UpdateApp PUTs body (the owned fields, see UpdateBody) with Marathon's
// default partialUpdate, so fields not sent are kept. force overrides a
// deployment lock; use it only after waiting.
func (c *Client) UpdateApp(ctx context.Context, id string, body map[string]any, force bool) (string, error) {
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	var out struct {
		DeploymentID string `json:"deploymentId"`
	}
	err := c.failover(ctx, true, func(ctx context.Context, m string) error {
		h, err := c.raw(ctx, m, "PUT", appPath(id), q, body, &out, "")
		if err == nil && out.DeploymentID == "" {
			out.DeploymentID = h.Get("Marathon-Deployment-Id")
		}
		return err
	})
	return out.DeploymentID, err
}

// RestartApp asks for a rolling restart (upgradeStrategy applies).
func (c *Client) RestartApp(ctx context.Context, id string, force bool) (string, error) {
	var dep string
	err := c.failover(ctx, true, func(ctx context.Context, m string) error {
		return c.call(ctx, m, func(gm gomarathon.Marathon) error {
			d, err := gm.RestartApplication(id, force)
			if err == nil && d != nil {
				dep = d.DeploymentID
			}
			return err
		})
	})
	return dep, err
}

// Deployments lists the running deployments.
func (c *Client) Deployments(ctx context.Context) ([]Deployment, error) {
	var out []Deployment
	err := c.failover(ctx, false, func(ctx context.Context, m string) error {
		return c.call(ctx, m, func(gm gomarathon.Marathon) error {
			ds, err := gm.Deployments()
			if err != nil {
				return err
			}
			out = out[:0]
			for _, d := range ds {
				out = append(out, Deployment{ID: d.ID, Version: d.Version, AffectedApps: d.AffectedApps,
					CurrentStep: d.CurrentStep, TotalSteps: d.TotalSteps})
			}
			return nil
		})
	})
	return out, err
}

// Tasks lists an app's tasks.
func (c *Client) Tasks(ctx context.Context, id string) ([]Task, error) {
	var out []Task
	err := c.failover(ctx, false, func(ctx context.Context, m string) error {
		return c.call(ctx, m, func(gm gomarathon.Marathon) error {
			ts, err := gm.Tasks(id)
			if err != nil {
				return err
			}
			out = out[:0]
			for _, t := range ts.Tasks {
				x := Task{ID: t.ID, AppID: t.AppID, Host: t.Host, State: t.State, Version: t.Version, Ports: t.Ports}
				for _, r := range t.HealthCheckResults {
					if r != nil {
						x.HealthCheckResults = append(x.HealthCheckResults, HealthResult{Alive: r.Alive})
					}
				}
				out = append(out, x)
			}
			return nil
		})
	})
	return out, err
}

// Info is what /v2/info says about the Marathon answering.
type Info struct {
	Name, Version, Leader string
}

// Info reads /v2/info.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var out Info
	err := c.failover(ctx, false, func(ctx context.Context, m string) error {
		return c.call(ctx, m, func(gm gomarathon.Marathon) error {
			i, err := gm.Info()
			if err == nil {
				out = Info{Name: i.Name, Version: i.Version, Leader: i.Leader}
			}
			return err
		})
	})
	return out, err
}

// Ping checks that a Marathon answers. Raw: go-marathon's Ping sends
// Accept: application/json, which Marathon 1.4.4 refuses with 406.
func (c *Client) Ping(ctx context.Context) error {
	return c.failover(ctx, false, func(ctx context.Context, m string) error {
		_, err := c.raw(ctx, m, "GET", "/ping", nil, nil, nil, "text/plain, */*")
		return err
	})
}

// Endpoint is "host:port" of a task's first host port, "" if it has none.
func (t Task) Endpoint() string {
	if t.Host == "" || len(t.Ports) == 0 {
		return ""
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(t.Ports[0]))
}
