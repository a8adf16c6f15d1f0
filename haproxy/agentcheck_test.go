package haproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/hafeed/hafeed/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitLimit bounds every wait in these tests; nothing should come close.
const waitLimit = 5 * time.Second

// fakeSource is a ReplySource that records the peers it is asked about.
type fakeSource struct {
	reply string
	// gate, when not nil, holds each AgentReply until it is closed.
	gate chan struct{}

	mu    sync.Mutex
	peers []netip.Addr
}

func (f *fakeSource) AgentReply(peer netip.Addr) []byte {
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peers = append(f.peers, peer)
	return []byte(f.reply)
}

func (f *fakeSource) calls() []netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]netip.Addr(nil), f.peers...)
}

var _ ReplySource = (*fakeSource)(nil)

// startServer runs an AgentServer on a fresh listener until the test ends,
// then checks that Run returns nil promptly.
func startServer(t *testing.T, addr string, src ReplySource, opts AgentServerOptions) *AgentServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := serveOn(t, ln, src, opts)
	return s
}

// serveOn runs an AgentServer on ln until the test ends, then checks that
// Run returns nil promptly; exited is closed if Run returns before that.
func serveOn(t *testing.T, ln net.Listener, src ReplySource, opts AgentServerOptions) (s *AgentServer, exited <-chan struct{}) {
	t.Helper()
	s = NewAgentServer(ln, src, opts, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() {
		runErr = s.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
			if runErr != nil {
				t.Errorf("Run() = %v after cancel, want nil", runErr)
			}
		case <-time.After(waitLimit):
			t.Errorf("Run() did not return within %v of cancel", waitLimit)
		}
	})
	return s, done
}

// dial connects to the server from network ("tcp4", "tcp6") with a deadline
// that keeps a broken server from hanging the test.
func dial(t *testing.T, network string, addr net.Addr) net.Conn {
	t.Helper()
	conn, err := net.Dial(network, addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(waitLimit)); err != nil {
		t.Fatal(err)
	}
	return conn
}

// readAll reads until the server closes its side; a reset or a timeout is
// an error.
func readAll(t *testing.T, conn net.Conn) string {
	t.Helper()
	data, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("reading until the server closes: %v (got %q so far)", err, data)
	}
	return string(data)
}

