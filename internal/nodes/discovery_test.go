package nodes

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const slavesJSON = `{"slaves":[
 {"id":"a","pid":"slave(1)@198.18.0.11:5051","hostname":"agent-1.example","active":true},
 {"id":"b","pid":"slave(1)@198.18.0.12:5051","hostname":"198.18.0.12","active":true},
 {"id":"c","pid":"slave(1)@198.18.0.13:5051","hostname":"agent-3.example","active":false}
],"recovered_slaves":[]}`

func TestMesosFollowsLeaderRedirect(t *testing.T) {
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/master/slaves" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(slavesJSON))
	}))
	t.Cleanup(leader.Close)
	follower := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Mesos answers with a scheme-relative location.
		w.Header().Set("Location", "//"+strings.TrimPrefix(leader.URL, "http://")+r.URL.Path)
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	t.Cleanup(follower.Close)

	d := &Discoverer{}
	got, err := d.Mesos(context.Background(), follower.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	want := []Agent{
		{Address: "198.18.0.11", Hostname: "agent-1.example", Source: SourceMesos},
		{Address: "198.18.0.12", Hostname: "198.18.0.12", Source: SourceMesos},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("agents = %+v, want %+v (inactive agents are skipped)", got, want)
	}
}

func TestMesosErrors(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"status": func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		},
		"garbage": func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) },
	} {
		srv := httptest.NewServer(h)
		_, err := (&Discoverer{}).Mesos(context.Background(), srv.URL)
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), "mesos agents") {
			t.Errorf("%s: got %v, want an error naming mesos agents", name, err)
		}
	}
}

func TestStaticAndMerge(t *testing.T) {
	got := Merge(
		[]Agent{{Address: "198.18.0.12", Hostname: "agent-2", Source: SourceMesos}},
		Static([]string{"198.18.0.12", "node-9.example:2222", " ", "[::1]:22"}),
	)
	want := []Agent{
		{Address: "198.18.0.12", Hostname: "agent-2", Source: SourceMesos},
		{Address: "[::1]:22", Hostname: "::1", Source: SourceStatic},
		{Address: "node-9.example:2222", Hostname: "node-9.example", Source: SourceStatic},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("merged = %+v\nwant %+v", got, want)
	}
	if ip := want[2].IP(); ip != "node-9.example" {
		t.Errorf("IP() = %q", ip)
	}
	if a := dialAddr("198.18.0.5", 22); a != "198.18.0.5:22" {
		t.Errorf("dialAddr = %q", a)
	}
	if a := dialAddr("[::1]:2222", 22); a != "[::1]:2222" {
		t.Errorf("dialAddr = %q", a)
	}
}

// Merge sorts by address and keeps the first list's entry for an address
// that several lists (or one list twice) carry.
func TestMergeFirstOccurrenceWins(t *testing.T) {
	mesos := []Agent{{Address: "198.18.0.3", Hostname: "c", Source: "mesos"}, {Address: "198.18.0.1", Hostname: "a", Source: "mesos"}}
	static := []Agent{{Address: "198.18.0.2", Source: "static"}, {Address: "198.18.0.1", Source: "static"}, {Address: "198.18.0.2", Source: "static"}}
	got := Merge(mesos, static)
	want := []Agent{{Address: "198.18.0.1", Hostname: "a", Source: "mesos"}, {Address: "198.18.0.2", Source: "static"}, {Address: "198.18.0.3", Hostname: "c", Source: "mesos"}}
	if !slices.Equal(got, want) {
		t.Errorf("Merge = %v, want %v", got, want)
	}
	if got := Merge(nil, []Agent{}); got != nil {
		t.Errorf("Merge of nothing = %#v, want nil", got)
	}
}
