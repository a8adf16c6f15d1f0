package sockdiag

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pairs opens n connections to a listener on 127.0.0.1 and returns the
// listener's port with the client and server ends, in the order they were
// made.
func pairs(t *testing.T, n int) (uint16, []net.Conn, []net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var clients, servers []net.Conn
	for range n {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); s.Close() })
		clients, servers = append(clients, c), append(servers, s)
	}
	return uint16(ln.Addr().(*net.TCPAddr).Port), clients, servers
}

func established(t *testing.T, port uint16) (int, []Key, []uint32) {
	t.Helper()
	var keys []Key
	var inodes []uint32
	err := Diag{}.EachTCP(Established, []uint16{port}, func(s Sock) {
		if s.LocalPort() != port {
			t.Errorf("the dump filtered on port %d gave a socket on port %d", port, s.LocalPort())
		}
		keys, inodes = append(keys, s.Key()), append(inodes, s.Inode())
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(keys), keys, inodes
}

func TestEachTCPFiltersByStateAndPort(t *testing.T) {
	t.Parallel()
	port, _, _ := pairs(t, 4)
	other, _, _ := pairs(t, 2)
	if n, _, _ := established(t, port); n != 4 {
		t.Errorf("established on port %d = %d, want 4 (the server ends only)", port, n)
	}
	var remotes []netip.Addr
	if err := (Diag{}).EachTCP(Established, []uint16{port}, func(s Sock) { remotes = append(remotes, s.Remote()) }); err != nil {
		t.Fatal(err)
	}
	for _, r := range remotes {
		if r != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("a connection from 127.0.0.1 has remote address %v", r)
		}
	}
	var listening []uint16
	if err := (Diag{}).EachTCP(Listening, []uint16{port, other}, func(s Sock) { listening = append(listening, s.LocalPort()) }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(listening)
	if want := []uint16{min(port, other), max(port, other)}; !slices.Equal(listening, want) {
		t.Errorf("listening on %d and %d = %v, want %v", port, other, listening, want)
	}
}

// needNetAdmin skips, saying why, where the kernel would refuse to close
// sockets: closing them is what these tests check.
func needNetAdmin(t *testing.T) {
	t.Helper()
	ok, err := HasNetAdmin()
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Skip("SKIPPED, NOT PASSED: closing sockets needs CAP_NET_ADMIN, which this test process lacks (run the tests as root)")
	}
	if err := (Diag{}).CanDestroy(); errors.Is(err, ErrCannotDestroy) {
		t.Skipf("SKIPPED, NOT PASSED: %v", err)
	}
}

// TestDestroyClosesTheNamedSockets closes two of five server ends, the
// way a drain sheds, and checks what each side sees: the application's
// end fails with ECONNABORTED, the peer reads a reset, and the others
// carry on.
func TestDestroyClosesTheNamedSockets(t *testing.T) {
	t.Parallel()
	needNetAdmin(t)
	port, clients, servers := pairs(t, 5)
	_, keys, inodes := established(t, port)
	if !slices.IsSorted(inodes) {
		t.Logf("inodes of sockets made one after another are not increasing here: %v", inodes)
	}
	// Which key is which server end: by the peer's port, the client's local one.
	byClient := map[int]Key{}
	for _, k := range keys {
		byClient[int(k.id[2])<<8|int(k.id[3])] = k
	}
	victims := []Key{byClient[clients[0].LocalAddr().(*net.TCPAddr).Port], byClient[clients[1].LocalAddr().(*net.TCPAddr).Port]}
	closed, err := Diag{}.Destroy(victims, nil)
	if err != nil || closed != 2 {
		t.Fatalf("Destroy(2 sockets) = %d, %v; want 2, nil", closed, err)
	}
	for i, c := range clients {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		switch {
		case i < 2 && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF):
			t.Errorf("client %d of a closed socket read %v, want a reset", i, err)
		case i >= 2 && !(errors.As(err, &ne) && ne.Timeout()):
			t.Errorf("client %d of an open socket read %v, want a timeout (nothing to read)", i, err)
		}
	}
	if _, err := servers[0].Write([]byte("x")); !errors.Is(err, syscall.ECONNABORTED) {
		t.Errorf("the application's write on a closed socket = %v, want ECONNABORTED", err)
	}
	if n, _, _ := established(t, port); n != 3 {
		t.Errorf("established after closing 2 of 5 = %d, want 3", n)
	}
	// Closing them again: gone, skipped, not an error.
	if closed, err := (Diag{}).Destroy(victims, nil); err != nil || closed != 0 {
		t.Errorf("Destroy of sockets already closed = %d, %v; want 0, nil", closed, err)
	}
}

func TestDestroyStopsWhenAsked(t *testing.T) {
	t.Parallel()
	needNetAdmin(t)
	port, _, _ := pairs(t, 3)
	_, keys, _ := established(t, port)
	asked := 0
	closed, err := Diag{}.Destroy(keys, func() bool { asked++; return asked <= 1 })
	if err != nil || closed != 1 {
		t.Errorf("Destroy told to stop after one = %d, %v; want 1, nil", closed, err)
	}
}

// TestSockRemoteIsThePeersAddress dials from 127.0.0.2 and over IPv6: the
// dump names each connection's source address, as an HAProxy's source
// per server line sets it.
func TestSockRemoteIsThePeersAddress(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ network, listen, from string }{
		{"tcp4", "127.0.0.1:0", "127.0.0.2"},
		{"tcp6", "[::1]:0", "::1"},
	} {
		ln, err := net.Listen(tt.network, tt.listen)
		if err != nil {
			t.Logf("no %s here: %v", tt.network, err)
			continue
		}
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(tt.from)}}
		c, err := d.Dial(tt.network, ln.Addr().String())
		if err != nil {
			ln.Close()
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		port := uint16(ln.Addr().(*net.TCPAddr).Port)
		var got []netip.Addr
		if err := (Diag{}).EachTCP(Established, []uint16{port}, func(s Sock) { got = append(got, s.Remote()) }); err != nil {
			t.Fatal(err)
		}
		if want := netip.MustParseAddr(tt.from); len(got) != 1 || got[0] != want {
			t.Errorf("%s connection from %s: remotes %v, want [%v]", tt.network, tt.from, got, want)
		}
		c.Close()
		s.Close()
		ln.Close()
	}
}
