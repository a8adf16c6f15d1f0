package wstest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sys/unix"
)

// PopulationOptions tunes a Population. The zero value keeps one client
// sending a message a second.
type PopulationOptions struct {
	// Clients is how many clients the population keeps; the default is 1.
	Clients int
	// Interval is how often a client sends a message; the default is 1s.
	Interval time.Duration
	// HotFraction is the fraction of clients, from 0 to 1, that send every
	// HotInterval instead of every Interval.
	HotFraction float64
	// HotInterval is how often a hot client sends; the default is Interval/10.
	HotInterval time.Duration
	// PayloadSize is the size of a message in bytes: at least 16, the size of
	// the client id and sequence number it carries, and 32 by default.
	PayloadSize int
	// MaxInFlight bounds the messages a client has sent and not yet seen
	// echoed; a client skips its sends while at the bound. The default is 16.
	MaxInFlight int
	// LocalAddrs, when not empty, are the source addresses clients connect
	// from, client i using LocalAddrs[i%len(LocalAddrs)]; spreading clients
	// over 127.0.0.x keeps them clear of the ephemeral port limit of one
	// source address.
	LocalAddrs []netip.Addr
	// RampUp spreads the clients' first connection attempts evenly at random
	// over this long, so they do not all dial at once.
	RampUp time.Duration
	// Churn is the fraction of clients, per second, that leave and are
	// replaced at once by new clients. A leaving client closes with status
	// 1000; its replacement starts over with a new id and no message owed.
	Churn float64
	// EchoTimeout is how long a client waits for an owed echo before it
	// drops the connection as dead and reconnects; the default is 10s.
	EchoTimeout time.Duration
	// DialTimeout bounds one connection attempt, handshake included; the
	// default is 5s.
	DialTimeout time.Duration
	// WriteTimeout bounds sending one message; the default is 5s.
	WriteTimeout time.Duration
	// TCPKeepAlive is the clients' TCP keep-alive period, as
	// net.Dialer.KeepAlive: 0 keeps Go's default (on, 15s), negative turns
	// it off, as a farm of idle sockets may want (100,000 sockets probing
	// every 15 s are 6,700 probes a second).
	TCPKeepAlive time.Duration
	// BackoffMin and BackoffMax shape the reconnect delay: after k failed
	// attempts in a row a client waits a random time from 0 to
	// min(BackoffMax, BackoffMin·2^k). The defaults are 50ms and 2s.
	BackoffMin, BackoffMax time.Duration
}

// Stats is a snapshot of a population's clients and counters since Run
// started.
type Stats struct {
	// Clients is the size of the population.
	Clients int
	// Connected is the number of clients connected now.
	Connected int
	// Reconnects counts connections made by clients that had lost one; a
	// client's first connection, and a churned-in client's, do not count.
	Reconnects int
	// Messages counts echoes received in order.
	Messages int
	// Lost counts messages whose echo never came back: the echo of a later
	// message arrived first. Clients resend what is unacknowledged when they
	// reconnect, so a correct server and proxy lose none.
	Lost int
	// Mismatched counts echoes that match no message in flight: corrupted,
	// duplicated or from another client. A correct server and proxy have none.
	Mismatched int
	// Resent counts messages sent again on a new connection because their
	// echo had not come back on the old one.
	Resent int
	// ServiceRestarts counts connections the server closed with status 1012,
	// as a shed does.
	ServiceRestarts int
	// EchoTimeouts counts connections dropped because an echo was overdue.
	EchoTimeouts int
	// DialFailures counts connection attempts that failed.
	DialFailures int
	// Departures counts clients that left by churn.
	Departures int
	// LongestDisconnect is the longest time a client has spent between losing
	// a connection and having a new one, the ongoing gaps included.
	LongestDisconnect time.Duration

	// disconnected holds, in ascending order, how long each disconnected
	// client has been so: since it lost its connection or, if it never had
	// one, since its first attempt.
	disconnected []time.Duration
}

