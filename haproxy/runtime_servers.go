package haproxy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// MaxWeight is the largest server weight HAProxy accepts.
const MaxWeight = 256

// Bits of ServerState.AdminState (srv_admin_state) that an operator, an
// agent or the configuration sets.
const (
	AdminStateForcedMaint = 0x01 // "set server ... state maint" or agent "maint"
	AdminStateConfigMaint = 0x04 // "disabled" in haproxy.cfg
	AdminStateForcedDrain = 0x08 // "set server ... state drain" or agent "drain"
)

// ServerState is one row of "show servers state".
type ServerState struct {
	Backend string // be_name
	Name    string // srv_name
	// Addr is srv_addr; the zero Addr when HAProxy has none ("-").
	Addr netip.Addr
	Port int // srv_port
	// OpState is srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping.
	OpState int
	// AdminState is srv_admin_state, a bitmask of AdminState* flags.
	AdminState int
	UWeight    int // srv_uweight: the current (user) weight
	IWeight    int // srv_iweight: the configured (initial) weight
	// Fields holds every column by its header name.
	Fields map[string]string
}

// ForcedDrain reports whether the operator or an agent drained the server.
func (s ServerState) ForcedDrain() bool { return s.AdminState&AdminStateForcedDrain != 0 }

// ForcedMaint reports whether the operator or an agent put the server in
// maintenance.
func (s ServerState) ForcedMaint() bool { return s.AdminState&AdminStateForcedMaint != 0 }

// ServersState reads "show servers state", for one backend when backend is
// not empty.
func (r *Runtime) ServersState(ctx context.Context, backend string) ([]ServerState, error) {
	command := "show servers state"
	if backend != "" {
		if err := ValidateName("backend", backend); err != nil {
			return nil, r.invalid(command, err)
		}
		command += " " + backend
	}
	out, err := r.Execute(ctx, command)
	if err != nil {
		return nil, err
	}
	states, err := parseServersState(out)
	if err != nil {
		return nil, fmt.Errorf("haproxy %s: %s: %w", r.endpoint, command, err)
	}
	return states, nil
}

// The "show servers state" columns ServerState needs.
var serversStateColumns = []string{
	"be_name", "srv_name", "srv_addr", "srv_port", "srv_op_state", "srv_admin_state", "srv_uweight", "srv_iweight",
}

// parseServersState parses "show servers state" output: a format version
// line ("1"), a "# " header, then one space-separated row per server.
func parseServersState(out string) ([]ServerState, error) {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if lines[0] != "1" {
		return nil, fmt.Errorf("servers state format version %q, want \"1\"", truncate(lines[0], 20))
	}
	if len(lines) < 2 || !strings.HasPrefix(lines[1], "# ") {
		return nil, errors.New("servers state has no \"# \" header line")
	}
	header := strings.Fields(lines[1][2:])
	index := make(map[string]int, len(header))
	for i, name := range header {
		if _, dup := index[name]; !dup {
			index[name] = i
		}
	}
	for _, name := range serversStateColumns {
		if _, ok := index[name]; !ok {
			return nil, fmt.Errorf("servers state header lacks column %q", name)
		}
	}
	var states []ServerState
	for n, line := range lines[2:] {
		if line == "" {
			continue
		}
		row := strings.Fields(line)
		if len(row) != len(header) {
			return nil, fmt.Errorf("servers state row %d has %d columns, the header %d", n+1, len(row), len(header))
		}
		fields := make(map[string]string, len(header))
		for i, name := range header {
			if _, seen := fields[name]; !seen {
				fields[name] = row[i]
			}
		}
		s := ServerState{Backend: fields["be_name"], Name: fields["srv_name"], Fields: fields}
		if a := fields["srv_addr"]; a != "-" {
			addr, err := netip.ParseAddr(a)
			if err != nil {
				return nil, fmt.Errorf("servers state row %d: srv_addr %q is not an IP address", n+1, truncate(a, 60))
			}
			s.Addr = addr
		}
		for _, c := range []struct {
			name string
			dst  *int
		}{
			{"srv_port", &s.Port},
			{"srv_op_state", &s.OpState},
			{"srv_admin_state", &s.AdminState},
			{"srv_uweight", &s.UWeight},
			{"srv_iweight", &s.IWeight},
		} {
			v, err := parseCount(fields[c.name])
			if err != nil {
				return nil, fmt.Errorf("servers state row %d: %s: %w", n+1, c.name, err)
			}
			*c.dst = v
		}
		states = append(states, s)
	}
	return states, nil
}

// parseCount parses a non-negative decimal int that fits 32 bits, as
// HAProxy prints counts, weights and states.
func parseCount(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, fmt.Errorf("%q is not a non-negative number", truncate(s, 40))
	}
	return int(n), nil
}

