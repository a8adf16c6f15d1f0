package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// Handler answers control requests; the agent implements it.
type Handler interface {
	Handle(ctx context.Context, req Request) Response
}

// Server serves the control socket. It holds an flock on a lock file
// beside the socket for its lifetime, so a second agent refuses to start
// and a stale socket left by a dead agent is safely replaced.
type Server struct {
	path    string
	ln      net.Listener
	lock    *os.File
	handler Handler
	log     zerolog.Logger
}

// Listen opens the control socket at path, taking its lock; Run serves
// it, Close releases a server that will not Run.
func Listen(path string, handler Handler, log zerolog.Logger) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating control socket directory: %w", err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening control socket lock: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w on control socket %s (stop it first, or give this one another --control-socket)", ErrAlreadyRunning, path)
		}
		return nil, fmt.Errorf("locking control socket: %w", err)
	}
	// We hold the lock, so a socket file left here belongs to a dead agent.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		lock.Close()
		return nil, fmt.Errorf("removing stale control socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("listening on control socket: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		lock.Close()
		return nil, fmt.Errorf("setting control socket mode: %w", err)
	}
	return &Server{path: path, ln: ln, lock: lock, handler: handler,
		log: log.With().Str("component", "control").Logger()}, nil
}

// Close releases the socket and the lock of a server that will not Run.
func (s *Server) Close() {
	s.ln.Close()
	s.lock.Close()
}

// Run serves until ctx is done, then waits for open requests.
func (s *Server) Run(ctx context.Context) error {
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, maxControlClients)
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accepting on control socket: %w", err)
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			conn.Close()
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			s.serve(ctx, conn)
		}()
	}
}

func (s *Server) serve(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(controlTimeout))
	resp := s.respond(ctx, conn)
	if err := json.NewEncoder(conn).Encode(resp); err != nil {
		s.log.Debug().Err(err).Msg("writing control reply")
	}
}

func (s *Server) respond(ctx context.Context, conn net.Conn) Response {
	line, err := bufio.NewReader(io.LimitReader(conn, MaxRequestBytes)).ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return Response{Error: fmt.Sprintf("reading request: %v (send one JSON line such as {\"command\":\"status\"})", err)}
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return Response{Error: fmt.Sprintf("malformed request: %v (send one JSON line such as {\"command\":\"status\"})", err)}
	}
	return s.handler.Handle(ctx, req)
}
