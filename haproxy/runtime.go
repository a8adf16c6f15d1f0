package haproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
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

// maxReplyBytes bounds a reply read into memory; "show sess" on a busy
// HAProxy is about 300 bytes per stream.
const maxReplyBytes = 256 << 20

// maxUnixPath is the longest socket path Linux accepts (sun_path minus NUL).
const maxUnixPath = 107

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
	r := &Runtime{timeout: DefaultRuntimeTimeout}
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
	if len(path) > maxUnixPath {
		return bad(fmt.Sprintf("socket path is %d bytes, Unix sockets allow at most %d", len(path), maxUnixPath))
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
	raw, err := r.roundTrip(ctx, command)
	if err != nil {
		return "", fmt.Errorf("haproxy %s: %s: %w", r.endpoint, command, err)
	}
	out, severity, err := splitReply(raw)
	if err != nil {
		return "", fmt.Errorf("haproxy %s: %s: %w", r.endpoint, command, err)
	}
	kind := errorKind(firstLine(out))
	if (severity >= 0 && severity <= logErr) || kind != nil {
		return "", &RuntimeError{
			Endpoint: r.endpoint,
			Command:  command,
			Severity: severity,
			Message:  firstLine(out),
			kind:     kind,
		}
	}
	return out, nil
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

// roundTrip sends the command on a fresh connection and reads the raw
// reply until HAProxy closes the connection.
func (r *Runtime) roundTrip(ctx context.Context, command string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()

	var d net.Dialer
	conn, err := d.DialContext(ctx, r.network, r.address)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return "", fmt.Errorf("connecting: %w", ctxErr)
		}
		return "", fmt.Errorf("connecting: %w%s", err, dialHint(r.network, r.address, err))
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
		return "", ioError("sending", ctx, err)
	}
	b, err := io.ReadAll(io.LimitReader(conn, maxReplyBytes+1))
	if err != nil {
		return "", ioError("reading reply", ctx, err)
	}
	if len(b) > maxReplyBytes {
		return "", fmt.Errorf("reply larger than %d MiB", maxReplyBytes>>20)
	}
	return string(b), nil
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
		return "", -1, errors.New("empty reply: HAProxy closed the connection without answering")
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