// ClientsDisconnectedOver counts the clients that were, when the snapshot was
// taken, disconnected for longer than d; a client that never connected counts
// from its first attempt.
func (s Stats) ClientsDisconnectedOver(d time.Duration) int {
	lo, hi := 0, len(s.disconnected)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if s.disconnected[mid] <= d {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return len(s.disconnected) - lo
}

// Population keeps a number of WebSocket clients connected to one URL, each
// sending numbered messages, checking their echoes and reconnecting with
// backoff when its connection ends.
type Population struct {
	target  string
	opts    PopulationOptions
	dialer  *websocket.DialOptions
	http    *http.Transport
	clients []*client
	epoch   time.Time
	started atomic.Bool
	nextID  atomic.Uint64

	connected, reconnects, messages, lost, mismatched atomic.Int64
	resent, serviceRestarts, echoTimeouts             atomic.Int64
	dialFailures, departures                          atomic.Int64
	longestDisconnect                                 atomic.Int64
}

// NewPopulation prepares clients of the WebSocket server at target, a ws://
// or wss:// URL such as HAProxy's frontend; Run connects them.
func NewPopulation(target string, opts PopulationOptions) (*Population, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("parsing target %q: %w", target, err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, fmt.Errorf("target %q: scheme must be ws or wss", target)
	}
	if opts.HotFraction < 0 || opts.HotFraction > 1 {
		return nil, fmt.Errorf("hot fraction %v must be from 0 to 1", opts.HotFraction)
	}
	if opts.Churn < 0 {
		return nil, fmt.Errorf("churn %v must not be negative", opts.Churn)
	}
	if opts.PayloadSize != 0 && opts.PayloadSize < headerSize {
		return nil, fmt.Errorf("payload size %d must be at least %d", opts.PayloadSize, headerSize)
	}
	opts = withDefaults(opts)

	transport := &http.Transport{
		DialContext:       dialFrom(opts.TCPKeepAlive),
		DisableKeepAlives: true,
		// The transport's buffers stay with each WebSocket after the
		// handshake; small ones keep a client's memory small.
		ReadBufferSize:         1 << 10,
		WriteBufferSize:        1 << 10,
		MaxResponseHeaderBytes: 16 << 10,
		TLSHandshakeTimeout:    opts.DialTimeout,
	}
	p := &Population{
		target: target,
		opts:   opts,
		dialer: &websocket.DialOptions{HTTPClient: &http.Client{Transport: transport}},
		http:   transport,
		epoch:  time.Now(),
	}
	hot := int(opts.HotFraction*float64(opts.Clients) + 0.5)
	p.clients = make([]*client, opts.Clients)
	for i := range p.clients {
		c := &client{pop: p, interval: opts.Interval, leave: make(chan struct{}, 1)}
		if i < hot {
			c.interval = opts.HotInterval
		}
		if len(opts.LocalAddrs) > 0 {
			c.local = opts.LocalAddrs[i%len(opts.LocalAddrs)]
		}
		p.clients[i] = c
	}
	return p, nil
}

func withDefaults(opts PopulationOptions) PopulationOptions {
	if opts.Clients <= 0 {
		opts.Clients = 1
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.HotInterval <= 0 {
		opts.HotInterval = opts.Interval / 10
	}
	if opts.PayloadSize == 0 {
		opts.PayloadSize = 32
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 16
	}
	if opts.EchoTimeout <= 0 {
		opts.EchoTimeout = 10 * time.Second
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 5 * time.Second
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = 50 * time.Millisecond
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 2 * time.Second
	}
	return opts
}

// Run keeps the clients connected until ctx ends, then closes their
// connections with status 1000 and returns nil once every client has
// stopped. Call it once.
func (p *Population) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("wstest: Population.Run called twice")
	}
	var wg sync.WaitGroup
	for _, c := range p.clients {
		wg.Go(func() { c.run(ctx) })
	}
	if p.opts.Churn > 0 {
		wg.Go(func() { p.churn(ctx) })
	}
	wg.Wait()
	p.http.CloseIdleConnections()
	return nil
}

