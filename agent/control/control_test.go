package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/hafeed/hafeed/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitLimit = 5 * time.Second

// echo answers every request with a status naming the command.
type echo struct{}

func (echo) Handle(_ context.Context, req Request) Response {
	if req.Command == "fail" {
		return Response{Error: "asked to fail"}
	}
	return Response{OK: true, Status: &Status{Admin: req.Command}}
}

func socketPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(testutil.ShortTempDir(t), "control.sock")
}

func TestCallRoundTrip(t *testing.T) {
	t.Parallel()
	path := socketPath(t)
	srv, err := Listen(path, echo{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, echo{}, zerolog.Nop()); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("second Listen on %s = %v, want ErrAlreadyRunning", path, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	callCtx, callCancel := context.WithTimeout(context.Background(), waitLimit)
	defer callCancel()
	resp, err := Call(callCtx, path, Request{Command: CommandDrain})
	if err != nil || !resp.OK || resp.Status.Admin != CommandDrain {
		t.Errorf("Call(drain) = %+v, %v; want OK with the echo", resp, err)
	}
	if _, err := Call(callCtx, path, Request{Command: "fail"}); err == nil || err.Error() != "agent: asked to fail" {
		t.Errorf("Call(fail) = %v, want the agent's error", err)
	}

	cancel()
	if err := testutil.Recv(t, done, waitLimit, "Run to return after cancel"); err != nil {
		t.Errorf("Run() = %v after cancel", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after Run: %v", err)
	}
	if _, err := Call(callCtx, path, Request{Command: CommandStatus}); !errors.Is(err, ErrAgentUnreachable) {
		t.Errorf("Call after the server stopped = %v, want ErrAgentUnreachable", err)
	}
	// Close released the lock: a new server may take the socket.
	again, err := Listen(path, echo{}, zerolog.Nop())
	if err != nil {
		t.Fatalf("Listen after the first server stopped = %v", err)
	}
	again.Close()
}

// gated blocks every request until open is closed, counting the ones it
// was handed.
type gated struct {
	open    chan struct{}
	started chan Request
}

func (g gated) Handle(ctx context.Context, req Request) Response {
	g.started <- req
	select {
	case <-g.open:
	case <-ctx.Done():
	}
	return Response{OK: true, Status: &Status{Admin: req.Command}}
}

func serve(t *testing.T, h Handler) (path string, stop func()) {
	t.Helper()
	path = socketPath(t)
	srv, err := Listen(path, h, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	return path, func() {
		cancel()
		testutil.Recv(t, done, waitLimit, "Run to return after cancel")
	}
}

// TestServerBusyAnswersAtOnce checks that a request finding every slot
// taken is told "busy" at once and never started, instead of waiting in a
// queue to be applied after its caller gave up (issue 11, item 1).
func TestServerBusyAnswersAtOnce(t *testing.T) {
	t.Parallel()
	g := gated{open: make(chan struct{}), started: make(chan Request, 2*maxControlClients)}
	path, stop := serve(t, g)
	defer stop()
	var holders sync.WaitGroup
	defer holders.Wait()
	defer close(g.open)
	for range maxControlClients {
		holders.Go(func() { Call(context.Background(), path, Request{Command: CommandStatus}) })
		testutil.Recv(t, g.started, waitLimit, "a request to start")
	}
	// The slots are held until the test ends: a server that made the
	// request wait for one would answer only at its deadline. One exchange,
	// since Call retries a busy answer until near its own deadline.
	start := time.Now()
	resp, err := send(path, Request{Command: CommandDrain, Within: waitLimit})
	if err != nil || resp == nil || !resp.Busy || resp.OK {
		t.Fatalf("drain with every slot taken = %+v, %v; want a busy answer", resp, err)
	}
	if took := time.Since(start); took > waitLimit/2 {
		t.Errorf("busy answer took %v: it waited for a slot instead of answering at once", took)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, err := Call(ctx, path, Request{Command: CommandDrain}); !errors.Is(err, ErrBusy) {
		t.Errorf("Call(drain) with every slot taken until its deadline = %v, want ErrBusy", err)
	}
	select {
	case req := <-g.started:
		t.Errorf("the handler started %q although its caller was told busy", req.Command)
	default:
	}
}

// TestServerSkipsRequestPastItsDeadline checks that a request whose
// deadline passed is answered with an error and never started.
func TestServerSkipsRequestPastItsDeadline(t *testing.T) {
	t.Parallel()
	g := gated{open: make(chan struct{}), started: make(chan Request, 1)}
	close(g.open)
	path, stop := serve(t, g)
	defer stop()
	resp, err := send(path, Request{Command: CommandDrain, Deadline: time.Now().Add(-time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.OK || !strings.Contains(resp.Error, "nothing was changed") {
		t.Errorf("reply to a request past its deadline = %+v, want an error saying nothing changed", resp)
	}
	if len(g.started) != 0 {
		t.Errorf("the handler started a request past its deadline")
	}
}

// TestServerHandlerGetsTheCallersDeadline checks that the handler's ctx
// ends before the caller stops waiting, leaving time for the reply.
func TestServerHandlerGetsTheCallersDeadline(t *testing.T) {
	t.Parallel()
	deadlines := make(chan time.Time, 1)
	path, stop := serve(t, handlerFunc(func(ctx context.Context, req Request) Response {
		dl, _ := ctx.Deadline()
		deadlines <- dl
		<-ctx.Done() // as a handler that waits on HAProxy until its deadline
		return Response{OK: true, Status: &Status{Admin: req.Command}}
	}))
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	callerDeadline, _ := ctx.Deadline()
	resp, err := Call(ctx, path, Request{Command: CommandDrain})
	if err != nil || !resp.OK {
		t.Fatalf("Call(drain) = %+v, %v; want the handler's answer at its deadline, before the caller's", resp, err)
	}
	// The handler's deadline is the caller's less the time kept for the
	// reply, counted from when the agent read the request: before the
	// caller's, whatever the load on the machine.
	if dl := testutil.Recv(t, deadlines, waitLimit, "the handler's deadline"); dl.IsZero() || !dl.Before(callerDeadline) {
		t.Errorf("the handler's deadline %v is not before the caller's %v", dl, callerDeadline)
	}
}

// handlerFunc adapts a function to Handler.
type handlerFunc func(context.Context, Request) Response

func (f handlerFunc) Handle(ctx context.Context, req Request) Response { return f(ctx, req) }

// TestServerStopsPromptlyWithIdleClients checks that clients that
// connect and send nothing do not hold up the agent's exit (issue 11,
// item 2: one idle client delayed SIGTERM by 9.7 s).
func TestServerStopsPromptlyWithIdleClients(t *testing.T) {
	t.Parallel()
	path := socketPath(t)
	srv, err := Listen(path, echo{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	for range 40 {
		conn, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
	}
	// They wait to be read, no longer in the slots requests take.
	testutil.Until(t, waitLimit, "the server to wait for every idle client's request", func() bool {
		return srv.readers.count() == 40
	})
	start := time.Now()
	cancel()
	testutil.Recv(t, done, waitLimit, "Run to return after cancel")
	if took := time.Since(start); took > time.Second {
		t.Errorf("Run took %v to return with 40 idle clients, want well under a second", took)
	}
}

// TestListenNeverWiderThanFinalMode checks that the control socket never
// appears with a wider mode than 0660, even under umask 000 (issue 11,
// item 3: it was created under the umask and chmod'ed afterwards). Not
// parallel: the umask is the process's.
func TestListenNeverWiderThanFinalMode(t *testing.T) {
	old := unix.Umask(0)
	defer unix.Umask(old)
	path := socketPath(t)
	stop := make(chan struct{})
	seen := make(chan os.FileMode, 1)
	go func() {
		defer close(seen)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if fi, err := os.Lstat(path); err == nil && fi.Mode().Perm()&0o007 != 0 {
				seen <- fi.Mode()
				return
			}
		}
	}()
	for range 200 {
		srv, err := Listen(path, echo{}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		srv.Close()
	}
	close(stop)
	var mode os.FileMode
	var ok bool
	select {
	case mode, ok = <-seen:
	case <-time.After(waitLimit):
		t.Fatal("the watcher of the socket's mode did not stop")
	}
	if ok {
		t.Errorf("control socket seen with mode %v, wider than %v", mode, os.FileMode(socketMode))
	}
	srv, err := Listen(path, echo{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != socketMode || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("control socket = %v, %v; want a socket with mode %v", fi.Mode(), err, os.FileMode(socketMode))
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 2 {
		t.Errorf("socket directory holds %d entries, want the socket and its lock", len(entries))
	}
}

// send sends req as it is, without Call's deadline and retries.
func send(path string, req Request) (*Response, error) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitLimit))
	sendErr := json.NewEncoder(conn).Encode(req)
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return nil, errors.Join(sendErr, err)
	}
	return &resp, nil
}

// failingListener fails its first n Accepts as a process out of
// descriptors does.
type failingListener struct {
	net.Listener
	n atomic.Int32
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.n.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestServerBacksOffOnAcceptErrors checks that running out of descriptors
// delays the control socket instead of stopping the agent (issue 11,
// item 6: EMFILE on accept made the daemon exit).
func TestServerBacksOffOnAcceptErrors(t *testing.T) {
	t.Parallel()
	path := socketPath(t)
	srv, err := Listen(path, echo{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	fl := &failingListener{Listener: srv.ln}
	fl.n.Store(5)
	srv.ln = fl
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	callCtx, callCancel := context.WithTimeout(context.Background(), waitLimit)
	defer callCancel()
	if resp, err := Call(callCtx, path, Request{Command: CommandStatus}); err != nil || !resp.OK {
		t.Errorf("Call after 5 failed accepts = %+v, %v; want an answer", resp, err)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned %v on accept errors, want it to retry", err)
	default:
	}
	cancel()
	testutil.Recv(t, done, waitLimit, "Run to return after cancel")
}

// TestListenRefusesSymlinkedLock checks that a symbolic link planted at
// the lock file's path is refused, not followed: in a sticky
// world-writable directory another user's link made root create, and
// flock, a file of that user's choosing (issue 17, item 13).
func TestListenRefusesSymlinkedLock(t *testing.T) {
	t.Parallel()
	path := socketPath(t)
	victim := filepath.Join(filepath.Dir(path), "chosen-by-someone-else")
	if err := os.Symlink(victim, path+".lock"); err != nil {
		t.Fatal(err)
	}
	srv, err := Listen(path, echo{}, zerolog.Nop())
	if err == nil {
		srv.Close()
		t.Error("Listen with a symbolic link at the lock's path = nil, want an error")
	} else if !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Listen with a symbolic link at the lock's path = %q, want it to say so", err)
	}
	if _, err := os.Lstat(victim); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the link's target was created (%v)", err)
	}
}

// idleClients keeps n connections open that never send a request, each
// opened again as soon as the server closes it, until the test ends.
func idleClients(t *testing.T, path string, n int) {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			buf := make([]byte, 512)
			for {
				select {
				case <-stop:
					return
				default:
				}
				conn, err := net.Dial("unix", path)
				if err != nil {
					continue
				}
				_ = conn.SetReadDeadline(time.Now().Add(waitLimit))
				for {
					if _, err := conn.Read(buf); err != nil {
						break
					}
				}
				conn.Close()
			}
		})
	}
	t.Cleanup(func() {
		close(stop)
		testutil.Waited(t, &wg, waitLimit, "the idle clients to stop")
	})
}

// TestServerIdleClientsDoNotLockOperatorsOut checks that clients that
// connect and send nothing, opened again as soon as they are closed, do
// not keep an operator's request out (issue 17, item 15: 16 of them locked
// every operator out for the CLI's whole deadline).
func TestServerIdleClientsDoNotLockOperatorsOut(t *testing.T) {
	t.Parallel()
	for _, n := range []int{maxControlClients, 2 * maxPendingReads} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			path, stop := serve(t, echo{})
			defer stop()
			idleClients(t, path, n)
			for range 3 {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				resp, err := Call(ctx, path, Request{Command: CommandDrain})
				cancel()
				if err != nil || !resp.OK {
					t.Fatalf("Call(drain) beside %d idle clients = %+v, %v; want an answer", n, resp, err)
				}
			}
		})
	}
}

// TestServerIdleClientMakesWayForANewOne checks that with every reader
// taken by clients idle for longer than idleGrace, a new connection that
// has yet to send its request takes the oldest one's place, and that the
// one evicted is told busy, which Call retries.
func TestServerIdleClientMakesWayForANewOne(t *testing.T) {
	t.Parallel()
	path := socketPath(t)
	srv, err := Listen(path, echo{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		testutil.Recv(t, done, waitLimit, "Run to return after cancel")
	}()
	var idle []net.Conn
	for range maxPendingReads {
		conn, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		idle = append(idle, conn)
	}
	testutil.Until(t, waitLimit, "every idle client to wait for its request", func() bool { return srv.readers.count() == maxPendingReads })
	idleSince := time.Now()
	testutil.Until(t, waitLimit, "the idle clients to pass idleGrace", func() bool { return time.Since(idleSince) > idleGrace })

	late, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	_ = idle[0].SetReadDeadline(time.Now().Add(waitLimit))
	var evicted Response
	if err := json.NewDecoder(idle[0]).Decode(&evicted); err != nil || !evicted.Busy {
		t.Fatalf("reply to the oldest idle client = %+v, %v; want busy", evicted, err)
	}
	_ = late.SetDeadline(time.Now().Add(waitLimit))
	if err := json.NewEncoder(late).Encode(Request{Command: CommandDrain}); err != nil {
		t.Fatal(err)
	}
	var resp Response
	if err := json.NewDecoder(late).Decode(&resp); err != nil || !resp.OK {
		t.Errorf("reply to the client that came after every reader was taken = %+v, %v; want an answer", resp, err)
	}
}

// deadlines hands each request's deadline, as the handler sees it, to a
// channel.
type deadlines chan time.Time

func (d deadlines) Handle(ctx context.Context, req Request) Response {
	dl, _ := ctx.Deadline()
	d <- dl
	return Response{OK: true, Status: &Status{Admin: req.Command}}
}

// TestServerDeadlineIsRelative checks that a request's time limit is taken
// as a duration on the agent's clock, so that the wall clock of either
// side, stepped back or ahead, does not lengthen it; and that a request
// from an older client, with only its wall-clock deadline, is still
// bounded by it (issue 17, "Clock").
func TestServerDeadlineIsRelative(t *testing.T) {
	t.Parallel()
	d := make(deadlines, 1)
	path, stop := serve(t, d)
	defer stop()
	// A client whose clock is an hour ahead of the agent's.
	ahead := time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)
	tests := []struct {
		name, line string
		want       time.Duration
	}{
		{"relative", `{"command":"drain","deadline":"` + ahead + `","within_ns":300000000}`, 300 * time.Millisecond},
		{"wall clock only", `{"command":"drain","deadline":"` + time.Now().Add(400*time.Millisecond).UTC().Format(time.RFC3339Nano) + `"}`, 400 * time.Millisecond},
		{"neither", `{"command":"drain"}`, DefaultDeadline},
	}
	for _, tt := range tests {
		sent := time.Now()
		resp, err := sendLine(path, tt.line)
		if err != nil || !resp.OK {
			t.Fatalf("%s: reply %+v, %v", tt.name, resp, err)
		}
		got := testutil.Recv(t, d, waitLimit, "the handler's deadline").Sub(sent)
		if got > tt.want+50*time.Millisecond || got < tt.want-250*time.Millisecond {
			t.Errorf("%s: the handler's deadline is %v after sending, want %v", tt.name, got, tt.want)
		}
	}
}

// sendLine sends one raw request line and reads the reply.
func sendLine(path, line string) (*Response, error) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitLimit))
	if _, err := conn.Write([]byte(line + "\n")); err != nil {
		return nil, err
	}
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// recorder counts the requests it is handed.
type recorder struct{ handled atomic.Int32 }

func (r *recorder) Handle(_ context.Context, req Request) Response {
	r.handled.Add(1)
	return Response{OK: true, Status: &Status{Admin: req.Command}}
}

// rawExchange sends raw bytes on the control socket and reads the reply.
func rawExchange(t *testing.T, path string, raw []byte, closeWrite bool) Response {
	t.Helper()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(waitLimit))
	if _, err := conn.Write(raw); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		conn.(*net.UnixConn).CloseWrite()
	}
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		t.Fatalf("reading the reply: %v", err)
	}
	return resp
}

