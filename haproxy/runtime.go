package haproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Errors a runtime API caller can check with errors.Is.
var (
	// ErrInvalidName marks a backend, server or session name that cannot be
	// spliced into a runtime API command.
	ErrInvalidName = errors.New("invalid name")
	// ErrNoSuchBackend: HAProxy has no backend (proxy) by that name.
	ErrNoSuchBackend = errors.New("no such backend")
	// ErrNoSuchServer: the backend has no server by that name.
	ErrNoSuchServer = errors.New("no such server")
	// ErrNoSuchSession: the session is gone, or never existed.
	ErrNoSuchSession = errors.New("no such session")
	// ErrPermission: the stats socket's level is too low for the command.
	ErrPermission = errors.New("permission denied")
	// ErrUnknownCommand: this HAProxy does not know the command.
	ErrUnknownCommand = errors.New("unknown command")
)

// DefaultRuntimeTimeout bounds one runtime API command when the context
// has no earlier deadline.
const DefaultRuntimeTimeout = 5 * time.Second

// Reply limits, by what hafeed asks. A reply past its limit is cut off
// with ErrReplyTooLarge and the connection closed, so that an endpoint
// that is not HAProxy, or a broken one, cannot fill the agent's memory.
const (
	// smallReplyBytes bounds a reply that is read whole: one value, a
	// change, "show info" (about 2 KiB).
	smallReplyBytes = 1 << 20
	// tableReplyBytes bounds "show stat" and "show servers state", read
	// whole: about 1 KiB a server, so some 30,000 servers.
	tableReplyBytes = 32 << 20
	// sessionsReplyBytes bounds "show sess", which is streamed and parsed
	// a line at a time: about 350 bytes a stream, so some 750,000 streams.
	sessionsReplyBytes = 256 << 20
	// sessionLineBytes bounds one "show sess" line (about 350 bytes).
	sessionLineBytes = 64 << 10
)

// ErrReplyTooLarge marks a reply longer than hafeed accepts for its
// command; the rest of it was discarded.
var ErrReplyTooLarge = errors.New("reply too large")

// MaxUnixPath is the longest path a Unix socket may have on Linux: sun_path
// holds 108 bytes with the terminating NUL. The control socket's path is
// bound by it too.
const MaxUnixPath = 107

// severityPrefix is sent before every command so that HAProxy tags each
// message with its syslog severity.
const severityPrefix = "set severity-output number; "

// logErr is the syslog severity of HAProxy's error messages
// ("[3]: No such server."); informational replies come as "[6]: admin".
const logErr = 3

// Runtime talks to one HAProxy's runtime API (stats socket). It opens one
// connection per command and is safe for concurrent use. Reads work at any
// stats socket level except Sessions, which needs "level operator"; changes
// need "level admin".
type Runtime struct {
	endpoint string // normalized: unix:///path or tcp://host:port
	network  string // "unix" or "tcp"
	address  string
	loopback bool
	timeout  time.Duration
	limits   replyLimits
}

// replyLimits are the byte limits on replies, a field so tests can lower them.
type replyLimits struct {
	small, table, sessions int64
	sessionLine            int
}

var defaultReplyLimits = replyLimits{
	small:       smallReplyBytes,
	table:       tableReplyBytes,
	sessions:    sessionsReplyBytes,
	sessionLine: sessionLineBytes,
}

// replyLimit is how many bytes a reply to command, read whole, may have.
func (l replyLimits) replyLimit(command string) int64 {
	if strings.HasPrefix(command, "show stat") || strings.HasPrefix(command, "show servers state") {
		return l.table
	}
	return l.small
}

// RuntimeOption tunes a Runtime.
type RuntimeOption func(*Runtime)

// WithRuntimeTimeout bounds each command (dial, write and read) when the
// caller's context has no earlier deadline; zero or less keeps the default.
func WithRuntimeTimeout(d time.Duration) RuntimeOption {
	return func(r *Runtime) {
		if d > 0 {
			r.timeout = d
		}
	}
}

