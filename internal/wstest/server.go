package wstest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/hafeed/hafeed/shed"
	"github.com/hafeed/hafeed/shed/shedws"
)

// ShedPath is where a Server serves hafeed's shed hook.
const ShedPath = "/hafeed/shed"

// HealthPath answers 200 for HAProxy health checks.
const HealthPath = "/healthz"

// ServerOptions tunes a Server.
type ServerOptions struct {
	// Work is how many times each message is hashed with SHA-256 before it is
	// echoed, to make messages cost CPU.
	Work int
	// ReadLimit bounds the size of a message; the default is 32 KiB.
	ReadLimit int64
	// StopTimeout bounds how long Run waits for connections to close when it
	// stops; the default is 5s.
	StopTimeout time.Duration
}

// Server is a WebSocket echo server that hafeed can shed connections from.
// Any path but ShedPath and HealthPath upgrades to an echo WebSocket.
type Server struct {
	ln   net.Listener
	opts ServerOptions
	live shed.Registry

	// mu orders starting a handler and registering a connection against
	// stopping, so none starts or registers after Run has shed them all.
	mu       sync.Mutex
	stopping bool
	handlers sync.WaitGroup
	conns    atomic.Int64
	started  atomic.Bool
}

// NewServer listens on addr, so Addr is known before Run serves.
func NewServer(addr string, opts ServerOptions) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for WebSockets on %s: %w", addr, err)
	}
	return NewServerListener(ln, opts), nil
}

// NewServerListener serves on a listener the caller opened, such as one of
// several processes' SO_REUSEPORT sockets on one port; Run closes it.
func NewServerListener(ln net.Listener, opts ServerOptions) *Server {
	if opts.ReadLimit <= 0 {
		opts.ReadLimit = 32 << 10
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 5 * time.Second
	}
	return &Server{ln: ln, opts: opts}
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Conns is the number of open WebSocket connections, shed or not.
func (s *Server) Conns() int { return int(s.conns.Load()) }

// Registry holds the connections the shed hook may close.
func (s *Server) Registry() *shed.Registry { return &s.live }

// Run serves until ctx ends, then closes the listener, closes every
// connection with status 1012 as a restarting server would, and returns nil
// once their handlers have returned. Call it once.
func (s *Server) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("wstest: Server.Run called twice")
	}
	mux := http.NewServeMux()
	mux.Handle(ShedPath, shed.Handler(&s.live))
	mux.HandleFunc(HealthPath, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("/", s.serveEcho)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(s.ln) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
		err = fmt.Errorf("serving WebSockets on %s: %w", s.ln.Addr(), err)
	}

	stopCtx, cancel := context.WithTimeout(context.Background(), s.opts.StopTimeout)
	defer cancel()
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	// Shutdown closes the listener and idle HTTP connections, but not the
	// hijacked WebSockets, which are shed.
	shutdownDone := make(chan error, 1)
	go func() { shutdownDone <- srv.Shutdown(stopCtx) }()
	s.live.Shed(stopCtx, s.live.Len())
	if <-shutdownDone != nil {
		_ = srv.Close()
	}
	if err == nil {
		<-served
	}
	s.handlers.Wait()
	return err
}

func (s *Server) serveEcho(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		http.Error(w, "server stopping", http.StatusServiceUnavailable)
		return
	}
	s.handlers.Add(1)
	s.mu.Unlock()
	defer s.handlers.Done()
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(s.opts.ReadLimit)
	s.conns.Add(1)
	defer s.conns.Add(-1)

	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		_ = c.Close(shed.CloseCode, "server stopping")
		return
	}
	remove := s.live.Add(shedws.Conn(c))
	s.mu.Unlock()
	defer remove()

	// The connection's own timeouts and the shed hook end it, not ctx:
	// cancelling a read would drop the connection without a close frame.
	ctx := context.Background()
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		burn(msg, s.opts.Work)
		writeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = c.Write(writeCtx, typ, msg)
		cancel()
		if err != nil {
			return
		}
	}
}

// burnSink keeps the hashing in burn from being optimised away.
var burnSink atomic.Uint32

// burn hashes msg work times.
func burn(msg []byte, work int) {
	var sum [sha256.Size]byte
	for range work {
		sum = sha256.Sum256(msg)
	}
	if work > 0 {
		burnSink.Store(uint32(sum[0]))
	}
}
