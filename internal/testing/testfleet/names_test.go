package testfleet

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBlockBitsFitsCapacity(t *testing.T) {
	for _, tc := range []struct{ capacity, bits int }{
		{1, 24}, {253, 24}, {254, 23}, {1016, 22}, {1021, 22}, {1022, 21}, {maxHosts, 16},
	} {
		if got := blockBits(tc.capacity); got != tc.bits {
			t.Errorf("blockBits(%d) = /%d, want /%d", tc.capacity, got, tc.bits)
		}
	}
}

func TestAllocateSubnetAvoidsTakenBlocks(t *testing.T) {
	taken := []netip.Prefix{
		netip.MustParsePrefix("198.18.0.0/24"),
		netip.MustParsePrefix("198.18.2.0/24"),
	}
	got, err := allocateSubnet(10, taken)
	if err != nil || got != netip.MustParsePrefix("198.18.1.0/24") {
		t.Errorf("small run: %v, %v; want 198.18.1.0/24", got, err)
	}
	// 1000 hosts need an aligned /22 that overlaps neither block.
	got, err = allocateSubnet(1000, taken)
	if err != nil || got != netip.MustParsePrefix("198.18.4.0/22") {
		t.Errorf("1000 hosts: %v, %v; want 198.18.4.0/22", got, err)
	}
	// A route covering the whole range leaves nothing.
	if got, err := allocateSubnet(10, []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")}); err == nil {
		t.Errorf("allocated %v inside a taken /15", got)
	}
}

func TestAddressesStayInsideTheRunBlock(t *testing.T) {
	subnet := netip.MustParsePrefix("198.18.4.0/22")
	if gw := gatewayAddr(subnet); gw.String() != "198.18.4.1" {
		t.Errorf("gateway %s", gw)
	}
	if a := hostAddr(subnet, 0); a.String() != "198.18.4.2" {
		t.Errorf("host 0 at %s", a)
	}
	last := hostAddr(subnet, 1020) // 1021 hosts fit a /22
	if !subnet.Contains(last) || last.String() != "198.18.7.254" {
		t.Errorf("host 1020 at %s, want 198.18.7.254", last)
	}
}

func TestInterfaceNamesFitTheKernelLimit(t *testing.T) {
	for _, name := range []string{bridgeName("abcd", "z9z9z"), vethName("abcd", "z9z9z", maxHosts-1)} {
		if len(name) > maxIfName {
			t.Errorf("interface name %q is %d bytes, the kernel allows %d", name, len(name), maxIfName)
		}
	}
}

func TestOptionsRejectBadValues(t *testing.T) {
	for _, o := range []Options{
		{N: -1},
		{N: 1, Prefix: "toolong"},
		{N: 1, Prefix: "ab1"},
		{N: 1, RunID: "UPPER"},
		{N: 10, Capacity: 5},
		{N: 1, SudoUser: "root"},
		{N: 1, SudoUser: "same", PlainUser: "same"},
		{N: 1, PlainUser: "bad name"},
	} {
		if err := o.setDefaults(); err == nil {
			t.Errorf("Options %+v accepted", o)
		}
	}
	o := Options{N: 3}
	if err := o.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if o.Capacity != 3+defaultSpare || o.Prefix != DefaultPrefix || len(o.RunID) != runIDLen {
		t.Errorf("defaults not applied: %+v", o)
	}
}

func TestSysctlPathStaysUnderProcSys(t *testing.T) {
	p, err := sysctlPath("net.netfilter.nf_conntrack_tcp_be_liberal")
	if err != nil || p != "/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal" {
		t.Errorf("got %q, %v", p, err)
	}
	for _, bad := range []string{"", "net..ipv4", "/etc/passwd", "net.ipv4 x"} {
		if p, err := sysctlPath(bad); err == nil {
			t.Errorf("key %q accepted as %q", bad, p)
		}
	}
}

func TestFstabCoversEveryPrivatePath(t *testing.T) {
	fstab := hostFstab("/base/run", "/base/run/hosts/7")
	for _, p := range PrivatePaths {
		want := "/base/run/hosts/7/fs" + p + " " + p + " none bind 0 0\n"
		if !strings.Contains(fstab, want) {
			t.Errorf("fstab lacks %q", want)
		}
	}
	if !strings.HasPrefix(fstab, "fleetproc /proc proc") {
		t.Error("fstab does not mount the host's own /proc first")
	}
}

func TestStaleRunDetection(t *testing.T) {
	s := &State{OwnerPID: 1 << 30}
	if s.ownerAlive() {
		t.Error("a run whose owner PID does not exist counts as live")
	}
	s = &State{OwnerPID: 1, OwnerStart: procStart(1)}
	if !s.ownerAlive() {
		t.Error("a run owned by a running process counts as stale")
	}
	s.OwnerStart++ // same PID, another process: PID reuse
	if s.ownerAlive() {
		t.Error("a reused PID counts as the run's owner")
	}
}

func TestCopyTreeSeedsConfiguration(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "registries.conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "policy.json"), []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("policy.json", filepath.Join(src, "registries.conf.d", "link")); err != nil {
		t.Fatal(err)
	}
	if err := copyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dst, "policy.json"))
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("policy.json: %v, %v; want a 0640 copy", fi, err)
	}
	if l, err := os.Readlink(filepath.Join(dst, "registries.conf.d", "link")); err != nil || l != "policy.json" {
		t.Errorf("symlink copied as %q, %v", l, err)
	}
	if err := copyTree(filepath.Join(src, "missing"), t.TempDir()); err != nil {
		t.Errorf("a missing source must copy nothing, got %v", err)
	}
}