// NewRuntime returns a client for the stats socket at endpoint:
// "unix:///run/haproxy/admin.sock", "/run/haproxy/admin.sock" or
// "tcp://127.0.0.1:9999". It does not connect.
func NewRuntime(endpoint string, opts ...RuntimeOption) (*Runtime, error) {
	r := &Runtime{timeout: DefaultRuntimeTimeout, limits: defaultReplyLimits}
	if err := r.parseEndpoint(endpoint); err != nil {
		return nil, err
	}
	for _, opt := range opts {
		opt(r)
	}
	return r, nil
}

// ValidateEndpoint checks a runtime API address as NewRuntime would
// accept it, so that a configuration can be rejected before it runs.
func ValidateEndpoint(endpoint string) error {
	return new(Runtime).parseEndpoint(endpoint)
}

// CanonicalEndpoint is the one spelling of a runtime API address: two
// spellings of one HAProxy ("/run/a.sock", "unix:///run/./a.sock") give
// the same.
func CanonicalEndpoint(endpoint string) (string, error) {
	r := new(Runtime)
	if err := r.parseEndpoint(endpoint); err != nil {
		return "", err
	}
	if r.network == "unix" {
		return "unix://" + filepath.Clean(r.address), nil
	}
	return r.endpoint, nil
}

const endpointForms = `want "unix:///path/to/admin.sock", "/path/to/admin.sock" or "tcp://127.0.0.1:9999"`

