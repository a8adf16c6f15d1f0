package metrics

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
		Local, Remote string
		State         uint8
	}
	var got []sock
	if err := parseProcNetTCP(strings.NewReader(table), func(s procSocket) {
		got = append(got, sock{fmt.Sprintf("%s:%d", s.localAddr, s.localPort), fmt.Sprintf("%s:%d", s.remoteAddr, s.remotePort), s.state})
	}); err != nil {
		t.Fatal(err)
	}
	want := []sock{
		{"0100007F:8080", "00000000:0", tcpListen},
		{"0100007F:8080", "0100007F:50000", tcpEstablished},
		{"0100007F:50000", "0100007F:8080", tcpEstablished},
		{"0100007F:5555", "0100007F:50001", 6},
	}
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
		"header\n 0: 0100007F:1F90 00000000 01\n",
		"header\n 0: 0100007F:1F90 0100007F:XYZ 01\n",
	} {
		if err := parseProcNetTCP(strings.NewReader(table), func(procSocket) {}); err == nil {
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
		// netlink's dump is exact; /proc/net/tcp is written a page at a
		// time, and a socket other tests close meanwhile can shift a line
		// of the next page into this one, unlisted (a line listed twice is
		// counted once): a few reads.
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

// fakeProc writes a procfs with /net/tcp holding, after the header,
// one established connection to 127.0.0.1:port from 127.0.0.2 for each of
// peerPorts, in that order: a port twice is a line the kernel wrote twice.
func fakeProc(t *testing.T, port uint16, peerPorts ...uint16) string {
	t.Helper()
	root := t.TempDir()
	var b strings.Builder
	b.WriteString("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
	fmt.Fprintf(&b, "   0: 0100007F:%04X 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n", port)
	for i, p := range peerPorts {
		fmt.Fprintf(&b, "%4d: 0100007F:%04X 0200007F:%04X 01 00000000:00000000 00:00000000 00000000     0        0 %d 1 0000000000000000 20 4 30 10 -1\n", i+1, port, p, i+2)
	}
	if err := os.MkdirAll(filepath.Join(root, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "net", "tcp"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestConnsProcCountsRepeatedLinesOnce: the kernel writes /proc/net/tcp a
// page at a time, and a socket opened or closed between two pages makes
// it write lines of the last page again. CI counted 4 to 6 connections
// for 3 that way, while other tests' sockets churned.
func TestConnsProcCountsRepeatedLinesOnce(t *testing.T) {
	t.Parallel()
	c := &Conns{Ports: []uint16{8080}, ProcRoot: fakeProc(t, 8080, 50000, 50001, 50002, 50001, 50002, 50003)}
	got, err := c.count(procSource{root: c.procRoot()})
	if err != nil {
		t.Fatal(err)
	}
	want := map[Path]int{{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddrPort("127.0.0.1:8080")}: 4}
	if got.Established != 4 || !maps.Equal(got.Paths, want) {
		t.Errorf("count = %d, paths %v; want 4 connections (50000 to 50003), paths %v", got.Established, got.Paths, want)
	}
}

// TestConnsProcUnderChurn counts real connections through procfs while
// other connections open and close as fast as two dialers can: no count
// is over what is there. (Before counting a connection once by its two
// ends, 51 of 165 reads in this test counted more, under -race.) A
// count under it stays possible, a line moved into a page already read.
func TestConnsProcUnderChurn(t *testing.T) {
	t.Parallel()
	watched := listen(t, "tcp4", "127.0.0.1:0")
	dial(t, watched, 50)

	// The churn: connections reset as soon as they are made, so that no
	// TIME-WAIT fills the table and no descriptor is held.
	churn, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	defer churn.Close()
	wg.Go(func() {
		for {
			c, err := churn.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if c, err := net.Dial("tcp4", churn.Addr().String()); err == nil {
					_ = c.(*net.TCPConn).SetLinger(0)
					c.Close()
				}
			}
		})
	}

	src := procSource{root: "/proc"}
	reads, over := 0, 0
	for end := time.Now().Add(time.Second); time.Now().Before(end); reads++ {
		n, err := src.countEstablished([]uint16{port(watched)}, pathTally{})
		if err != nil {
			t.Fatal(err)
		}
		if n > 50 {
			over++
			t.Errorf("read %d: %d connections counted, 50 there", reads, n)
		}
	}
	t.Logf("%d reads under churn, %d over", reads, over)
}

// TestConnsNetlinkFallbackOnlyWhenUnavailable checks that a passing
// shortage on the netlink socket (out of descriptors, of buffers) fails
// that one count and leaves netlink in use, while a kernel without
// sock_diag, or a sandbox that forbids it, moves counting to procfs
// (issue 17, item 6: one EMFILE moved it to procfs for good, which
// counted 117 sockets against 50 while they churned). netlink sees the 3
// real connections; the procfs it falls back to is a fixed table of 7 on
// the same port, so the count says which was read.
func TestConnsNetlinkFallbackOnlyWhenUnavailable(t *testing.T) {
	t.Parallel()
	watched := listen(t, "tcp4", "127.0.0.1:0")
	dial(t, watched, 3)
	procRoot := fakeProc(t, port(watched), 50000, 50001, 50002, 50003, 50004, 50005, 50006)
	tests := []struct {
		errno unix.Errno
		// fallback: the count is taken through procfs from now on.
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
			c := &Conns{Ports: []uint16{port(watched)}, ProcRoot: procRoot}
			c.netlinkSocket = func() (int, error) {
				if failed.CompareAndSwap(false, true) {
					return -1, tt.errno
				}
				return unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
			}
			first, err := c.Count(context.Background())
			switch {
			case tt.fallback && (err != nil || first.Established != 7 || c.Method() != MethodProc):
				t.Errorf("count with netlink unavailable (%v) = %d via %s, %v; want procfs's 7", tt.errno, first.Established, c.Method(), err)
			case !tt.fallback && err == nil:
				t.Errorf("count with the netlink socket failing (%v) = %d via %s; want that count to fail", tt.errno, first.Established, c.Method())
			}
			next, err := c.Count(context.Background())
			want, wantN := MethodNetlink, 3
			if tt.fallback {
				want, wantN = MethodProc, 7
			}
			if err != nil || next.Established != wantN || c.Method() != want {
				t.Errorf("the count after one %v = %d via %s, %v; want %d via %s", tt.errno, next.Established, c.Method(), err, wantN, want)
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
