package testfleet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
)

// fleetRange is the RFC 2544 benchmarking block the project's test hosts live in.
var fleetRange = netip.MustParsePrefix("198.18.0.0/16")

// maxHosts is what a whole /16 holds after the network, gateway and broadcast addresses.
const maxHosts = 1<<16 - 3

// blockBits returns the prefix length of the smallest block (at most a /24)
// holding the gateway plus capacity hosts.
func blockBits(capacity int) int {
	bits := 24
	for bits > fleetRange.Bits() && (1<<(32-bits))-3 < capacity {
		bits--
	}
	return bits
}

// allocateSubnet picks the first aligned block of the given size inside
// 198.18.0.0/16 that overlaps no other run's block and no route the machine
// already has.
func allocateSubnet(capacity int, taken []netip.Prefix) (netip.Prefix, error) {
	bits := blockBits(capacity)
	size := uint32(1) << (32 - bits)
	base := addrU32(fleetRange.Addr())
	for off := uint32(0); off < 1<<(32-fleetRange.Bits()); off += size {
		p := netip.PrefixFrom(u32Addr(base+off), bits)
		free := true
		for _, t := range taken {
			if t.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("testfleet: no free /%d left in %s for %d hosts (other runs or routes use it; see `ip route` and %s)", bits, fleetRange, capacity, DefaultBaseDir)
}

// hostAddr is host idx's address: the gateway is .1, hosts start at .2.
func hostAddr(subnet netip.Prefix, idx int) netip.Addr {
	return u32Addr(addrU32(subnet.Addr()) + 2 + uint32(idx))
}

func gatewayAddr(subnet netip.Prefix) netip.Addr {
	return u32Addr(addrU32(subnet.Addr()) + 1)
}

// macFor is the link-layer address of the interface holding a (a host's eth0,
// or the bridge for the gateway): locally administered, unique because the
// address is. Fixed addresses let both ends carry permanent neighbour entries.
func macFor(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("02:00:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

func addrU32(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }
func u32Addr(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// routesInFleetRange lists IPv4 routes of the machine that overlap 198.18.0.0/16.
func routesInFleetRange() ([]netip.Prefix, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []netip.Prefix
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 8 {
			continue
		}
		dst, err1 := hex.DecodeString(fl[1])
		mask, err2 := hex.DecodeString(fl[7])
		if err1 != nil || err2 != nil || len(dst) != 4 || len(mask) != 4 {
			continue
		}
		// /proc/net/route prints addresses in host (little-endian) byte order.
		d := netip.AddrFrom4([4]byte{dst[3], dst[2], dst[1], dst[0]})
		ones := 0
		for _, b := range mask {
			for ; b != 0; b &= b - 1 {
				ones++
			}
		}
		if ones == 0 {
			continue // default route
		}
		p := netip.PrefixFrom(d, ones).Masked()
		if p.Overlaps(fleetRange) {
			out = append(out, p)
		}
	}
	return out, sc.Err()
}

// ipBatch runs many ip(8) commands in one process. With force, later lines
// still run after a failing one (used for tear-down).
func ipBatch(ctx context.Context, lines []string, force bool) error {
	if len(lines) == 0 {
		return nil
	}
	args := []string{"-batch", "-"}
	if force {
		args = append([]string{"-force"}, args...)
	}
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("testfleet: ip -batch (%d commands, first %q): %w: %s", len(lines), lines[0], err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// linkExists reports whether the machine has a network interface of that name.
func linkExists(name string) bool {
	_, err := os.Lstat("/sys/class/net/" + name)
	return err == nil
}

// isBridge reports whether a machine interface is a bridge.
func isBridge(name string) bool {
	_, err := os.Stat("/sys/class/net/" + name + "/bridge")
	return err == nil
}

// linksWithPrefix lists the machine's interfaces whose names start with p.
func linksWithPrefix(p string) []string {
	ents, _ := os.ReadDir("/sys/class/net")
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), p) {
			out = append(out, e.Name())
		}
	}
	return out
}

// raiseNeighbourLimits makes the machine's ARP table big enough for a large
// fleet on one bridge; with the kernel default (1024 entries) a 1000-host
// fleet gets "neighbour table overflow" and unreachable hosts. The gateway and
// the hosts hold permanent entries for each other, which the limits do not
// count; what is left is host-to-host traffic. It only ever raises the limits.
func raiseNeighbourLimits(capacity int) error {
	want := []int{capacity + 256, 2*capacity + 512, 4*capacity + 1024}
	for i, key := range []string{"gc_thresh1", "gc_thresh2", "gc_thresh3"} {
		p := "/proc/sys/net/ipv4/neigh/default/" + key
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("testfleet: read %s: %w", p, err)
		}
		var cur int
		fmt.Sscan(string(b), &cur)
		if cur >= want[i] {
			continue
		}
		if err := os.WriteFile(p, []byte(fmt.Sprint(want[i])), 0o644); err != nil {
			return fmt.Errorf("testfleet: raise %s to %d for %d hosts: %w", p, want[i], capacity, err)
		}
	}
	return nil
}

const conntrackKey = "net.netfilter.nf_conntrack_tcp_be_liberal"

// ensureConntrack loads nf_conntrack if its sysctls are missing. The module
// is global; each network namespace then has its own values.
func ensureConntrack(ctx context.Context) bool {
	p, _ := sysctlPath(conntrackKey)
	if _, err := os.Stat(p); err == nil {
		return true
	}
	_ = exec.CommandContext(ctx, "modprobe", "nf_conntrack").Run()
	_, err := os.Stat(p)
	return err == nil
}
