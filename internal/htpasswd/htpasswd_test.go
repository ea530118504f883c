package htpasswd

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/registry-operator/registry-operator/internal/secret"
)

const testCost = bcrypt.MinCost

func mustHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := Hash(secret.Value(pw), testCost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestParse(t *testing.T) {
	h1, h2 := mustHash(t, "one"), mustHash(t, "two")
	h2y := "$2y$" + h1[4:]
	good := []struct {
		name string
		in   string
		want map[string]string
	}{
		{"empty", "", map[string]string{}},
		{"two users", "ci:" + h1 + "\nagents-1:" + h2 + "\n", map[string]string{"ci": h1, "agents-1": h2}},
		{"no final newline", "ci:" + h1, map[string]string{"ci": h1}},
		{"$2y$ from htpasswd -B", "ci:" + h2y + "\n", map[string]string{"ci": h2y}},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d users, want %d", len(got), len(tc.want))
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("user %q: wrong hash", k)
				}
			}
		})
	}
	bad := []struct {
		name, in, wantErr string
	}{
		{"no colon", "ci" + h1 + "\n", "line 1: no ':'"},
		{"blank line", "ci:" + h1 + "\n\nx:" + h2 + "\n", "line 2: no ':'"},
		{"comment", "# users\nci:" + h1 + "\n", "line 1: no ':'"},
		{"empty name", ":" + h1 + "\n", "line 1: user name is empty"},
		{"space in name", "c i:" + h1 + "\n", "white space"},
		{"CRLF", "ci:" + h1 + "\r\n", `line 1 (user "ci"): not a bcrypt hash`},
		{"md5", "ci:$apr1$abcdefgh$0123456789abcdefghijkl\n", "not a bcrypt hash"},
		{"sha1", "ci:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", "not a bcrypt hash"},
		{"plain", "ci:hunter2\n", "not a bcrypt hash"},
		{"$2x$", "ci:$2x$" + h1[4:] + "\n", "not a bcrypt hash"},
		{"short", "ci:" + h1[:59] + "\n", "not a bcrypt hash"},
		{"cost 99", "ci:$2a$99$" + h1[7:] + "\n", "invalid cost"},
		{"duplicate", "ci:" + h1 + "\nci:" + h2 + "\n", `line 2: user "ci" appears twice`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil {
				t.Fatal("parsed")
			}
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q: want ErrMalformed and %q", err, tc.wantErr)
			}
			for _, h := range []string{h1, h2, h1[7:], "hunter2", "W6ph5Mm5Pz8GgiULbPgzG37mj9g"} {
				if strings.Contains(err.Error(), h) {
					t.Errorf("error %q shows hash or password material", err)
				}
			}
		})
	}
}

func TestRenderSortedAndChecked(t *testing.T) {
	h1, h2 := mustHash(t, "one"), mustHash(t, "two")
	got, err := Render(map[string]string{"zeta": h2, "alpha": h1})
	if err != nil {
		t.Fatal(err)
	}
	if want := "alpha:" + h1 + "\nzeta:" + h2 + "\n"; string(got) != want {
		t.Errorf("Render = %q, want %q", got, want)
	}
	back, err := Parse(got)
	if err != nil || back["alpha"] != h1 || back["zeta"] != h2 {
		t.Errorf("Parse(Render) = %v, %v", back, err)
	}
	for name, users := range map[string]map[string]string{
		"colon in name": {"a:b": h1},
		"newline":       {"a\nb": h1},
		"not bcrypt":    {"a": "plain"},
	} {
		if _, err := Render(users); err == nil {
			t.Errorf("%s: rendered", name)
		} else if strings.Contains(err.Error(), "plain") {
			t.Errorf("%s: error %q shows the hash", name, err)
		}
	}
}

