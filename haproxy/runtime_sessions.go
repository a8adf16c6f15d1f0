package haproxy

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Session is one stream in "show sess": a client connection, or a CLI
// connection such as the one that asked.
type Session struct {
	// ID is the stream's address, "0x55c500d220a0", as ShutdownSession takes it.
	ID    string
	Proto string // "tcpv4", "tcpv6", "unix_stream", ...
	// Src is the client as HAProxy prints it: "127.0.0.1:51134",
	// "::1:51450" (IPv6 without brackets) or "unix:1" (listener number).
	Src string
	// SrcAddr is Src as an address and port, zero for non-IP clients.
	SrcAddr  netip.AddrPort
	Frontend string // "GLOBAL" for runtime API (CLI) connections
	Backend  string // empty while the stream has none ("<NONE>")
	Server   string // empty while the stream has none ("<none>")
	// Age is whole seconds and a lower bound: HAProxy prints at most two
	// units ("1d3h", "2m3s"). Zero when HAProxy printed "?".
	Age time.Duration
	// Fields holds the line's top-level name=value pairs ("ts", "epoch",
	// "calls", ...), the ones above included.
	Fields map[string]string
}

// Sessions reads "show sess"; it needs a stats socket of level operator
// or admin. HAProxy 2.6 cannot filter it, so callers filter on Backend and
// Server. It holds every stream in memory: on a busy HAProxy, EachSession
// filters while reading instead.
func (r *Runtime) Sessions(ctx context.Context) ([]Session, error) {
	var sessions []Session
	err := r.EachSession(ctx, func(s Session) error {
		sessions = append(sessions, s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sessions, nil
}

// EachSession reads "show sess" and calls fn with each stream as its line
// arrives; the reply is never held whole, and a line or a reply past its
// limit (sessionLineBytes, sessionsReplyBytes) ends it with an error. An
// error from fn stops the listing and is returned as it is. It needs a
// stats socket of level operator or admin.
func (r *Runtime) EachSession(ctx context.Context, fn func(Session) error) error {
	const command = "show sess"
	n := 0
	var parseErr error
	err := r.streamLines(ctx, command, r.limits.sessions, r.limits.sessionLine, func(line string) error {
		n++
		s, err := parseSessionLine(line)
		if err != nil {
			parseErr = fmt.Errorf("haproxy %s: %s: sessions line %d: %w", r.endpoint, command, n, err)
			return parseErr
		}
		return fn(s)
	})
	if parseErr != nil {
		return parseErr
	}
	return err
}

// ShutdownSession closes one stream, both sides, by its Session.ID.
func (r *Runtime) ShutdownSession(ctx context.Context, id string) error {
	if !isSessionID(id) {
		return r.invalid("shutdown session", fmt.Errorf("%w: session id %q: want 0x and hex digits, as in 'show sess'", ErrInvalidName, truncate(id, 40)))
	}
	return r.expectEmpty(ctx, "shutdown session "+id)
}

// isSessionID accepts a pointer as "show sess" prints it.
func isSessionID(id string) bool {
	digits, ok := strings.CutPrefix(id, "0x")
	if !ok || digits == "" || len(digits) > 16 {
		return false
	}
	for _, c := range digits {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func parseSessionLine(line string) (Session, error) {
	id, rest, ok := strings.Cut(line, ": ")
	if !ok || !isSessionID(id) {
		return Session{}, fmt.Errorf("want \"0x<pointer>: proto=...\", got %q", truncate(line, 60))
	}
	s := Session{ID: id, Fields: make(map[string]string)}
	for _, word := range strings.Split(rest, " ") {
		name, value, ok := strings.Cut(word, "=")
		// Skip the nested groups such as "rq[f=848000h,i=0,...]".
		if !ok || name == "" || strings.ContainsAny(name, "[]") {
			continue
		}
		if _, seen := s.Fields[name]; !seen {
			s.Fields[name] = value
		}
	}
	s.Proto = s.Fields["proto"]
	if s.Proto == "" {
		return Session{}, fmt.Errorf("session %s has no proto", id)
	}
	s.Src = s.Fields["src"]
	s.SrcAddr = parseHostPort(s.Src)
	s.Frontend = s.Fields["fe"]
	if be := s.Fields["be"]; be != "<NONE>" {
		s.Backend = be
	}
	if srv := s.Fields["srv"]; srv != "<none>" {
		s.Server = srv
	}
	if age, ok := s.Fields["age"]; ok {
		d, err := parseHumanTime(age)
		if err != nil {
			return Session{}, fmt.Errorf("session %s: age: %w", id, err)
		}
		s.Age = d
	}
	return s, nil
}

// parseHostPort parses "ip:port" where an IPv6 address has no brackets.
func parseHostPort(s string) netip.AddrPort {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return netip.AddrPort{}
	}
	addr, err := netip.ParseAddr(s[:i])
	if err != nil || addr.Zone() != "" {
		return netip.AddrPort{}
	}
	digits := s[i+1:]
	port, err := strconv.ParseUint(digits, 10, 16)
	if err != nil || len(digits) > 1 && digits[0] == '0' { // HAProxy prints %d
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(addr, uint16(port))
}

// parseHumanTime parses HAProxy's human_time(): up to two of days, hours,
// minutes and seconds, largest first ("1d3h", "2m3s", "0s"), or "?" for a
// time HAProxy could not tell.
func parseHumanTime(s string) (time.Duration, error) {
	if s == "?" {
		return 0, nil
	}
	units := []struct {
		suffix  byte
		seconds int64
	}{{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}}
	var total int64
	next := 0 // index of the smallest unit seen so far, plus one
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) || i > 10 {
			return 0, fmt.Errorf("%q is not a HAProxy duration such as 1d3h or 2m3s", truncate(s, 30))
		}
		n, _ := strconv.ParseInt(rest[:i], 10, 64)
		u := next
		for u < len(units) && units[u].suffix != rest[i] {
			u++
		}
		if u == len(units) {
			return 0, fmt.Errorf("%q is not a HAProxy duration such as 1d3h or 2m3s", truncate(s, 30))
		}
		total += n * units[u].seconds
		if total > math.MaxInt32 {
			return 0, fmt.Errorf("%q is longer than HAProxy can count", truncate(s, 30))
		}
		next = u + 1
		rest = rest[i+1:]
	}
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	return time.Duration(total) * time.Second, nil
}