// Weight reads a server's current and initial (configured) weight.
func (r *Runtime) Weight(ctx context.Context, backend, server string) (current, initial int, err error) {
	ref, err := serverRef(backend, server)
	if err != nil {
		return 0, 0, r.invalid("get weight", err)
	}
	command := "get weight " + ref
	out, err := r.Execute(ctx, command)
	if err != nil {
		return 0, 0, err
	}
	current, initial, err = parseWeight(out)
	if err != nil {
		return 0, 0, fmt.Errorf("haproxy %s: %s: %w", r.endpoint, command, err)
	}
	return current, initial, nil
}

// parseWeight parses "get weight" output, "50 (initial 100)".
func parseWeight(out string) (current, initial int, err error) {
	line := strings.TrimSuffix(out, "\n")
	cur, rest, ok := strings.Cut(line, " (initial ")
	init, ok2 := strings.CutSuffix(rest, ")")
	if !ok || !ok2 {
		return 0, 0, fmt.Errorf("weight reply %q, want \"<weight> (initial <weight>)\"", truncate(line, 60))
	}
	if current, err = parseCount(cur); err != nil {
		return 0, 0, fmt.Errorf("current weight: %w", err)
	}
	if initial, err = parseCount(init); err != nil {
		return 0, 0, fmt.Errorf("initial weight: %w", err)
	}
	if current > MaxWeight || initial > MaxWeight {
		return 0, 0, fmt.Errorf("weight reply %q: weights go up to %d", truncate(line, 60), MaxWeight)
	}
	return current, initial, nil
}

// SetWeight sets a server's absolute weight, 0 (out of rotation) to 256.
func (r *Runtime) SetWeight(ctx context.Context, backend, server string, weight int) error {
	ref, err := serverRef(backend, server)
	if err != nil {
		return r.invalid("set server weight", err)
	}
	command := fmt.Sprintf("set server %s weight %d", ref, weight)
	if weight < 0 || weight > MaxWeight {
		// Checked here: some of HAProxy 2.6's weight errors lack their end of line.
		return fmt.Errorf("haproxy %s: %s: weight must be from 0 to %d", r.endpoint, command, MaxWeight)
	}
	return r.expectEmpty(ctx, command)
}

// SetState forces a server's administrative state: ready, drain or maint.
func (r *Runtime) SetState(ctx context.Context, backend, server string, admin Admin) error {
	ref, err := serverRef(backend, server)
	if err != nil {
		return r.invalid("set server state", err)
	}
	switch admin {
	case AdminReady, AdminDrain, AdminMaint:
	default:
		return fmt.Errorf("haproxy %s: set server %s state: unknown admin state %v", r.endpoint, ref, admin)
	}
	return r.expectEmpty(ctx, "set server "+ref+" state "+admin.String())
}

// SetMaxconn sets a server's maxconn; 0 lifts the limit.
func (r *Runtime) SetMaxconn(ctx context.Context, backend, server string, n int) error {
	ref, err := serverRef(backend, server)
	if err != nil {
		return r.invalid("set maxconn server", err)
	}
	command := fmt.Sprintf("set maxconn server %s %d", ref, n)
	if n < 0 || n > math.MaxInt32 {
		// HAProxy 2.6 takes a negative maxconn without complaint.
		return fmt.Errorf("haproxy %s: %s: maxconn must be from 0 (no limit) to %d", r.endpoint, command, math.MaxInt32)
	}
	return r.expectEmpty(ctx, command)
}

// ShutdownServerSessions closes every stream that uses the server.
func (r *Runtime) ShutdownServerSessions(ctx context.Context, backend, server string) error {
	ref, err := serverRef(backend, server)
	if err != nil {
		return r.invalid("shutdown sessions server", err)
	}
	return r.expectEmpty(ctx, "shutdown sessions server "+ref)
}

// expectEmpty runs a command that prints nothing when it succeeds, so that
// any text is an error even when HAProxy did not tag it as one.
func (r *Runtime) expectEmpty(ctx context.Context, command string) error {
	out, err := r.Execute(ctx, command)
	if err != nil {
		return err
	}
	if msg := strings.TrimSpace(out); msg != "" {
		return &RuntimeError{Endpoint: r.endpoint, Command: command, Severity: -1, Message: firstLine(msg), kind: errorKind(firstLine(msg))}
	}
	return nil
}

// invalid reports an argument refused before anything was sent.
func (r *Runtime) invalid(operation string, err error) error {
	return fmt.Errorf("haproxy %s: %s: %w", r.endpoint, operation, err)
}