func TestVerify(t *testing.T) {
	h := mustHash(t, "right")
	if ok, err := Verify(h, "right"); !ok || err != nil {
		t.Errorf("right password: %v, %v", ok, err)
	}
	if ok, err := Verify(h, "wrong"); ok || err != nil {
		t.Errorf("wrong password: %v, %v", ok, err)
	}
	if ok, err := Verify("right", "right"); ok || err == nil {
		t.Errorf("plain text as hash: %v, %v; want an error", ok, err)
	} else if strings.Contains(err.Error(), "right") {
		t.Errorf("error %q shows the hash", err)
	}
	if _, err := Hash("x", 3); err == nil {
		t.Error("cost 3 accepted")
	}
	long := secret.Value(strings.Repeat("x", MaxPasswordLen+1))
	if _, err := Hash(long, testCost); err == nil {
		t.Error("73-byte password hashed")
	}
}

func TestKeep(t *testing.T) {
	users := map[string]secret.Value{"ci": "ci-password", "agents-1": "pull-password-1"}
	first, err := Keep(nil, users, testCost)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(first.Added, ","); got != "agents-1,ci" || first.Unchanged() {
		t.Fatalf("first Keep added %q", got)
	}
	verifyFile(t, first.File, users)

	t.Run("unchanged passwords give the same bytes", func(t *testing.T) {
		again, err := Keep(first.File, users, testCost)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again.File, first.File) || !again.Unchanged() || len(again.Kept) != 2 {
			t.Errorf("second Keep: file equal %v, result %+v", bytes.Equal(again.File, first.File), again)
		}
	})
	t.Run("changed, added and removed", func(t *testing.T) {
		next := map[string]secret.Value{"ci": "new-ci-password", "agents-2": "pull-password-2"}
		r, err := Keep(first.File, next, testCost)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(r.Changed, ",") != "ci" || strings.Join(r.Added, ",") != "agents-2" ||
			strings.Join(r.Removed, ",") != "agents-1" || len(r.Kept) != 0 || r.Unchanged() {
			t.Errorf("result %+v", r)
		}
		verifyFile(t, r.File, next)
		parsed, _ := Parse(r.File)
		if ok, _ := Verify(parsed["ci"], "ci-password"); ok {
			t.Error("the old ci password still verifies")
		}
		if _, ok := parsed["agents-1"]; ok {
			t.Error("agents-1 kept")
		}
	})
	t.Run("unsorted hand-written file is kept and sorted", func(t *testing.T) {
		p, _ := Parse(first.File)
		hand := []byte("ci:" + p["ci"] + "\nagents-1:" + p["agents-1"])
		r, err := Keep(hand, users, testCost)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.File, first.File) || !r.Unchanged() {
			t.Errorf("got %q, want %q", r.File, first.File)
		}
	})
	t.Run("malformed existing file", func(t *testing.T) {
		_, err := Keep([]byte("ci:plain-text-password\n"), users, testCost)
		if !errors.Is(err, ErrMalformed) || strings.Contains(err.Error(), "plain-text-password") {
			t.Errorf("error %v: want ErrMalformed without the line's content", err)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for name, u := range map[string]map[string]secret.Value{
			"empty password": {"ci": ""},
			"long password":  {"ci": secret.Value(strings.Repeat("p", 73))},
			"newline":        {"ci": "a\nb"},
			"bad name":       {"c:i": "pw-secret"},
		} {
			_, err := Keep(nil, u, testCost)
			if err == nil {
				t.Errorf("%s: accepted", name)
				continue
			}
			if strings.Contains(err.Error(), "pw-secret") || strings.Contains(err.Error(), "ppppp") {
				t.Errorf("%s: error %q shows the password", name, err)
			}
		}
	})
}

func verifyFile(t *testing.T, file []byte, users map[string]secret.Value) {
	t.Helper()
	parsed, err := Parse(file)
	if err != nil {
		t.Fatalf("own output does not parse: %v", err)
	}
	if len(parsed) != len(users) {
		t.Errorf("file has %d users, want %d", len(parsed), len(users))
	}
	for name, pw := range users {
		if ok, err := Verify(parsed[name], pw); !ok || err != nil {
			t.Errorf("user %q: password does not verify (%v)", name, err)
		}
	}
}
