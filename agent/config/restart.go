package config

import "slices"

// restartOnly are the keys a running agent cannot change: the listeners
// and files it holds open, and the log format of its logger. keep sets the
// key in next to its value in prev and says whether the two differed.
var restartOnly = []struct {
	key  string
	keep func(prev Config, next *Config) bool
}{
	{"agent_check.listen", func(p Config, n *Config) bool { return keep(&n.AgentCheck.Listen, p.AgentCheck.Listen) }},
	{"agent_check.timeout", func(p Config, n *Config) bool { return keep(&n.AgentCheck.Timeout, p.AgentCheck.Timeout) }},
	{"agent_check.max_conns", func(p Config, n *Config) bool { return keep(&n.AgentCheck.MaxConns, p.AgentCheck.MaxConns) }},
	{"control_socket", func(p Config, n *Config) bool { return keep(&n.ControlSocket, p.ControlSocket) }},
	{"state_file", func(p Config, n *Config) bool { return keep(&n.StateFile, p.StateFile) }},
	{"log.format", func(p Config, n *Config) bool { return keep(&n.Log.Format, p.Log.Format) }},
	{"metrics.listen", func(p Config, n *Config) bool { return keep(&n.Metrics.Listen, p.Metrics.Listen) }},
}

// keep sets *next to prev and says whether it was different.
func keep[T comparable](next *T, prev T) bool {
	changed := *next != prev
	*next = prev
	return changed
}

// RestartOnlyKeys are the keys that take effect only when the agent
// restarts, as the documentation lists them.
func RestartOnlyKeys() []string {
	keys := make([]string, len(restartOnly))
	for i, r := range restartOnly {
		keys[i] = r.key
	}
	return keys
}

// RestartOnly is what a reload from prev to next applies: next with the
// keys that take effect only on restart kept at their running values in
// prev, and the keys among them that next changed, sorted.
func RestartOnly(prev, next Config) (Config, []string) {
	var changed []string
	for _, r := range restartOnly {
		if r.keep(prev, &next) {
			changed = append(changed, r.key)
		}
	}
	slices.Sort(changed)
	return next, changed
}