func (r *Runtime) parseEndpoint(endpoint string) error {
	bad := func(why string) error {
		return fmt.Errorf("haproxy runtime endpoint %q: %s", endpoint, why)
	}
	if endpoint == "" {
		return bad("empty; " + endpointForms)
	}
	if strings.ContainsFunc(endpoint, func(c rune) bool { return c < ' ' || c == 0x7f }) {
		return bad("contains control characters")
	}
	var path string
	switch {
	case strings.HasPrefix(endpoint, "unix://"):
		path = strings.TrimPrefix(endpoint, "unix://")
		if path == "" {
			return bad("no socket path; " + endpointForms)
		}
	case strings.HasPrefix(endpoint, "/"), strings.HasPrefix(endpoint, "./"), strings.HasPrefix(endpoint, "../"):
		path = endpoint
	case strings.HasPrefix(endpoint, "tcp://"):
		hostPort := strings.TrimPrefix(endpoint, "tcp://")
		host, port, err := net.SplitHostPort(hostPort)
		if err != nil {
			return bad("want tcp://host:port, e.g. tcp://127.0.0.1:9999")
		}
		if host == "" {
			return bad("no host; write tcp://127.0.0.1:" + port + " for this machine")
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return bad("port must be a number from 1 to 65535")
		}
		r.network, r.address = "tcp", net.JoinHostPort(host, port)
		r.endpoint = "tcp://" + r.address
		r.loopback = isLoopbackHost(host)
		return nil
	case strings.HasPrefix(endpoint, "ipv4@"), strings.HasPrefix(endpoint, "ipv6@"):
		return bad(`HAProxy's "ipv4@" form is for haproxy.cfg; write tcp://host:port here`)
	default:
		return bad(endpointForms)
	}
	if len(path) > MaxUnixPath {
		return bad(fmt.Sprintf("socket path is %d bytes, Unix sockets allow at most %d", len(path), MaxUnixPath))
	}
	r.network, r.address = "unix", path
	r.endpoint = "unix://" + path
	r.loopback = true
	return nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// Endpoint is the socket this Runtime talks to, as unix:///path or
// tcp://host:port.
func (r *Runtime) Endpoint() string { return r.endpoint }

// IsLoopbackOrUnix reports whether the endpoint stays on this machine. The
// runtime API has no authentication, so callers warn when it is false.
func (r *Runtime) IsLoopbackOrUnix() bool { return r.loopback }

// RuntimeError is a command HAProxy refused, with the message it gave.
type RuntimeError struct {
	Endpoint string
	Command  string
	// Severity is the syslog severity HAProxy tagged the message with
	// (3 for errors), or -1 when the reply carried none.
	Severity int
	Message  string

	kind error // a sentinel such as ErrNoSuchServer, or nil
}

func (e *RuntimeError) Error() string {
	prefix := "haproxy " + e.Endpoint + ": " + e.Command + ": "
	switch e.kind {
	case ErrPermission:
		return prefix + e.Message + " (the stats socket needs 'level " + requiredLevel(e.Command) + "' in haproxy.cfg; 'show cli level' shows the current one)"
	case ErrUnknownCommand:
		// The rest of HAProxy's message lists commands it knows instead.
		return prefix + "Unknown command (this HAProxy does not know it; hafeed needs HAProxy 2.6 or later)"
	}
	return prefix + e.Message
}

// Unwrap lets errors.Is match the sentinel the message stands for.
func (e *RuntimeError) Unwrap() error { return e.kind }

// requiredLevel is the stats socket level the commands hafeed sends need.
func requiredLevel(command string) string {
	switch {
	case strings.HasPrefix(command, "show sess"):
		return "operator"
	}
	return "admin"
}

// errorKind maps HAProxy 2.6's error messages to sentinels.
func errorKind(message string) error {
	switch {
	case message == "Permission denied":
		return ErrPermission
	case message == "No such server.":
		return ErrNoSuchServer
	case message == "No such backend.", message == "Can't find backend.", message == "No such proxy.":
		return ErrNoSuchBackend
	case strings.HasPrefix(message, "No such session"):
		return ErrNoSuchSession
	case strings.HasPrefix(message, "Unknown command"):
		return ErrUnknownCommand
	}
	return nil
}

// Execute runs one command and returns its output without the empty line
// that ends it. A message HAProxy tags with an error severity (0 to 3), or
// one that reads as a known failure (such as "Unknown command", tagged 6),
// becomes a *RuntimeError; a milder tag ("[6]: admin") is removed. The
// command must be a single command: no newlines and no unescaped ';'.
func (r *Runtime) Execute(ctx context.Context, command string) (string, error) {
	if err := checkCommand(command); err != nil {
		return "", fmt.Errorf("haproxy %s: %q: %w", r.endpoint, command, err)
	}
	var raw []byte
	err := r.exchange(ctx, command, func(reply io.Reader) error {
		var err error
		raw, err = io.ReadAll(newCappedReader(reply, r.limits.replyLimit(command)))
		return err
	})
	if err != nil {
		return "", err
	}
	out, severity, err := splitReply(string(raw))
	if err != nil {
		return "", fmt.Errorf("haproxy %s: %s: %w", r.endpoint, command, err)
	}
	if err := r.replyError(command, severity, firstLine(out)); err != nil {
		return "", err
	}
	return out, nil
}

// replyError is the *RuntimeError for a reply whose first line is
// message, tagged with severity, or nil when the reply is not an error.
func (r *Runtime) replyError(command string, severity int, message string) error {
	kind := errorKind(message)
	if (severity >= 0 && severity <= logErr) || kind != nil {
		return &RuntimeError{
			Endpoint: r.endpoint,
			Command:  command,
			Severity: severity,
			Message:  message,
			kind:     kind,
		}
	}
	return nil
}

// streamLines runs one command like Execute but hands its output to fn a
// line at a time, without the line break, as it arrives: the reply is never
// held whole. Empty lines are skipped. A line longer than maxLine, or a
// reply longer than limit, ends the command with an error; so does an
// error from fn, which is returned as it is.
func (r *Runtime) streamLines(ctx context.Context, command string, limit int64, maxLine int, fn func(line string) error) error {
	if err := checkCommand(command); err != nil {
		return fmt.Errorf("haproxy %s: %q: %w", r.endpoint, command, err)
	}
	var fnErr error
	err := r.exchange(ctx, command, func(reply io.Reader) error {
		capped := newCappedReader(reply, limit)
		sc := bufio.NewScanner(capped)
		sc.Buffer(make([]byte, 0, min(4096, maxLine)), maxLine)
		sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
			if atEOF && capped.err != nil {
				// Whole lines before a failed read count; the line it cut off does not.
				if advance, line, _ := bufio.ScanLines(data, false); line != nil {
					return advance, line, nil
				}
				return 0, nil, capped.err
			}
			return bufio.ScanLines(data, atEOF)
		})
		// The answer to "set severity-output number" is an empty line.
		if !sc.Scan() {
			if sc.Err() != nil {
				return sc.Err()
			}
			return errEmptyReply
		}
		if line := sc.Text(); line != "" {
			return fmt.Errorf("unexpected reply %q: 'set severity-output number' was not accepted", truncate(line, 80))
		}
		first := true
		for sc.Scan() {
			line := sc.Text()
			if first {
				first = false
				var severity int
				severity, line = cutSeverity(line)
				if err := r.replyError(command, severity, line); err != nil {
					fnErr = err
					return err
				}
			}
			if line == "" {
				continue
			}
			if err := fn(line); err != nil {
				fnErr = err
				return err
			}
		}
		if errors.Is(sc.Err(), bufio.ErrTooLong) {
			return fmt.Errorf("a line longer than %s, this command's limit; the rest was discarded", byteSize(int64(maxLine)))
		}
		return sc.Err()
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

// checkCommand rejects what would turn one command into several.
func checkCommand(command string) error {
	if strings.TrimSpace(command) == "" {
		return errors.New("empty command")
	}
	if strings.ContainsAny(command, "\r\n\x00") {
		return errors.New("command contains a line break or NUL")
	}
	escaped := false
	for _, c := range command {
		switch {
		case escaped:
			escaped = false
		case c == '\\':
			escaped = true
		case c == ';':
			return errors.New("command contains ';': send one command at a time")
		}
	}
	return nil
}

// exchange sends the command on a fresh connection and hands the reply,
// until HAProxy closes the connection, to read. It returns read's error
// with the endpoint and command in front; a reply a cappedReader cut off
// is reported with its limit.
func (r *Runtime) exchange(ctx context.Context, command string, read func(reply io.Reader) error) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	fail := func(err error) error { return fmt.Errorf("haproxy %s: %s: %w", r.endpoint, command, err) }

	var d net.Dialer
	conn, err := d.DialContext(ctx, r.network, r.address)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fail(fmt.Errorf("connecting: %w", ctxErr))
		}
		return fail(fmt.Errorf("connecting: %w%s", err, dialHint(r.network, r.address, err)))
	}
	defer conn.Close()

	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	unblocked := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(unblocked)
		_ = conn.SetDeadline(time.Unix(1, 0))
	})
	defer func() {
		if !stop() {
			<-unblocked
		}
	}()

	if _, err := io.WriteString(conn, severityPrefix+command+"\n"); err != nil {
		return fail(ioError("sending", ctx, err))
	}
	err = read(conn)
	var tooLarge *replyTooLargeError
	var netErr net.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooLarge):
		return fail(fmt.Errorf("%w: more than %s, this command's limit; the rest was discarded (is %s HAProxy's stats socket?)",
			ErrReplyTooLarge, byteSize(tooLarge.limit), r.endpoint))
	case errors.As(err, &netErr):
		return fail(ioError("reading reply", ctx, err))
	}
	return fail(err)
}

