package status

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// No pull password reaches the page, /api/status or the terminal view.
func TestPullPasswordNeverShown(t *testing.T) {
	store := mixedStore()
	st := Build(store, testConfig(), testNow)
	if st.PullPassword == nil || st.PullPassword.User != "agents-5" || st.PullPassword.Generation != 5 {
		t.Fatalf("pull password status %+v", st.PullPassword)
	}
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := Render(&text, st); err != nil {
		t.Fatal(err)
	}
	page := body(t, serve(t, store, testConfig(), http.MethodGet, "/"))
	for what, out := range map[string]string{"json": string(raw), "text": text.String(), "page": page} {
		for _, p := range store.PullSecret().Valid {
			if strings.Contains(out, p.Password.Reveal()) {
				t.Errorf("%s shows the password of %s", what, p.Name)
			}
		}
	}
}
