package metrics

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/hafeed/hafeed/internal/testutil"
)

func TestParseProcNetTCP(t *testing.T) {
	t.Parallel()
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:15B3 0100007F:C351 06 00000000:00000000 00:00000000 00000000     0        0 0 3 0000000000000000
`
	type sock struct {
		Port  uint16
		State uint8
	}
	var got []sock
	if err := parseProcNetTCP(strings.NewReader(table), func(_ []byte, p uint16, _ []byte, s uint8) { got = append(got, sock{p, s}) }); err != nil {
		t.Fatal(err)
	}
	want := []sock{{8080, tcpListen}, {8080, tcpEstablished}, {50000, tcpEstablished}, {5555, 6}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sockets (-want +got):\n%s", diff)
	}
}

func TestParseProcNetTCPMalformed(t *testing.T) {
	t.Parallel()
	for _, table := range []string{
		"header\n 0: 0100007F 00000000:0000 0A\n",
		"header\n 0: 0100007F:XYZ 00000000:0000 0A\n",
		"header\n 0: 0100007F:1F90 00000000:0000 ZZ\n",
	} {
		if err := parseProcNetTCP(strings.NewReader(table), func([]byte, uint16, []byte, uint8) {}); err == nil {
			t.Errorf("parseProcNetTCP(%q) = nil error, want one", table)
		}
	}
}

// TestConnsCountsRealSockets opens real loopback connections and checks both
// readers count the inbound ones on the watched port and nothing else.
func TestConnsCountsRealSockets(t *testing.T) {
	t.Parallel()
	watched := listen(t, "tcp4", "127.0.0.1:0")
	// A second watched port: the same source's connections to it are a
	// path of their own, with a port range of their own.
	watched2 := listen(t, "tcp4", "127.0.0.1:0")
	other := listen(t, "tcp4", "127.0.0.1:0")
	v6 := listen(t, "tcp", "[::1]:0")
	dial(t, watched, 5)
	dial(t, watched2, 4)
	dial(t, other, 3)
	dial(t, v6, 2)

	// By the address each came from and the port it reached: the peers'
	// view of the source ports they use.
	want := map[Path]int{
		{netip.MustParseAddr("127.0.0.1"), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port(watched))}:  5,
		{netip.MustParseAddr("127.0.0.1"), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port(watched2))}: 4,
		{netip.MustParseAddr("::1"), netip.AddrPortFrom(netip.MustParseAddr("::1"), port(v6))}:                   2,
	}
	for name, src := range map[string]socketSource{"netlink": netlinkSource{}, "procfs": procSource{root: "/proc"}} {
		c := &Conns{Ports: []uint16{port(watched), port(watched2), port(v6)}}
		check := func() error {
			got, err := c.count(src)
			switch {
			case err != nil:
				return testutil.Stop(err)
			case got.Established != 11:
				return fmt.Errorf("Established = %d, want 11 (5 + 4 IPv4, 2 IPv6)", got.Established)
			case !maps.Equal(got.Paths, want):
				return fmt.Errorf("Paths = %v, want %v", got.Paths, want)
			}
			return nil
		}
		// netlink's dump is exact; /proc/net/tcp is read a page at a time,
		// and the sockets other tests open and close meanwhile can shift a
		// line into the next page and list it twice: a few reads.
		limit := time.Duration(0)
		if name == "procfs" {
			limit = 2 * time.Second
		}
		if _, err := testutil.Wait(limit, check); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		all := &Conns{Exclude: []uint16{port(other)}}
		got, err := all.count(src)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// Other listeners on the host may hold connections too; ours must be in.
		if got.Established < 11 {
			t.Errorf("%s: all ports: Established = %d, want at least 11", name, got.Established)
		}
		for _, p := range got.Ports {
			if p == port(other) {
				t.Errorf("%s: excluded port %d was counted", name, p)
			}
		}
	}
}

func TestConnsManyPortsFilter(t *testing.T) {
	t.Parallel()
	watched := listen(t, "tcp4", "127.0.0.1:0")
	dial(t, watched, 4)
	// More ports than an 8-bit jump could skip, with the real one last.
	var ports []uint16
	for p := uint16(1); p <= 100; p++ {
		ports = append(ports, p)
	}
	ports = append(ports, port(watched))
	c := &Conns{Ports: ports}
	got, err := c.Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.Established != 4 || c.Method() != MethodNetlink {
		t.Errorf("Count = %d via %s, want 4 via netlink", got.Established, c.Method())
	}
}

// listen accepts on addr and holds the connections until the test ends.
func listen(t testing.TB, network, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	var accepted []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted = append(accepted, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		testutil.Recv(t, done, 10*time.Second, "the accept loop to end")
		for _, c := range accepted {
			c.Close()
		}
	})
	return ln
}

// dial opens n connections to ln, closed when the test ends.
func dial(t testing.TB, ln net.Listener, n int) {
	t.Helper()
	for range n {
		c, err := net.Dial(ln.Addr().Network(), ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

func port(ln net.Listener) uint16 { return uint16(ln.Addr().(*net.TCPAddr).Port) }

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestConnsNetlinkFallbackOnlyWhenUnavailable checks that a passing
// shortage on the netlink socket (out of descriptors, of buffers) fails
// that one count and leaves netlink in use, while a kernel without
// sock_diag, or a sandbox that forbids it, moves counting to procfs
// (issue 17, item 6: one EMFILE moved it to procfs for good, which
// counted 117 sockets against 50 while they churned).
func TestConnsNetlinkFallbackOnlyWhenUnavailable(t *testing.T) {
	t.Parallel()
	watched := listen(t, "tcp4", "127.0.0.1:0")
	dial(t, watched, 3)
	tests := []struct {
		errno unix.Errno
		// fallback: the same count is taken through procfs from now on.
		fallback bool
	}{
		{unix.EMFILE, false},
		{unix.ENFILE, false},
		{unix.ENOBUFS, false},
		{unix.ENOMEM, false},
		{unix.EPROTONOSUPPORT, true},
		{unix.EAFNOSUPPORT, true},
		{unix.EACCES, true},
		{unix.EPERM, true},
	}
	for _, tt := range tests {
		t.Run(tt.errno.Error(), func(t *testing.T) {
			t.Parallel()
			var failed atomic.Bool
			c := &Conns{Ports: []uint16{port(watched)}}
			c.netlinkSocket = func() (int, error) {
				if failed.CompareAndSwap(false, true) {
					return -1, tt.errno
				}
				return unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
			}
			first, err := c.Count(context.Background())
			switch {
			case tt.fallback && (err != nil || first.Established != 3 || c.Method() != MethodProc):
				t.Errorf("count with netlink unavailable (%v) = %d via %s, %v; want 3 via procfs", tt.errno, first.Established, c.Method(), err)
			case !tt.fallback && err == nil:
				t.Errorf("count with the netlink socket failing (%v) = %d via %s; want that count to fail", tt.errno, first.Established, c.Method())
			}
			next, err := c.Count(context.Background())
			want := MethodNetlink
			if tt.fallback {
				want = MethodProc
			}
			if err != nil || next.Established != 3 || c.Method() != want {
				t.Errorf("the count after one %v = %d via %s, %v; want 3 via %s", tt.errno, next.Established, c.Method(), err, want)
			}
		})
	}
}

func TestParseProcAddr(t *testing.T) {
	t.Parallel()
	for hex, want := range map[string]string{
		"0100007F":                         "127.0.0.1",
		"0200007F":                         "127.0.0.2",
		"00000000000000000000000001000000": "::1",
		"0000000000000000FFFF00000100007F": "127.0.0.1", // IPv4-mapped
		"B80D0120000000000000000001000000": "2001:db8::1",
	} {
		got, ok := parseProcAddr([]byte(hex))
		if !ok || got != netip.MustParseAddr(want) {
			t.Errorf("parseProcAddr(%s) = %v, %v; want %s", hex, got, ok, want)
		}
	}
	for _, bad := range []string{"", "0100007", "zz00007F"} {
		if _, ok := parseProcAddr([]byte(bad)); ok {
			t.Errorf("parseProcAddr(%q) accepted", bad)
		}
	}
}
