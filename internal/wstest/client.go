package wstest

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// headerSize is the part of a message that carries the client id and the
// sequence number; the rest is filler derived from both.
const headerSize = 16

// client is one member of a population. Its run goroutine dials and sends;
// while connected, one more goroutine reads the echoes.
type client struct {
	pop      *Population
	interval time.Duration
	local    netip.Addr
	leave    chan struct{}

	// downSince is when the client lost its connection (positive) or, if it
	// has not connected since arriving, when it arrived (negative), in
	// Population.now units; 0 while connected and before and after running.
	downSince atomic.Int64

	// mu guards the message window shared by the sender and the reader.
	mu sync.Mutex
	id uint64
	// sent is the last sequence number sent, acked the last one echoed;
	// the messages owed are acked+1 through sent.
	sent, acked uint64
	// progressAt is when the oldest owed message started waiting for its
	// echo, in Population.now units.
	progressAt int64
}

// sessionEnd says why a connection ended.
type sessionEnd int

const (
	// endLost: the server, the network or a timeout ended it.
	endLost sessionEnd = iota
	// endLeft: the client left by churn.
	endLeft
	// endStopped: the population stopped.
	endStopped
)

func (c *client) run(ctx context.Context) {
	defer c.downSince.Store(0)
	if ramp := c.pop.opts.RampUp; ramp > 0 {
		timer := time.NewTimer(rand.N(ramp))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
	c.arrive()
	failures := 0
	for {
		conn, err := c.dial(ctx)
		if ctx.Err() != nil {
			if conn != nil {
				_ = conn.CloseNow()
			}
			return
		}
		if err != nil {
			c.pop.dialFailures.Add(1)
			failures++
		} else {
			healthy, end := c.session(ctx, conn)
			switch end {
			case endStopped:
				return
			case endLeft:
				c.pop.departures.Add(1)
				c.arrive()
				failures = 0
				continue
			}
			c.downSince.Store(c.pop.now())
			if healthy {
				failures = 0
			} else {
				failures++
			}
		}

		timer := time.NewTimer(backoffDelay(failures, c.pop.opts.BackoffMin, c.pop.opts.BackoffMax))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-c.leave:
			timer.Stop()
			c.pop.departures.Add(1)
			c.arrive()
			failures = 0
		case <-timer.C:
		}
	}
}

// arrive makes the client a new one: a fresh id, nothing owed.
func (c *client) arrive() {
	select {
	case <-c.leave:
	default:
	}
	c.mu.Lock()
	c.id = c.pop.nextID.Add(1)
	c.sent, c.acked = 0, 0
	c.mu.Unlock()
	c.downSince.Store(-c.pop.now())
}

func (c *client) dial(ctx context.Context) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.pop.opts.DialTimeout)
	defer cancel()
	if c.local.IsValid() {
		ctx = context.WithValue(ctx, localAddrKey{}, c.local)
	}
	conn, _, err := websocket.Dial(ctx, c.pop.target, c.pop.dialer)
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(int64(max(c.pop.opts.PayloadSize, 32<<10)))
	return conn, nil
}

