package controllers

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/registry-operator/registry-operator/internal/nodes"
)

// matchHostConstraints applies the app's Marathon constraints on the
// hostname field to an agent, matching both its hostname and its IP (Mesos
// may report either as the hostname). LIKE and UNLIKE take a regular
// expression that must match the whole value, as Marathon's do; CLUSTER and
// IS take a literal. Other fields and operators do not restrict placement.
//
// This says where Marathon may run the registry. Where its key may go is
// narrower: the hostname is what the agent reports itself, so placement
// also requires the constraints to hold for the address alone (called
// with hostname ""; see uncertainIdentity in placement.go).
func matchHostConstraints(cs [][]string, hostname, ip string) (bool, error) {
	return (*hostPatterns)(nil).match(cs, hostname, ip)
}

// hostPatterns keeps the LIKE and UNLIKE expressions compiled, for a
// reconciler that matches every node of the fleet against the same
// constraints each round. A nil *hostPatterns compiles every time.
type hostPatterns struct {
	mu  sync.Mutex
	res map[string]*regexp.Regexp
}

// maxHostPatterns bounds what a long run of changing specs leaves behind.
const maxHostPatterns = 64

func (h *hostPatterns) compile(expr string) (*regexp.Regexp, error) {
	if h == nil {
		return regexp.Compile(expr)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if re, ok := h.res[expr]; ok {
		return re, nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	if h.res == nil || len(h.res) >= maxHostPatterns {
		h.res = map[string]*regexp.Regexp{}
	}
	h.res[expr] = re
	return re, nil
}

// match is matchHostConstraints with h's compiled expressions.
func (h *hostPatterns) match(cs [][]string, hostname, ip string) (bool, error) {
	values := []string{hostname, ip}
	for _, c := range cs {
		if len(c) < 2 || c[0] != "hostname" {
			continue
		}
		op := strings.ToUpper(c[1])
		arg := ""
		if len(c) > 2 {
			arg = c[2]
		}
		switch op {
		case "LIKE", "UNLIKE":
			re, err := h.compile(`^(?:` + arg + `)$`)
			if err != nil {
				return false, fmt.Errorf("app.constraints: hostname %s %q is not a valid regular expression: %w", op, arg, err)
			}
			hit := anyMatch(values, re.MatchString)
			if hit != (op == "LIKE") {
				return false, nil
			}
		case "CLUSTER", "IS":
			if arg == "" {
				continue // "all on one agent, whichever": every agent may be it
			}
			if !anyMatch(values, func(v string) bool { return v == arg }) {
				return false, nil
			}
		}
	}
	return true, nil
}

func anyMatch(values []string, f func(string) bool) bool {
	for _, v := range values {
		if v != "" && f(v) {
			return true
		}
	}
	return false
}

func hostOnly(addr string) string {
	return nodes.Agent{Address: addr}.IP()
}