// errEmptyReply: HAProxy closed the connection without a byte.
var errEmptyReply = errors.New("empty reply: HAProxy closed the connection without answering")

// cappedReader reads at most left bytes from r and fails with a
// *replyTooLargeError on the first byte past them.
type cappedReader struct {
	r     io.Reader
	left  int64
	limit int64
	err   error // the last error other than io.EOF
}

func newCappedReader(r io.Reader, limit int64) *cappedReader {
	return &cappedReader{r: r, left: limit, limit: limit}
}

type replyTooLargeError struct{ limit int64 }

func (e *replyTooLargeError) Error() string {
	return fmt.Sprintf("reply longer than %s", byteSize(e.limit))
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, c.err
	}
	// Read one byte more than allowed, to tell "exactly the limit" from "more".
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		n, err = n-1, &replyTooLargeError{c.limit}
	}
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// byteSize prints a limit as MiB or KiB when it is a whole number of them.
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// ioError reports a failed read or write, as the context's error when the
// context ended it.
func ioError(doing string, ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %w", doing, ctxErr)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%s: %w", doing, context.DeadlineExceeded)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// dialHint says what to check when the socket cannot be reached.
func dialHint(network, address string, err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Sprintf(" (is HAProxy running with 'stats socket %s level admin' in its global section?)", address)
	case errors.Is(err, syscall.ECONNREFUSED) && network == "unix":
		return " (the socket file exists but nothing listens: is HAProxy running?)"
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf(" (is HAProxy running with 'stats socket ipv4@%s level admin' in its global section?)", address)
	case errors.Is(err, os.ErrPermission):
		return " (run as a user the socket's mode/user/group on the stats socket line allows)"
	}
	return ""
}

