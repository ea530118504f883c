package pullsecret

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/registry-operator/registry-operator/internal/pki"
)

const pwCurrent = "CURRENTcurrentCURRENTcurrentCURRENTcurrent1"
const pwPrevious = "PREVIOUSpreviousPREVIOUSpreviousPREVIOUSpre"

func sample() State {
	berlin := time.FixedZone("CET", 3600)
	return State{
		Current:     Credential{Generation: 4, Password: pwCurrent, Created: t0.In(berlin)},
		Previous:    &Credential{Generation: 3, Password: pwPrevious, Created: t0.Add(-720 * time.Hour)},
		Distributed: t0.Add(90 * time.Second),
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	b, err := Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "version": 1,
  "current": {
    "generation": 4,
    "password": "` + pwCurrent + `",
    "created": "2026-03-01T12:00:00Z"
  },
  "previous": {
    "generation": 3,
    "password": "` + pwPrevious + `",
    "created": "2026-01-30T12:00:00Z"
  },
  "distributed": "2026-03-01T12:01:30Z"
}
`
	if string(b) != want {
		t.Errorf("Marshal =\n%s\nwant\n%s", b, want)
	}
	s, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if s.Current.Password != pwCurrent || s.Previous.Password != pwPrevious || s.Current.Generation != 4 ||
		!s.Current.Created.Equal(t0) || !s.Distributed.Equal(t0.Add(90*time.Second)) {
		t.Errorf("round trip: %+v", s)
	}
	again, err := Marshal(s)
	if err != nil || !bytes.Equal(again, b) {
		t.Errorf("re-marshal differs (%v):\n%s", err, again)
	}

	fresh := State{Current: Credential{Generation: 1, Password: pwCurrent, Created: time.Now()}}
	b, err = Marshal(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "previous") || strings.Contains(string(b), "distributed") || strings.Contains(string(b), "m=+") {
		t.Errorf("fresh state:\n%s", b)
	}
	if s, err := Unmarshal(b); err != nil || s.Previous != nil || !s.Distributed.IsZero() {
		t.Errorf("fresh round trip: %+v, %v", s, err)
	}
}

// TestUnmarshalRefuses: damaged or foreign state is refused with an error
// that names the problem and never shows a password.
func TestUnmarshalRefuses(t *testing.T) {
	good, err := Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, new string) string { return strings.Replace(string(good), old, new, 1) }
	cases := map[string]struct{ in, wantErr string }{
		"empty":            {"", "empty"},
		"truncated":        {string(good[:60]), "not valid JSON"},
		"bare password":    {edit(`"`+pwCurrent+`"`, pwCurrent), "not valid JSON"},
		"password number":  {edit(`"`+pwCurrent+`"`, "12345"), "current.password holds a JSON number"},
		"trailing data":    {string(good) + pwCurrent, "data after"},
		"unknown field":    {edit(`"version": 1,`, `"version": 1, "`+pwCurrent+`": 1,`), "unknown field"},
		"no version":       {edit(`"version": 1,`, ``), "no version"},
		"newer version":    {edit(`"version": 1,`, `"version": 2,`), "upgrade the operator"},
		"generation 0":     {edit(`"generation": 4`, `"generation": 0`), "current generation 0"},
		"short password":   {edit(pwCurrent, "short"), "current password"},
		"no created":       {edit(`"created": "2026-03-01T12:00:00Z"`, `"created": "0001-01-01T00:00:00Z"`), "no creation time"},
		"previous newer":   {edit(`"generation": 3`, `"generation": 5`), "not older"},
		"previous no pass": {edit(`"`+pwPrevious+`"`, `""`), "previous password"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Unmarshal([]byte(tc.in))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), FileName) {
				t.Errorf("error %q: want %q and the file name", err, tc.wantErr)
			}
			for _, pw := range []string{pwCurrent, pwPrevious, "CURRENT", "'C'"} {
				if strings.Contains(err.Error(), pw) {
					t.Errorf("error %q shows password material", err)
				}
			}
		})
	}
	if _, err := Marshal(State{Current: Credential{Generation: 1, Password: "x", Created: t0}}); err == nil {
		t.Error("Marshal accepted a short password")
	}
}

// TestFileIsProtectedLikeAKey: both PKI stores give ".key" files the
// private keys' protection (0600, the digest ACL); the state relies on it.
func TestFileIsProtectedLikeAKey(t *testing.T) {
	if !pki.IsKeyFile(FileName) {
		t.Errorf("%s would be stored without the private keys' protection", FileName)
	}
}