// session runs one connection until it ends: it resends what is owed, then
// sends on the client's interval while a second goroutine checks echoes.
// healthy reports whether the connection carried at least one echo.
func (c *client) session(ctx context.Context, conn *websocket.Conn) (healthy bool, end sessionEnd) {
	p := c.pop
	p.connected.Add(1)
	defer p.connected.Add(-1)
	if since := c.downSince.Swap(0); since > 0 {
		p.recordReconnect(p.now() - since)
	}

	var echoed atomic.Bool
	readDone := make(chan error, 1)
	go func() { readDone <- c.readEchoes(conn, &echoed) }()
	// lost drops the connection and counts why the reader stopped.
	lost := func(readErr error) (bool, sessionEnd) {
		_ = conn.CloseNow()
		if readErr == nil {
			readErr = <-readDone
		}
		if websocket.CloseStatus(readErr) == websocket.StatusServiceRestart {
			p.serviceRestarts.Add(1)
		}
		return echoed.Load(), endLost
	}

	c.mu.Lock()
	id, first, last := c.id, c.acked+1, c.sent
	c.progressAt = p.now()
	c.mu.Unlock()
	buf := make([]byte, p.opts.PayloadSize)
	for seq := first; seq <= last; seq++ {
		if err := c.send(conn, buf, id, seq); err != nil {
			return lost(nil)
		}
		p.resent.Add(1)
	}

	timer := time.NewTimer(rand.N(c.interval) + 1)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = conn.Close(websocket.StatusNormalClosure, "client stopping")
			<-readDone
			return echoed.Load(), endStopped
		case <-c.leave:
			_ = conn.Close(websocket.StatusNormalClosure, "client leaving")
			<-readDone
			return echoed.Load(), endLeft
		case err := <-readDone:
			return lost(err)
		case <-timer.C:
			timer.Reset(c.interval)
			seq, ok, stalled := c.nextSeq()
			if stalled {
				p.echoTimeouts.Add(1)
				return lost(nil)
			}
			if !ok {
				continue
			}
			if err := c.send(conn, buf, id, seq); err != nil {
				return lost(nil)
			}
		}
	}
}

// nextSeq takes the next sequence number, unless MaxInFlight are owed or
// the oldest owed echo is overdue, in which case stalled is true.
func (c *client) nextSeq() (seq uint64, ok, stalled bool) {
	now := c.pop.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	owed := c.sent - c.acked
	if owed > 0 && time.Duration(now-c.progressAt) > c.pop.opts.EchoTimeout {
		return 0, false, true
	}
	if owed >= uint64(c.pop.opts.MaxInFlight) {
		return 0, false, false
	}
	if owed == 0 {
		c.progressAt = now
	}
	c.sent++
	return c.sent, true, false
}

func (c *client) send(conn *websocket.Conn, buf []byte, id, seq uint64) error {
	encodeMessage(buf, id, seq)
	ctx, cancel := context.WithTimeout(context.Background(), c.pop.opts.WriteTimeout)
	defer cancel()
	return conn.Write(ctx, websocket.MessageBinary, buf)
}

// readEchoes checks echoes until the connection ends, and returns why.
func (c *client) readEchoes(conn *websocket.Conn, echoed *atomic.Bool) error {
	for {
		// Not ctx: cancelling a read drops the connection without a close
		// handshake. The session closes the connection to stop this loop.
		_, msg, err := conn.Read(context.Background())
		if err != nil {
			return err
		}
		echoed.Store(true)
		c.checkEcho(msg)
	}
}

// checkEcho counts an echo as in order, skipping lost messages, or
// mismatched.
func (c *client) checkEcho(msg []byte) {
	id, seq, ok := decodeMessage(msg, c.pop.opts.PayloadSize)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok || id != c.id || seq <= c.acked || seq > c.sent {
		c.pop.mismatched.Add(1)
		return
	}
	if skipped := seq - c.acked - 1; skipped > 0 {
		c.pop.lost.Add(int64(skipped))
	}
	c.acked = seq
	c.progressAt = c.pop.now()
	c.pop.messages.Add(1)
}

// encodeMessage fills buf with message seq of client id.
func encodeMessage(buf []byte, id, seq uint64) {
	binary.BigEndian.PutUint64(buf[0:8], id)
	binary.BigEndian.PutUint64(buf[8:16], seq)
	for i := headerSize; i < len(buf); i++ {
		buf[i] = byte(id + seq + uint64(i))
	}
}

// decodeMessage returns the client id and sequence number of a message of
// the given size, and whether it is intact.
func decodeMessage(msg []byte, size int) (id, seq uint64, ok bool) {
	if len(msg) != size || size < headerSize {
		return 0, 0, false
	}
	id = binary.BigEndian.Uint64(msg[0:8])
	seq = binary.BigEndian.Uint64(msg[8:16])
	for i := headerSize; i < len(msg); i++ {
		if msg[i] != byte(id+seq+uint64(i)) {
			return 0, 0, false
		}
	}
	return id, seq, true
}
