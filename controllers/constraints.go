package controllers

import (
	"fmt"
	"regexp"
	"strings"

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
			re, err := regexp.Compile(`^(?:` + arg + `)$`)
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
