package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Sample is one series of a scrape.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Metrics is a parsed Prometheus text exposition, by metric name.
type Metrics map[string][]Sample

// Metrics scrapes the operator's /metrics.
func (s *Sandbox) Metrics(ctx context.Context) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.OperatorURL()+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sandbox: scrape %s/metrics: %w", s.OperatorURL(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("sandbox: scrape %s/metrics: %s", s.OperatorURL(), resp.Status)
	}
	return ParseMetrics(body)
}

// ParseMetrics parses the Prometheus text format (version 0.0.4).
// Histogram and summary series keep their suffixed names (_bucket, _sum).
func ParseMetrics(text []byte) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, labels, rest, err := parseSeries(line)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d %q: %w", n, line, err)
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("metrics line %d %q: no value", n, line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d %q: value: %w", n, line, err)
		}
		m[name] = append(m[name], Sample{Labels: labels, Value: v})
	}
	return m, sc.Err()
}

func parseSeries(line string) (name string, labels map[string]string, rest string, err error) {
	labels = map[string]string{}
	i := strings.IndexAny(line, "{ \t")
	if i < 0 {
		return "", nil, "", fmt.Errorf("no value")
	}
	name, rest = line[:i], line[i:]
	if !strings.HasPrefix(rest, "{") {
		return name, labels, rest, nil
	}
	rest = rest[1:]
	for {
		rest = strings.TrimLeft(rest, " ,")
		if strings.HasPrefix(rest, "}") {
			return name, labels, rest[1:], nil
		}
		eq := strings.IndexByte(rest, '=')
		if eq < 0 || len(rest) < eq+2 || rest[eq+1] != '"' {
			return "", nil, "", fmt.Errorf("bad label")
		}
		key := strings.TrimSpace(rest[:eq])
		rest = rest[eq+2:]
		var val strings.Builder
		j := 0
		for ; j < len(rest) && rest[j] != '"'; j++ {
			if rest[j] == '\\' && j+1 < len(rest) {
				j++
				switch rest[j] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(rest[j])
				}
				continue
			}
			val.WriteByte(rest[j])
		}
		if j >= len(rest) {
			return "", nil, "", fmt.Errorf("unterminated label value")
		}
		labels[key] = val.String()
		rest = rest[j+1:]
	}
}

// match tells whether a sample carries every given label pair.
func (sm Sample) match(kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		if sm.Labels[kv[i]] != kv[i+1] {
			return false
		}
	}
	return true
}

// Samples returns the series of name that carry the label pairs kv
// ("reconciler", "trust", ...).
func (m Metrics) Samples(name string, kv ...string) []Sample {
	var out []Sample
	for _, sm := range m[name] {
		if sm.match(kv) {
			out = append(out, sm)
		}
	}
	return out
}

// Get returns the value of the one series of name with the label pairs kv;
// ok is false when there is none or more than one.
func (m Metrics) Get(name string, kv ...string) (v float64, ok bool) {
	ss := m.Samples(name, kv...)
	if len(ss) != 1 {
		return 0, false
	}
	return ss[0].Value, true
}

// Sum adds up every series of name with the label pairs kv.
func (m Metrics) Sum(name string, kv ...string) float64 {
	var t float64
	for _, sm := range m.Samples(name, kv...) {
		t += sm.Value
	}
	return t
}

// Has tells whether any series of name carries the label pairs kv.
func (m Metrics) Has(name string, kv ...string) bool { return len(m.Samples(name, kv...)) > 0 }

// Describe prints the series of name, for failure messages.
func (m Metrics) Describe(name string) string {
	var lines []string
	for _, sm := range m[name] {
		var ls []string
		for _, k := range slices.Sorted(maps.Keys(sm.Labels)) {
			ls = append(ls, k+"="+strconv.Quote(sm.Labels[k]))
		}
		lines = append(lines, fmt.Sprintf("%s{%s} %g", name, strings.Join(ls, ","), sm.Value))
	}
	if len(lines) == 0 {
		return name + ": no series"
	}
	return strings.Join(lines, "\n")
}
