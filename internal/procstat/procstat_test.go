package procstat

import (
	"errors"
	"io/fs"
	"os"
	"testing"
)

func TestParse(t *testing.T) {
	// A command name with spaces and a ')' inside: only the last ')' ends it.
	line := "4242 (a b) c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 98765 1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	got, err := Parse([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{PID: 4242, Comm: "a b) c)", State: 'S', PPID: 1, UTime: 7, STime: 3, CUTime: 2, CSTime: 1, StartTime: 98765}
	if got != want {
		t.Fatalf("Parse = %+v, want %+v", got, want)
	}
	if got.Zombie() {
		t.Error("S is not a zombie")
	}
	z, err := Parse([]byte("7 (x) Z 1 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0"))
	if err != nil || !z.Zombie() || z.StartTime != 5 {
		t.Fatalf("zombie line: %+v, %v", z, err)
	}
}

func TestParseRefusesMalformed(t *testing.T) {
	for _, line := range []string{
		"", "12 no parens S 1", "(x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
		"12 (x) S 1 2", "12 (x) S 1 0 0 0 -1 0 0 0 0 0 notanumber 0 0 0 20 0 1 0 5",
		"12 (x) SS 1 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5",
	} {
		if _, err := Parse([]byte(line)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) = %v, want ErrMalformed", line, err)
		}
	}
}

func TestReadSelf(t *testing.T) {
	st, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != os.Getpid() || st.PPID != os.Getppid() || st.StartTime == 0 || st.Zombie() {
		t.Fatalf("Read(self) = %+v", st)
	}
	if _, err := Read(1 << 30); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read(no such pid) = %v, want fs.ErrNotExist", err)
	}
}