func TestAgentServerRepliesWithoutInput(t *testing.T) {
	t.Parallel()
	src := &fakeSource{reply: "up 42%\n"}
	s := startServer(t, "127.0.0.1:0", src, AgentServerOptions{Timeout: time.Minute})

	conn := dial(t, "tcp4", s.Addr())
	if got, want := readAll(t, conn), "up 42%\n"; got != want {
		t.Errorf("reply = %q, want %q", got, want)
	}
	if diff := cmp.Diff([]netip.Addr{netip.MustParseAddr("127.0.0.1")}, src.calls(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("peers passed to AgentReply (-want +got):\n%s", diff)
	}
}

func TestAgentServerReadsAgentSend(t *testing.T) {
	t.Parallel()
	// The gate holds the reply until "hello\n" has reached the server, so a
	// server that closed without reading it would answer with a reset.
	gate := make(chan struct{})
	src := &fakeSource{reply: "drain 10%\n", gate: gate}
	s := startServer(t, "127.0.0.1:0", src, AgentServerOptions{Timeout: time.Minute})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(open)

	conn := dial(t, "tcp4", s.Addr())
	if _, err := io.WriteString(conn, "hello\n"); err != nil {
		t.Fatal(err)
	}
	open()
	if got, want := readAll(t, conn), "drain 10%\n"; got != want {
		t.Errorf("reply = %q, want %q", got, want)
	}
	// The server is still reading: more agent-send text is accepted, and
	// closing our side ends the connection without a reset.
	if _, err := io.WriteString(conn, "more\n"); err != nil {
		t.Fatalf("writing after the reply: %v", err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := conn.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("read after closing our side = %d, %v; want 0, EOF", n, err)
	}
}

func TestAgentServerAllow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		allow []string
		reply bool
	}{
		{name: "empty allows all", reply: true},
		{name: "loopback network", allow: []string{"127.0.0.0/8"}, reply: true},
		{name: "exact address", allow: []string{"10.0.0.0/8", "127.0.0.1/32"}, reply: true},
		{name: "other network", allow: []string{"10.0.0.0/8"}},
		{name: "other loopback address", allow: []string{"127.0.0.2/32"}},
		{name: "IPv6 loopback only", allow: []string{"::1/128"}},
		// Issue 17: the peer is matched by its plain IPv4 address.
		{name: "IPv4-mapped address", allow: []string{"::ffff:127.0.0.1/128"}, reply: true},
		{name: "IPv4-mapped network", allow: []string{"::ffff:127.0.0.0/104"}, reply: true},
		{name: "other IPv4-mapped address", allow: []string{"::ffff:127.0.0.2/128"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var allow []netip.Prefix
			for _, p := range tt.allow {
				allow = append(allow, netip.MustParsePrefix(p))
			}
			src := &fakeSource{reply: "up 50%\n"}
			s := startServer(t, "127.0.0.1:0", src, AgentServerOptions{Timeout: time.Minute, Allow: allow})

			got := readAll(t, dial(t, "tcp4", s.Addr()))
			want := ""
			if tt.reply {
				want = "up 50%\n"
			}
			if got != want {
				t.Errorf("reply = %q, want %q", got, want)
			}
			if n := len(src.calls()); tt.reply != (n == 1) {
				t.Errorf("AgentReply called %d times, want a reply: %t", n, tt.reply)
			}
		})
	}
}

// TestParseAllowMatchesAsTheServerDoes checks that every form of an
// allow entry for the loopback address lets a poll from 127.0.0.1 in.
func TestParseAllowMatchesAsTheServerDoes(t *testing.T) {
	t.Parallel()
	for _, entry := range []string{"127.0.0.1", "127.0.0.0/8", "::ffff:127.0.0.1", "::ffff:127.0.0.1/128", "::ffff:127.0.0.0/104", "::ffff:0:0/96"} {
		p, err := ParseAllow(entry)
		if err != nil {
			t.Errorf("ParseAllow(%q) = %v", entry, err)
			continue
		}
		src := &fakeSource{reply: "up 50%\n"}
		s := startServer(t, "127.0.0.1:0", src, AgentServerOptions{Timeout: time.Minute, Allow: []netip.Prefix{p}})
		if got := readAll(t, dial(t, "tcp4", s.Addr())); got != "up 50%\n" {
			t.Errorf("allow %q (parsed as %v): reply to 127.0.0.1 = %q, want %q", entry, p, got, "up 50%\n")
		}
	}
	if p, err := ParseAllow("::ffff:10.0.0.0/80"); err == nil {
		t.Errorf("ParseAllow(::ffff:10.0.0.0/80) = %v, want an error: it can match no IPv4 peer", p)
	}
}

