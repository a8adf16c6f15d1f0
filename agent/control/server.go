package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

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
	readers *readers
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
		log: log.With().Str("component", "control").Logger(), readers: &readers{}}, nil
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
// cannot hold up the agent's exit. A request takes one of the
// maxControlClients slots only once it has been read, so clients that
// connect and send nothing cannot keep requests out; and one that finds
// every slot taken is answered "busy" at once instead of waiting in a
// queue.
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
		if sentRequest(conn) {
			_ = conn.SetReadDeadline(time.Now().Add(requestReadTimeout))
			wg.Go(func() { s.serve(ctx, conn, nil, slots) })
			continue
		}
		r, ok := s.readers.add(conn)
		if !ok {
			s.busy(conn)
			continue
		}
		wg.Go(func() { s.serve(ctx, conn, r, slots) })
	}
}

// sentRequest says whether conn's request line is already waiting to be
// read, as it is for a client that connected while the agent was busy
// accepting others: such a request needs no reader.
func sentRequest(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var buf [4096]byte
	found := false
	_ = rc.Read(func(fd uintptr) bool {
		n, _, err := unix.Recvfrom(int(fd), buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		found = err == nil && bytes.IndexByte(buf[:n], '\n') >= 0
		return true // never wait
	})
	return found
}

func busyResponse(why string) Response {
	return Response{Busy: true, Error: "busy: " + why + "; nothing was changed, try again"}
}

// busy tells a client that every reader is taken, without reading its
// request, and without holding up the accept loop.
func (s *Server) busy(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	if err := json.NewEncoder(conn).Encode(busyResponse(fmt.Sprintf("%d connections are waiting to send their request", maxPendingReads))); err != nil {
		s.log.Debug().Err(err).Msg("writing control busy reply")
	}
}

// reply writes resp, giving up after a second.
func (s *Server) reply(conn net.Conn, resp Response) {
	_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
	if err := json.NewEncoder(conn).Encode(resp); err != nil {
		s.log.Debug().Err(err).Msg("writing control reply")
	}
}

// serve reads conn's request, whose read deadline is set, and answers
// it; r is conn's place among the readers, nil when its request had come
// before it was accepted.
func (s *Server) serve(ctx context.Context, conn net.Conn, r *reader, slots chan struct{}) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	req, resp, ok := s.read(conn)
	received := time.Now()
	evicted := r != nil && s.readers.remove(r)
	switch {
	case !ok && evicted:
		resp = busyResponse("this connection sent no request while newer ones waited")
	case ok:
		select {
		case slots <- struct{}{}:
			resp = s.handle(ctx, conn, req, received)
			<-slots
		default:
			resp = busyResponse(fmt.Sprintf("%d control requests are being answered", maxControlClients))
		}
	}
	s.reply(conn, resp)
}

// readers are the connections whose request line is being read, oldest
// first. They are bounded, and when they are all taken an idle one makes
// way for a new one: a client sends its request as it connects, so one
// that has sent nothing after idleGrace is idle.
type readers struct {
	mu      sync.Mutex // guards waiting and every reader's evicted
	waiting []*reader
}

// reader is one connection in readers.
type reader struct {
	conn    net.Conn
	since   time.Time
	evicted bool
}

// add admits conn to be read, with a deadline for its request; false
// when every reader is taken by a connection younger than idleGrace.
func (rs *readers) add(conn net.Conn) (*reader, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	now := time.Now()
	if len(rs.waiting) >= maxPendingReads {
		oldest := rs.waiting[0]
		if now.Sub(oldest.since) < idleGrace {
			return nil, false
		}
		oldest.evicted = true
		_ = oldest.conn.SetReadDeadline(now)
		rs.waiting = rs.waiting[1:]
	}
	// Set here, before conn is listed, so that an eviction's deadline is
	// never overwritten.
	_ = conn.SetReadDeadline(now.Add(requestReadTimeout))
	r := &reader{conn: conn, since: now}
	rs.waiting = append(rs.waiting, r)
	return r, true
}

// remove ends r's read and says whether it was evicted.
func (rs *readers) remove(r *reader) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if i := slices.Index(rs.waiting, r); i >= 0 {
		rs.waiting = slices.Delete(rs.waiting, i, i+1)
	}
	return r.evicted
}

func (rs *readers) count() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return len(rs.waiting)
}

func (s *Server) read(conn net.Conn) (Request, Response, bool) {
	// One byte past the limit tells a request that is too large from one
	// that is exactly as large as allowed.
	line, err := bufio.NewReader(io.LimitReader(conn, MaxRequestBytes+1)).ReadBytes('\n')
	switch {
	case len(line) > MaxRequestBytes:
		return Request{}, Response{Error: fmt.Sprintf("request larger than %d bytes: nothing was done (send one JSON line such as {\"command\":\"status\"})", MaxRequestBytes)}, false
	case errors.Is(err, os.ErrDeadlineExceeded):
		return Request{}, Response{Error: fmt.Sprintf("no request within %v: send one JSON line such as {\"command\":\"status\"} as soon as you connect", requestReadTimeout)}, false
	case err != nil && !(errors.Is(err, io.EOF) && len(line) > 0):
		// The connection's own error, without its addresses: the local one
		// is the private directory the socket was bound in, long gone.
		var op *net.OpError
		if errors.As(err, &op) {
			err = op.Err
		}
		return Request{}, Response{Error: fmt.Sprintf("reading request: %v (send one JSON line such as {\"command\":\"status\"})", err)}, false
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return Request{}, Response{Error: fmt.Sprintf("malformed request: %v (send one JSON line such as {\"command\":\"status\"})", err)}, false
	}
	return req, Response{}, true
}

// handle runs a request received at received under its deadline, unless
// the caller has already given up on it.
func (s *Server) handle(ctx context.Context, conn net.Conn, req Request, received time.Time) Response {
	var deadline time.Time
	switch {
	case req.Within != 0:
		deadline = received.Add(req.Within)
	case !req.Deadline.IsZero():
		deadline = req.Deadline // an older client's, on the wall clock
	default:
		deadline = received.Add(DefaultDeadline)
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
