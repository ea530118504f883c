package memlimit

import (
	"runtime/debug"
	"testing"
	"testing/fstest"
)

const (
	mountinfoV2 = `22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`
	// A hybrid host: v1 controllers, and v2 mounted without them.
	mountinfoHybrid = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	cgroupHybrid = "9:name=systemd:/\n8:pids:/\n4:memory:/mesos/2f1c\n1:cpu,cpuacct:/\n0::/\n"
	// A Docker container on v1 without a cgroup namespace: its own
	// cgroup is mounted as the hierarchy's root.
	mountinfoDockerV1 = `700 690 0:32 /docker/ab12 /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime master:15 - cgroup cgroup rw,memory
`
	unlimitedV1Text = "9223372036854771712\n"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		want    int64
		file    string
		wantErr bool
	}{
		{name: "v2 container with its own namespace", files: map[string]string{
			"proc/self/cgroup": "0::/\n", "proc/self/mountinfo": mountinfoV2,
			"sys/fs/cgroup/memory.max": "201326592\n",
		}, want: 192 << 20, file: "/sys/fs/cgroup/memory.max"},
		{name: "v2 limit on a parent", files: map[string]string{
			"proc/self/cgroup": "0::/system.slice/mesos.slice/task-7\n", "proc/self/mountinfo": mountinfoV2,
			"sys/fs/cgroup/system.slice/mesos.slice/task-7/memory.max": "max\n",
			"sys/fs/cgroup/system.slice/mesos.slice/memory.max":        "134217728\n",
			"sys/fs/cgroup/system.slice/memory.max":                    "max\n",
		}, want: 128 << 20, file: "/sys/fs/cgroup/system.slice/mesos.slice/memory.max"},
		{name: "v2 own limit below the parent's", files: map[string]string{
			"proc/self/cgroup": "0::/a/b\n", "proc/self/mountinfo": mountinfoV2,
			"sys/fs/cgroup/a/b/memory.max": "67108864", "sys/fs/cgroup/a/memory.max": "134217728",
		}, want: 64 << 20, file: "/sys/fs/cgroup/a/b/memory.max"},
		{name: "v2 unlimited", files: map[string]string{
			"proc/self/cgroup": "0::/user.slice\n", "proc/self/mountinfo": mountinfoV2,
			"sys/fs/cgroup/user.slice/memory.max": "max\n",
		}},
		{name: "v1 memory controller on a hybrid host", files: map[string]string{
			"proc/self/cgroup": cgroupHybrid, "proc/self/mountinfo": mountinfoHybrid,
			"sys/fs/cgroup/memory/memory.limit_in_bytes":            unlimitedV1Text,
			"sys/fs/cgroup/memory/mesos/memory.limit_in_bytes":      unlimitedV1Text,
			"sys/fs/cgroup/memory/mesos/2f1c/memory.limit_in_bytes": "201326592\n",
		}, want: 192 << 20, file: "/sys/fs/cgroup/memory/mesos/2f1c/memory.limit_in_bytes"},
		{name: "v1 unlimited", files: map[string]string{
			"proc/self/cgroup": "4:memory:/\n0::/\n", "proc/self/mountinfo": mountinfoHybrid,
			"sys/fs/cgroup/memory/memory.limit_in_bytes": unlimitedV1Text,
		}},
		{name: "v1 container without a cgroup namespace", files: map[string]string{
			"proc/self/cgroup": "12:memory:/docker/ab12\n", "proc/self/mountinfo": mountinfoDockerV1,
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "67108864\n",
		}, want: 64 << 20, file: "/sys/fs/cgroup/memory/memory.limit_in_bytes"},
		{name: "cgroup outside the mount", files: map[string]string{
			"proc/self/cgroup": "12:memory:/docker/ab123\n", "proc/self/mountinfo": mountinfoDockerV1,
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "67108864\n",
		}},
		{name: "no /proc", files: map[string]string{}},
		{name: "no cgroup file system mounted", files: map[string]string{
			"proc/self/cgroup": "0::/\n", "proc/self/mountinfo": "27 1 254:0 / / rw - ext4 /dev/vda rw\n",
		}},
		{name: "malformed memory.max", files: map[string]string{
			"proc/self/cgroup": "0::/\n", "proc/self/mountinfo": mountinfoV2, "sys/fs/cgroup/memory.max": "lots\n",
		}, wantErr: true},
		{name: "malformed /proc/self/cgroup", files: map[string]string{
			"proc/self/cgroup": "memory\n", "proc/self/mountinfo": mountinfoV2,
		}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for p, s := range tc.files {
				fsys[p] = &fstest.MapFile{Data: []byte(s)}
			}
			got, file, err := Detect(fsys)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want || file != tc.file {
				t.Fatalf("Detect = %d from %q, want %d from %q", got, file, tc.want, tc.file)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name   string
		env    string
		cgroup int64
		want   Setting
	}{
		{"GOMEMLIMIT wins", "56MiB", 192 << 20, Setting{Source: FromEnv}},
		{"GOMEMLIMIT=off wins", "off", 192 << 20, Setting{Source: FromEnv}},
		{"cgroup", "", 200 << 20, Setting{Source: FromCgroup, Bytes: 180 << 20, Cgroup: 200 << 20, File: "f"}},
		{"none", "", 0, Setting{Source: None}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(tc.env, tc.cgroup, "f"); got != tc.want {
				t.Fatalf("Decide = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/end\04`: `/end\04`, `\134x`: `\x`} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

// Configure applies the cgroup's share to the runtime, and leaves an
// explicit GOMEMLIMIT alone.
func TestConfigure(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	fsys := fstest.MapFS{
		"proc/self/cgroup":         {Data: []byte("0::/\n")},
		"proc/self/mountinfo":      {Data: []byte(mountinfoV2)},
		"sys/fs/cgroup/memory.max": {Data: []byte("104857600\n")},
	}
	s, err := Configure(func(string) string { return "" }, fsys)
	if err != nil {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); s.Source != FromCgroup || got != 94371840 || s.Bytes != got {
		t.Fatalf("setting %+v, runtime limit %d; want 90%% of 100 MiB (94371840) from the cgroup", s, got)
	}
	debug.SetMemoryLimit(56 << 20) // as the runtime does for GOMEMLIMIT=56MiB
	s, err = Configure(func(k string) string { return map[string]string{"GOMEMLIMIT": "56MiB"}[k] }, fsys)
	if err != nil {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); s.Source != FromEnv || got != 56<<20 || s.Bytes != 56<<20 {
		t.Fatalf("setting %+v, runtime limit %d; want GOMEMLIMIT's 56 MiB untouched", s, got)
	}
}