// splitReply takes the raw reply to "set severity-output number; <cmd>"
// apart: the first command answers with an empty line, the output of the
// second follows and ends with an empty line (missing after a few 2.6 parse
// errors). A leading "[n]: " tag is removed and returned as severity, which
// is -1 without one.
func splitReply(raw string) (out string, severity int, err error) {
	if raw == "" {
		return "", -1, errEmptyReply
	}
	body, ok := strings.CutPrefix(raw, "\n")
	if !ok {
		return "", -1, fmt.Errorf("unexpected reply %q: 'set severity-output number' was not accepted", truncate(raw, 80))
	}
	switch {
	case body == "\n":
		body = ""
	case strings.HasSuffix(body, "\n\n"):
		body = body[:len(body)-1]
	}
	severity, body = cutSeverity(body)
	return body, severity, nil
}

// cutSeverity removes a leading "[n]: " tag, n a syslog severity 0..7,
// and returns n, or -1 when s has no tag.
func cutSeverity(s string) (int, string) {
	if len(s) >= 5 && s[0] == '[' && s[1] >= '0' && s[1] <= '7' && s[2] == ']' && s[3] == ':' && s[4] == ' ' {
		return int(s[1] - '0'), s[5:]
	}
	return -1, s
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// ValidateName rejects a backend or server name that HAProxy could not have
// accepted in its configuration, and with it anything that would change
// the command it is spliced into (';', '\\', '/', spaces, line breaks).
// kind ("backend" or "server") labels the error. The runtime client checks
// every name with it, and hafeed's configuration does too.
func ValidateName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty %s name", ErrInvalidName, kind)
	}
	for _, c := range name {
		if !isNameChar(c) {
			return fmt.Errorf("%w: %s name %q: HAProxy names use only letters, digits, '.', ':', '_' and '-'", ErrInvalidName, kind, name)
		}
	}
	return nil
}

// isNameChar is HAProxy's own rule for proxy and server names (invalid_char).
func isNameChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == ':' || c == '_' || c == '-'
}

// serverRef validates backend and server and joins them as "B/S".
func serverRef(backend, server string) (string, error) {
	if err := ValidateName("backend", backend); err != nil {
		return "", err
	}
	if err := ValidateName("server", server); err != nil {
		return "", err
	}
	return backend + "/" + server, nil
}
