package haproxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/hafeed/hafeed/internal/netaccept"
)

// ReplySource hands the agent-check server the prepared reply for a peer.
// It is called once per connection and must not block or compute load.
type ReplySource interface {
	AgentReply(peer netip.Addr) []byte
}

// AgentServerOptions tunes the agent-check server.
type AgentServerOptions struct {
	// Timeout bounds each connection, reply and lingering read included.
	Timeout time.Duration
	// MaxLinger bounds the connections kept open after the reply to read
	// agent-send text until the peer closes. Past it, a connection still gets
	// its reply but is closed at once.
	MaxLinger int
	// Allow, when non-empty, lists the peer networks that get a reply.
	Allow []netip.Prefix
}

// AgentServer answers HAProxy's agent-check polls with the prepared reply.
type AgentServer struct {
	ln     net.Listener
	source ReplySource
	log    zerolog.Logger
	denied zerolog.Logger

	timeout time.Duration
	linger  chan struct{}
	allow   atomic.Pointer[[]netip.Prefix]
}

// NewAgentServer serves agent-check on ln, which it closes when Run returns.
func NewAgentServer(ln net.Listener, source ReplySource, opts AgentServerOptions, log zerolog.Logger) *AgentServer {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.MaxLinger <= 0 {
		opts.MaxLinger = 256
	}
	log = log.With().Str("component", "agentcheck").Logger()
	s := &AgentServer{
		ln:      ln,
		source:  source,
		log:     log,
		denied:  log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second}),
		timeout: opts.Timeout,
		linger:  make(chan struct{}, opts.MaxLinger),
	}
	s.SetAllow(opts.Allow)
	return s
}

// SetAllow replaces the allowlist; an empty list allows every peer. An
// IPv4-mapped prefix (::ffff:10.0.0.0/104) is kept as the IPv4 one it
// means, since peers are matched by their plain IPv4 address.
func (s *AgentServer) SetAllow(allow []netip.Prefix) {
	allow = append([]netip.Prefix(nil), allow...)
	for i, p := range allow {
		allow[i] = unmapPrefix(p)
	}
	s.allow.Store(&allow)
}

// ParseAllow parses one agent_check.allow entry, a CIDR prefix or a single
// address, as the server matches it: a peer is compared by its address
// without the IPv4-in-IPv6 mapping, so an IPv4-mapped entry becomes the
// IPv4 prefix it means (::ffff:127.0.0.1/128 is 127.0.0.1/32), and one
// shorter than the mapped range, which could only ever match IPv6 peers,
// is refused.
func ParseAllow(entry string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(entry)
	if err != nil {
		a, aerr := netip.ParseAddr(entry)
		if aerr != nil {
			return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR prefix (10.0.0.0/8) nor an address", entry)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4In6() && p.Bits() < 96 {
		return netip.Prefix{}, fmt.Errorf("%q: an IPv4-mapped prefix shorter than /96 matches no IPv4 peer, which is matched by its IPv4 address: write the IPv4 network, e.g. 10.0.0.0/8", entry)
	}
	return unmapPrefix(p).Masked(), nil
}

// unmapPrefix turns an IPv4-mapped prefix of at least /96 into the IPv4
// prefix it covers; any other prefix stays as it is.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if !p.Addr().Is4In6() || p.Bits() < 96 {
		return p
	}
	return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Masked()
}

// Addr is the address the server listens on.
func (s *AgentServer) Addr() net.Addr { return s.ln.Addr() }

// Run accepts connections until ctx is done, then waits for open ones.
func (s *AgentServer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()

	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	defer s.ln.Close()

	acceptor := netaccept.Acceptor{Listener: s.ln, Log: s.log, What: "agent-check connection"}
	for {
		conn, err := acceptor.Accept(ctx)
		if conn == nil {
			return err
		}
		s.serve(ctx, conn, &wg)
	}
}

// serve writes the reply at once, then lets the peer close first so that
// any agent-send text it wrote is read, not answered with a reset.
func (s *AgentServer) serve(ctx context.Context, conn net.Conn, wg *sync.WaitGroup) {
	peer := peerAddr(conn.RemoteAddr())
	if !s.allowed(peer) {
		s.denied.Debug().Str("peer", peer.String()).Msg("agent-check peer not in agent_check.allow; closed without reply")
		conn.Close()
		return
	}
	deadline := time.Now().Add(s.timeout)
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write(s.source.AgentReply(peer)); err != nil {
		s.log.Debug().Err(err).Str("peer", peer.String()).Msg("writing agent-check reply")
		conn.Close()
		return
	}
	select {
	case s.linger <- struct{}{}:
	default:
		conn.Close()
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func() { <-s.linger }()
		defer conn.Close()
		defer context.AfterFunc(ctx, func() { conn.Close() })()
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(conn, 4096))
	}()
}

func (s *AgentServer) allowed(peer netip.Addr) bool {
	allow := *s.allow.Load()
	if len(allow) == 0 {
		return true
	}
	for _, p := range allow {
		if p.Contains(peer) {
			return true
		}
	}
	return false
}

// peerAddr is the peer's IP with any IPv4-in-IPv6 mapping removed, so that
// allowlists and peer tracking see one address per host.
func peerAddr(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