// Stats takes a snapshot of the population; it is safe to call at any time.
func (p *Population) Stats() Stats {
	s := Stats{
		Clients:           len(p.clients),
		Connected:         int(p.connected.Load()),
		Reconnects:        int(p.reconnects.Load()),
		Messages:          int(p.messages.Load()),
		Lost:              int(p.lost.Load()),
		Mismatched:        int(p.mismatched.Load()),
		Resent:            int(p.resent.Load()),
		ServiceRestarts:   int(p.serviceRestarts.Load()),
		EchoTimeouts:      int(p.echoTimeouts.Load()),
		DialFailures:      int(p.dialFailures.Load()),
		Departures:        int(p.departures.Load()),
		LongestDisconnect: time.Duration(p.longestDisconnect.Load()),
	}
	now := p.now()
	for _, c := range p.clients {
		since := c.downSince.Load()
		if since == 0 {
			continue
		}
		afterLoss := since > 0
		if !afterLoss {
			since = -since
		}
		gap := time.Duration(now - since)
		s.disconnected = append(s.disconnected, gap)
		if afterLoss {
			s.LongestDisconnect = max(s.LongestDisconnect, gap)
		}
	}
	slices.Sort(s.disconnected)
	return s
}

// Await polls Stats until cond holds or ctx ends, and returns the last
// snapshot with ctx's error in the second case.
func (p *Population) Await(ctx context.Context, cond func(Stats) bool) (Stats, error) {
	ticker := time.NewTicker(10 * time.Millisecond)
	defer ticker.Stop()
	for {
		s := p.Stats()
		if cond(s) {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return p.Stats(), fmt.Errorf("waiting for clients: %w", ctx.Err())
		case <-ticker.C:
		}
	}
}

// now is the time since the population was made, in nanoseconds, always
// above zero so that zero can mean "not disconnected".
func (p *Population) now() int64 {
	return int64(time.Since(p.epoch)) + 1
}

// recordReconnect counts a reconnection after a gap of gap nanoseconds.
func (p *Population) recordReconnect(gap int64) {
	p.reconnects.Add(1)
	for {
		longest := p.longestDisconnect.Load()
		if gap <= longest || p.longestDisconnect.CompareAndSwap(longest, gap) {
			return
		}
	}
}

// churn tells random clients to leave, Churn·Clients of them a second.
func (p *Population) churn(ctx context.Context) {
	const tick = 100 * time.Millisecond
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	owed := 0.0
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		owed += p.opts.Churn * float64(len(p.clients)) * tick.Seconds()
		for ; owed >= 1; owed-- {
			c := p.clients[rand.IntN(len(p.clients))]
			select {
			case c.leave <- struct{}{}:
			default:
			}
		}
	}
}

// localAddrKey carries a client's source address to dialFrom.
type localAddrKey struct{}

// dialFrom dials from the source address in ctx, if any, with the given
// keep-alive period.
func dialFrom(keepAlive time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{KeepAlive: keepAlive}
		if local, ok := ctx.Value(localAddrKey{}).(netip.Addr); ok && local.IsValid() {
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0))
			d.Control = bindAddressNoPort
		}
		return d.DialContext(ctx, network, addr)
	}
}

// bindAddressNoPort lets connect() pick the source port against the whole
// 4-tuple, instead of bind() reserving one of the address's ports for
// any destination. With 12,500 clients on one source address, bind's
// search of the address's ports took most of the machine in the kernel
// (bench/farm: 85 % system time, and tens of thousands of dial timeouts,
// at 2,000 connects a second; without the bind, none).
func bindAddressNoPort(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// backoffDelay is the wait before the next attempt after failures failed
// attempts in a row: random from 0 up to min(ceiling, base·2^failures),
// "full jitter", so clients dropped together do not return together.
func backoffDelay(failures int, base, ceiling time.Duration) time.Duration {
	limit := min(base, ceiling)
	for range failures {
		if limit > ceiling/2 {
			limit = ceiling
			break
		}
		limit *= 2
	}
	if limit <= 0 {
		return 0
	}
	return rand.N(limit)
}
