package haproxy

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Info is what "show info" says about the HAProxy process.
type Info struct {
	// PID and UptimeSec change when HAProxy restarts or reloads, which
	// drops runtime changes made without a server-state-file.
	PID       int
	UptimeSec int64
	Version   string
	Node      string // the "node" name, the host name by default
	// Fields holds every line by its name ("Pid", "CurrConns", ...).
	Fields map[string]string
}

// Info reads "show info".
func (r *Runtime) Info(ctx context.Context) (Info, error) {
	const command = "show info"
	out, err := r.Execute(ctx, command)
	if err != nil {
		return Info{}, err
	}
	info, err := parseInfo(out)
	if err != nil {
		return Info{}, fmt.Errorf("haproxy %s: %s: %w", r.endpoint, command, err)
	}
	return info, nil
}

// parseInfo parses "show info" output, one "Name: value" per line.
func parseInfo(out string) (Info, error) {
	info := Info{Fields: make(map[string]string)}
	for _, line := range strings.Split(out, "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" {
			continue
		}
		if _, seen := info.Fields[name]; !seen {
			info.Fields[name] = strings.TrimSpace(value)
		}
	}
	pid, err := strconv.ParseInt(info.Fields["Pid"], 10, 32)
	if err != nil || pid <= 0 {
		return Info{}, fmt.Errorf("info has no valid Pid: %q", truncate(info.Fields["Pid"], 40))
	}
	uptime, err := strconv.ParseInt(info.Fields["Uptime_sec"], 10, 64)
	if err != nil || uptime < 0 {
		return Info{}, fmt.Errorf("info has no valid Uptime_sec: %q", truncate(info.Fields["Uptime_sec"], 40))
	}
	info.PID = int(pid)
	info.UptimeSec = uptime
	info.Version = info.Fields["Version"]
	info.Node = info.Fields["node"]
	return info, nil
}

// CLILevel is the stats socket's level: "user", "operator" or "admin".
func (r *Runtime) CLILevel(ctx context.Context) (string, error) {
	const command = "show cli level"
	out, err := r.Execute(ctx, command)
	if err != nil {
		return "", err
	}
	level := strings.TrimSpace(out)
	switch level {
	case "user", "operator", "admin":
		return level, nil
	}
	return "", fmt.Errorf("haproxy %s: %s: unexpected reply %q", r.endpoint, command, truncate(level, 60))
}
