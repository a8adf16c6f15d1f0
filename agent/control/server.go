package agent

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
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// Control commands.
const (
	CommandStatus = "status"
	CommandReady  = "ready"
	CommandDrain  = "drain"
	CommandMaint  = "maint"
)

// Request is one control-socket request: a single JSON line.
type Request struct {
	Command string `json:"command"`
	// ShedRate, with drain, closes the remaining connections at this many
	// per second until Min remain or Timeout passes.
	ShedRate float64       `json:"shed_rate,omitempty"`
	Min      int           `json:"min,omitempty"`
	Timeout  time.Duration `json:"timeout_ns,omitempty"`
}

// Response answers a Request.
type Response struct {
	OK     bool    `json:"ok"`
	Error  string  `json:"error,omitempty"`
	Status *Status `json:"status,omitempty"`
}

const (
	maxRequestBytes   = 64 * 1024
	controlTimeout    = 10 * time.Second
	maxControlClients = 16
)

// ErrAgentUnreachable means no agent answers on the control socket.
var ErrAgentUnreachable = errors.New("agent not reachable")

// ErrAlreadyRunning means another agent holds the control socket.
var ErrAlreadyRunning = errors.New("another hafeed agent is running")

// controlHandler answers control requests.
type controlHandler interface {
	handle(ctx context.Context, req Request) Response
}

// controlServer serves the control socket. It holds an flock on a lock file
// beside the socket for its lifetime, so a second agent refuses to start
// and a stale socket left by a dead agent is safely replaced.
type controlServer struct {
	path    string
	ln      net.Listener
	lock    *os.File
	handler controlHandler
	log     zerolog.Logger
}

func listenControl(path string, handler controlHandler, log zerolog.Logger) (*controlServer, error) {
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
	return &controlServer{path: path, ln: ln, lock: lock, handler: handler,
		log: log.With().Str("component", "control").Logger()}, nil
}

// close releases the socket and the lock of a server that will not Run.
func (s *controlServer) close() {
	s.ln.Close()
	s.lock.Close()
}

// Run serves until ctx is done, then waits for open requests.
func (s *controlServer) Run(ctx context.Context) error {
	defer s.close()
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

func (s *controlServer) serve(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(controlTimeout))
	resp := s.respond(ctx, conn)
	if err := json.NewEncoder(conn).Encode(resp); err != nil {
		s.log.Debug().Err(err).Msg("writing control reply")
	}
}

func (s *controlServer) respond(ctx context.Context, conn net.Conn) Response {
	line, err := bufio.NewReader(io.LimitReader(conn, maxRequestBytes)).ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return Response{Error: fmt.Sprintf("reading request: %v (send one JSON line such as {\"command\":\"status\"})", err)}
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return Response{Error: fmt.Sprintf("malformed request: %v (send one JSON line such as {\"command\":\"status\"})", err)}
	}
	return s.handler.handle(ctx, req)
}

// Call sends one request to the agent on the control socket at path.
func Call(ctx context.Context, path string, req Request) (*Response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w on control socket %s: start it with `hafeed run` (or `systemctl start hafeed`), or point --control-socket / HAFEED_CONTROL_SOCKET at the socket it uses", ErrAgentUnreachable, path)
		}
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("control socket %s: permission denied: run as root or as a member of the socket's group", path)
		}
		return nil, fmt.Errorf("connecting to control socket %s: %w", path, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("sending to control socket %s: %w", path, err)
	}
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return nil, fmt.Errorf("reading reply from control socket %s: %w", path, err)
	}
	if !resp.OK {
		return &resp, fmt.Errorf("agent: %s", resp.Error)
	}
	return &resp, nil
}
