package haproxy

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Stat is one row of "show stat": a frontend, a backend or a server.
type Stat struct {
	Proxy string // pxname
	// Server is svname: a server's name, or FRONTEND or BACKEND for the
	// proxy's own row.
	Server string
	// Status is e.g. "UP", "DOWN", "DRAIN", "DRAIN (agent)", "MAINT",
	// "no check", "UP 1/3" or "OPEN".
	Status      string
	Weight      int // effective weight
	UWeight     int // user weight, as set by an agent or "set server ... weight"
	Scur        int // current sessions
	Slim        int // maxconn; 0 when there is no limit
	CheckStatus string
	AgentStatus string
	LastAgt     string // the agent's last reply, as HAProxy describes it
	Addr        string // "ip:port" for a server, empty otherwise
	// Fields holds every column by its header name, empty ones included.
	Fields map[string]string
}

// Stats reads "show stat": every proxy when backend is empty, otherwise
// that backend's servers only.
func (r *Runtime) Stats(ctx context.Context, backend string) ([]Stat, error) {
	command := "show stat"
	if backend != "" {
		if err := ValidateName("backend", backend); err != nil {
			return nil, r.invalid(command, err)
		}
		command += " " + backend + " 4 -1" // 4: servers, -1: all of them
	}
	out, err := r.Execute(ctx, command)
	if err != nil {
		return nil, err
	}
	stats, err := parseStat(out)
	if err != nil {
		return nil, fmt.Errorf("haproxy %s: %s: %w", r.endpoint, command, err)
	}
	return stats, nil
}

// parseStat parses "show stat" CSV: a "# " header naming the columns, then
// one row per proxy or server. HAProxy ends every line with a comma and
// quotes fields that hold commas or quotes (an agent's reply can).
func parseStat(out string) ([]Stat, error) {
	header, body, _ := strings.Cut(out, "\n")
	names, ok := strings.CutPrefix(header, "# ")
	if !ok {
		return nil, fmt.Errorf("stats have no \"# \" header line: %q", truncate(header, 60))
	}
	columns := strings.Split(names, ",")
	for _, name := range []string{"pxname", "svname"} {
		if !slices.Contains(columns, name) {
			return nil, fmt.Errorf("stats header lacks column %q", name)
		}
	}

	rd := csv.NewReader(strings.NewReader(body))
	rd.FieldsPerRecord = -1
	rd.ReuseRecord = true
	var stats []Stat
	for {
		record, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("stats: %w", err)
		}
		row, _ := rd.FieldPos(0) // 1 is the first row after the header
		if len(record) > len(columns) {
			return nil, fmt.Errorf("stats row %d has %d columns, the header %d", row, len(record), len(columns))
		}
		fields := make(map[string]string, len(record))
		for i, v := range record {
			if name := columns[i]; name != "" {
				if _, seen := fields[name]; !seen {
					fields[name] = v
				}
			}
		}
		s := Stat{
			Proxy:       fields["pxname"],
			Server:      fields["svname"],
			Status:      fields["status"],
			CheckStatus: fields["check_status"],
			AgentStatus: fields["agent_status"],
			LastAgt:     fields["last_agt"],
			Addr:        fields["addr"],
			Fields:      fields,
		}
		if s.Proxy == "" || s.Server == "" {
			return nil, fmt.Errorf("stats row %d has no pxname or svname", row)
		}
		for _, c := range []struct {
			name string
			dst  *int
		}{
			{"weight", &s.Weight},
			{"uweight", &s.UWeight},
			{"scur", &s.Scur},
			{"slim", &s.Slim},
		} {
			v := fields[c.name]
			if v == "" {
				continue // not applicable to this row, or no limit
			}
			n, err := parseCount(v)
			if err != nil {
				return nil, fmt.Errorf("stats row %d: %s: %w", row, c.name, err)
			}
			*c.dst = n
		}
		stats = append(stats, s)
	}
	return stats, nil
}
