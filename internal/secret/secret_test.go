package secret

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

const pw = "hunter2-very-secret"

func TestValueNeverPrints(t *testing.T) {
	v := Value(pw)
	holder := struct {
		Name     string
		Password Value
		Ptr      *Value
	}{"ci", v, &v}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%T %v"} {
		for _, arg := range []any{v, holder, &holder, []Value{v}, map[string]Value{"a": v}} {
			args := []any{arg}
			if strings.Count(verb, "%") == 2 {
				args = append(args, arg)
			}
			out := fmt.Sprintf(verb, args...)
			if strings.Contains(out, pw) || strings.Contains(out, fmt.Sprintf("%x", pw)) {
				t.Errorf("Sprintf(%q, %T) = %q: shows the secret", verb, arg, out)
			}
		}
	}
	b, err := json.Marshal(holder)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), pw) || !strings.Contains(string(b), Redacted) {
		t.Errorf("JSON %s: want the secret redacted", b)
	}
	if got := v.MarshalLog(); got != Redacted {
		t.Errorf("MarshalLog = %v", got)
	}
	if v.Reveal() != pw || string(v) != pw {
		t.Errorf("Reveal = %q", v.Reveal())
	}
	if v.Empty() || !Value("").Empty() {
		t.Error("Empty")
	}
}