func TestAgentServerSetAllow(t *testing.T) {
	t.Parallel()
	src := &fakeSource{reply: "up 50%\n"}
	s := startServer(t, "127.0.0.1:0", src, AgentServerOptions{
		Timeout: time.Minute,
		Allow:   []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
	})
	poll := func() string { return readAll(t, dial(t, "tcp4", s.Addr())) }

	if got := poll(); got != "" {
		t.Fatalf("reply before SetAllow = %q, want none", got)
	}
	allow := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	s.SetAllow(allow)
	if got := poll(); got != "up 50%\n" {
		t.Fatalf("reply after allowing 127.0.0.1 = %q, want %q", got, "up 50%\n")
	}
	// SetAllow keeps its own copy.
	allow[0] = netip.MustParsePrefix("192.0.2.0/24")
	if got := poll(); got != "up 50%\n" {
		t.Fatalf("reply after changing the caller's slice = %q, want %q", got, "up 50%\n")
	}
	s.SetAllow([]netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")})
	if got := poll(); got != "" {
		t.Fatalf("reply after allowing only 192.168.0.0/16 = %q, want none", got)
	}
	s.SetAllow(nil)
	if got := poll(); got != "up 50%\n" {
		t.Fatalf("reply after SetAllow(nil) = %q, want %q", got, "up 50%\n")
	}
}

func TestAgentServerIdleConnectionsDoNotBlockPolls(t *testing.T) {
	t.Parallel()
	const idle, maxLinger = 500, 8
	src := &fakeSource{reply: "up 77%\n"}
	s := startServer(t, "127.0.0.1:0", src, AgentServerOptions{Timeout: time.Minute, MaxLinger: maxLinger})

	// Idle clients connect and neither read nor close; the first maxLinger
	// of them keep a server goroutine reading for a minute.
	for range idle {
		dial(t, "tcp4", s.Addr())
	}
	// Connections are accepted in order, so this one comes after them all.
	conn := dial(t, "tcp4", s.Addr())
	if got, want := readAll(t, conn), "up 77%\n"; got != want {
		t.Errorf("reply with %d idle connections open = %q, want %q", idle, got, want)
	}
	if got, want := len(src.calls()), idle+1; got != want {
		t.Errorf("AgentReply called %d times, want %d (one per connection)", got, want)
	}
}

func TestAgentServerRunReturnsOnCancelWithIdleClients(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewAgentServer(ln, &fakeSource{reply: "up\n"}, AgentServerOptions{Timeout: time.Minute}, zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	// Each client reads its reply, so the server holds every connection in
	// its lingering read, which would last the one-minute timeout.
	var clients []net.Conn
	for range 5 {
		conn := dial(t, "tcp4", s.Addr())
		buf := make([]byte, len("up\n"))
		if _, err := io.ReadFull(conn, buf); err != nil {
			t.Fatalf("reading reply: %v", err)
		}
		clients = append(clients, conn)
	}

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run() = %v after cancel, want nil", err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("Run() did not return within %v of cancel while clients were connected", waitLimit)
	}
	t.Logf("Run returned %v after cancel", time.Since(start))

	for i, conn := range clients {
		if n, err := conn.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Errorf("client %d: read after Run returned = %d, %v; want 0, EOF", i, n, err)
		}
	}
	if conn, err := net.DialTimeout("tcp4", s.Addr().String(), waitLimit); err == nil {
		conn.Close()
		t.Errorf("dial after Run returned succeeded; want the listener closed")
	}
}

func TestAgentServerPeerAddressIsUnmapped(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		network string
		addr    string
		want    netip.Addr
	}{
		// On a dual-stack listener an IPv4 client appears as ::ffff:127.0.0.1.
		{name: "IPv4 client", network: "tcp4", addr: "127.0.0.1", want: netip.MustParseAddr("127.0.0.1")},
		{name: "IPv6 client", network: "tcp6", addr: "::1", want: netip.MustParseAddr("::1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := &fakeSource{reply: "up 5%\n"}
			// The allowlist names the plain IPv4 address, as an operator would.
			s := startServer(t, "[::]:0", src, AgentServerOptions{
				Timeout: time.Minute,
				Allow:   []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")},
			})
			port := s.Addr().(*net.TCPAddr).Port
			conn := dial(t, tt.network, net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(tt.addr), uint16(port))))
			if got, want := readAll(t, conn), "up 5%\n"; got != want {
				t.Errorf("reply = %q, want %q", got, want)
			}
			peers := src.calls()
			if len(peers) != 1 || peers[0] != tt.want {
				t.Errorf("peers passed to AgentReply = %v, want [%v]", peers, tt.want)
			}
		})
	}
}

func TestPeerAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		addr net.Addr
		want netip.Addr
	}{
		{name: "TCP IPv4", addr: &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 5555}, want: netip.MustParseAddr("10.1.2.3")},
		{name: "TCP IPv4-mapped", addr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort("[::ffff:10.1.2.3]:5555")), want: netip.MustParseAddr("10.1.2.3")},
		{name: "TCP IPv6", addr: &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 5555}, want: netip.MustParseAddr("2001:db8::1")},
		{name: "other address type", addr: &net.UDPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 1}, want: netip.MustParseAddr("192.0.2.1")},
		{name: "no port", addr: &net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, want: netip.Addr{}},
	}
	for _, tt := range tests {
		if got := peerAddr(tt.addr); got != tt.want {
			t.Errorf("%s: peerAddr(%v) = %v, want %v", tt.name, tt.addr, got, tt.want)
		}
	}
}

// flakyListener fails Accept with EMFILE, as a process out of file
// descriptors does, while fails is positive.
type flakyListener struct {
	net.Listener
	fails   atomic.Int32
	accepts atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.accepts.Add(1)
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAgentServerAcceptErrorsBackOff checks that running out of file
// descriptors neither stops the server nor makes it spin: it backs off,
// retries, and answers the next poll (issue 11, item 6).
func TestAgentServerAcceptErrorsBackOff(t *testing.T) {
	t.Parallel()
	const failures = 5
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &flakyListener{Listener: inner}
	ln.fails.Store(failures)
	s, exited := serveOn(t, ln, &fakeSource{reply: "up 10%\n"}, AgentServerOptions{Timeout: time.Minute})

	conn := dial(t, "tcp4", s.Addr())
	if got, want := readAll(t, conn), "up 10%\n"; got != want {
		t.Errorf("reply after %d accept errors = %q, want %q", failures, got, want)
	}
	select {
	case <-exited:
		t.Fatal("Run() returned after accept errors, want it serving")
	default:
	}
	if got := ln.accepts.Load(); got < failures+1 || got > failures+2 {
		t.Errorf("Accept called %d times for %d failures and one poll, want %d or %d", got, failures, failures+1, failures+2)
	}
}

// TestAgentServerClosesIdlePeers checks the per-connection timeout: a peer
// that reads its reply and then neither writes nor closes is let go, and so
// is one that trickles bytes (slowloris).
func TestAgentServerClosesIdlePeers(t *testing.T) {
	t.Parallel()
	s := startServer(t, "127.0.0.1:0", &fakeSource{reply: "up\n"}, AgentServerOptions{Timeout: 200 * time.Millisecond})

	// The reply ends with the server's half-close; the server then waits
	// for the peer's close in a lingering read.
	idle := dial(t, "tcp4", s.Addr())
	if got := readAll(t, idle); got != "up\n" {
		t.Errorf("idle peer's reply = %q, want %q", got, "up\n")
	}
	testutil.Until(t, waitLimit, "an idle peer's lingering read to end after the 200ms timeout", func() bool { return len(s.linger) == 0 })

	// A trickling peer finds the connection closed once the timeout passes.
	trickle := dial(t, "tcp4", s.Addr())
	if got := readAll(t, trickle); got != "up\n" {
		t.Errorf("trickling peer's reply = %q, want %q", got, "up\n")
	}
	start := time.Now()
	for {
		if _, err := trickle.Write([]byte("x")); err != nil {
			if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("trickling peer: write error %v, want the server's close (EPIPE or ECONNRESET)", err)
			}
			break
		}
		if time.Since(start) > waitLimit {
			t.Fatalf("a trickling peer was still connected %v after the 200ms timeout", waitLimit)
		}
		time.Sleep(20 * time.Millisecond) // the trickle's pace, not a wait for the server
	}
	testutil.Until(t, waitLimit, "no lingering read once both peers were let go", func() bool { return len(s.linger) == 0 })
}
