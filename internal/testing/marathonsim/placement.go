package marathonsim

import (
	"regexp"
	"strconv"
)

func constraintKey(a Agent, field string) (string, bool) {
	if field == "hostname" {
		return a.Hostname, true
	}
	v, ok := a.Attributes[field]
	return v, ok
}

func fullMatch(pat, v string) bool {
	re, err := regexp.Compile("^(?:" + pat + ")$")
	return err == nil && re.MatchString(v)
}

// agentFits applies Marathon's constraint operators for one candidate.
func agentFits(a Agent, constraints [][]string, others []*task) bool {
	for _, c := range constraints {
		if len(c) < 2 {
			continue
		}
		field, op, val := c[0], c[1], ""
		if len(c) > 2 {
			val = c[2]
		}
		key, has := constraintKey(a, field)
		matches := func(pat string) bool {
			if !has {
				return false
			}
			if fullMatch(pat, key) {
				return true
			}
			return field == "hostname" && fullMatch(pat, a.IP)
		}
		same := 0
		var firstKey string
		for i, t := range others {
			k, _ := constraintKey(t.agent, field)
			if i == 0 {
				firstKey = k
			}
			if k == key {
				same++
			}
		}
		switch op {
		case "LIKE":
			if !matches(val) {
				return false
			}
		case "UNLIKE":
			if matches(val) {
				return false
			}
		case "UNIQUE":
			if !has || same > 0 {
				return false
			}
		case "CLUSTER":
			if val != "" && !matches(regexp.QuoteMeta(val)) {
				return false
			}
			if val == "" && len(others) > 0 && key != firstKey {
				return false
			}
		case "MAX_PER":
			n, _ := strconv.Atoi(val)
			if same >= n {
				return false
			}
		}
	}
	return true
}

func (s *Server) placeLocked(appID string, spec AppSpec) (Agent, bool) {
	others := s.appTasksLocked(appID)
	var cands []Agent
	for _, a := range s.agents {
		if !a.Inactive && agentFits(a.Agent, spec.Constraints, others) {
			cands = append(cands, a.Agent)
		}
	}
	if p, ok := s.exec.(Placer); ok {
		if a, decided := p.Place(appID, cands); decided {
			return a, a.ID != ""
		}
	}
	if len(cands) == 0 {
		return Agent{}, false
	}
	load := func(a Agent) (int, int) {
		mine, all := 0, 0
		for _, t := range s.tasks {
			if t.agent.ID == a.ID {
				all++
				if t.appID == appID {
					mine++
				}
			}
		}
		return mine, all
	}
	best := cands[0]
	bm, ba := load(best)
	for _, c := range cands[1:] {
		m, a := load(c)
		if m < bm || (m == bm && a < ba) {
			best, bm, ba = c, m, a
		}
	}
	return best, true
}
