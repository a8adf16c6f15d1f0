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

	"github.com/hafeed/hafeed/internal/lockfile"
	"github.com/hafeed/hafeed/internal/netaccept"
)

// Handler answers control requests; the agent implements it. ctx ends at
// the request's deadline, when the caller goes away or when the agent
// stops.
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

// socketMode is the control socket's final mode: the owner and its group
// may change the admin state, nobody else.
const socketMode = 0o660

// Listen opens the control socket at path, taking its lock; Run serves
// it, Close releases a server that will not Run.
func Listen(path string, handler Handler, log zerolog.Logger) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating control socket directory: %w", err)
	}
	lock, err := lockfile.Acquire(path + ".lock")
	if errors.Is(err, lockfile.ErrLocked) {
		return nil, fmt.Errorf("%w on control socket %s (stop it first, or give this one another --control-socket)", ErrAlreadyRunning, path)
	}
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// We hold the lock, so a socket file left here belongs to a dead agent.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		lock.Close()
		return nil, fmt.Errorf("removing stale control socket: %w", err)
	}
	ln, err := listenPrivate(path)
	if err != nil {
		lock.Close()
		return nil, err
	}
	return &Server{path: path, ln: ln, lock: lock, handler: handler,
		log: log.With().Str("component", "control").Logger()}, nil
}

// listenPrivate binds the socket in a directory only this user can enter,
// sets its final mode there and only then moves it into place, so that it
// is never reachable with a wider mode than socketMode, whatever the umask.
func listenPrivate(path string) (net.Listener, error) {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".hafeed-bind-")
	if err != nil {
		return nil, fmt.Errorf("creating a private directory to bind the control socket in: %w", err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("listening on control socket: %w", err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // the file moves: Close removes it by path
	if err := os.Chmod(tmp, socketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("setting control socket mode: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("moving control socket into place: %w", err)
	}
	return &unlinkListener{UnixListener: ul, path: path}, nil
}

// unlinkListener removes the socket file at path when it closes.
type unlinkListener struct {
	*net.UnixListener
	path string
	once sync.Once
}

func (l *unlinkListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() { os.Remove(l.path) })
	return err
}

// Close releases the socket and the lock of a server that will not Run.
func (s *Server) Close() {
	s.ln.Close()
	s.lock.Close()
}

// Run serves until ctx is done, then waits for the requests being
// answered; their connections are cut at once, so that an idle client
// cannot hold up the agent's exit. A request that finds every slot taken
// is answered "busy" at once instead of waiting in a queue.
func (s *Server) Run(ctx context.Context) error {
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, maxControlClients)
	acceptor := netaccept.Acceptor{Listener: s.ln, Log: s.log, What: "on the control socket"}
	for {
		conn, err := acceptor.Accept(ctx)
		if conn == nil {
			return err
		}
		select {
		case slots <- struct{}{}:
		default:
			s.busy(conn)
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			s.serve(ctx, conn)
		})
	}
}

// busy tells a client that every slot is taken, without reading its request.
func (s *Server) busy(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	resp := Response{Busy: true, Error: fmt.Sprintf("busy: %d control requests are being answered; nothing was changed, try again", maxControlClients)}
	if err := json.NewEncoder(conn).Encode(resp); err != nil {
		s.log.Debug().Err(err).Msg("writing control busy reply")
	}
}

func (s *Server) serve(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	_ = conn.SetReadDeadline(time.Now().Add(requestReadTimeout))
	req, resp, ok := s.read(conn)
	if ok {
		resp = s.handle(ctx, conn, req)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	if err := json.NewEncoder(conn).Encode(resp); err != nil {
		s.log.Debug().Err(err).Msg("writing control reply")
	}
}

func (s *Server) read(conn net.Conn) (Request, Response, bool) {
	line, err := bufio.NewReader(io.LimitReader(conn, MaxRequestBytes)).ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return Request{}, Response{Error: fmt.Sprintf("reading request: %v (send one JSON line such as {\"command\":\"status\"})", err)}, false
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return Request{}, Response{Error: fmt.Sprintf("malformed request: %v (send one JSON line such as {\"command\":\"status\"})", err)}, false
	}
	return req, Response{}, true
}

// handle runs a request under its deadline, unless the caller has
// already given up on it.
func (s *Server) handle(ctx context.Context, conn net.Conn, req Request) Response {
	deadline := req.Deadline
	if deadline.IsZero() {
		deadline = time.Now().Add(DefaultDeadline)
	}
	if !time.Now().Before(deadline) {
		return Response{Error: "the request's deadline passed before the agent could start it; nothing was changed"}
	}
	if gone(conn) {
		return Response{Error: "the caller went away before the agent started the request; nothing was changed"}
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return s.handler.Handle(ctx, req)
}

// gone says whether the client has closed its connection. It writes a
// space, which the JSON reply may start with: a closed Unix socket refuses
// it, one whose client only shut down its sending side (socat) takes it.
func gone(conn net.Conn) bool {
	_ = conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, err := conn.Write([]byte(" "))
	return err != nil
}