// TestServerRefusesOversizedRequest sends a valid request padded past the
// size limit: it is refused whole, not cut at the limit and run (issue 17,
// item 16: a 70,000-byte drain was cut to 64 KiB and applied).
func TestServerRefusesOversizedRequest(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	path, stop := serve(t, r)
	defer stop()
	raw := append([]byte(`{"command":"drain"}`), bytes.Repeat([]byte(" "), 70000-len(`{"command":"drain"}`)-1)...)
	raw = append(raw, '\n')
	resp := rawExchange(t, path, raw, false)
	if resp.OK || !strings.Contains(resp.Error, "larger than") {
		t.Errorf("a 70,000-byte request answered %+v, want it refused as too large", resp)
	}
	if n := r.handled.Load(); n != 0 {
		t.Errorf("the oversized request was handled %d times, want never", n)
	}
	// A request that ends without its newline is still read whole.
	if resp := rawExchange(t, path, []byte(`{"command":"status"}`), true); !resp.OK {
		t.Errorf("a request without its newline answered %+v, want it run", resp)
	}
}

// TestServerReadTimeoutNamesNoTemporaryPath checks that a client that sends
// nothing is told so without the path of the private directory the socket
// was bound in, which no longer exists (issue 17, item 16).
func TestServerReadTimeoutNamesNoTemporaryPath(t *testing.T) {
	t.Parallel()
	path, stop := serve(t, echo{})
	defer stop()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(requestReadTimeout + waitLimit))
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		t.Fatalf("reading the reply: %v", err)
	}
	if resp.OK || strings.Contains(resp.Error, ".hafeed-bind-") || !strings.Contains(resp.Error, "no request") {
		t.Errorf("an idle client was told %q, want it to say no request came, without the bind path", resp.Error)
	}
}
