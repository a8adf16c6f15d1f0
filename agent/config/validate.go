package config

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"

	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/haproxy"
)

func (c Config) validate(file string, root *yaml.Node) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &Error{File: file, Line: keyLine(root, key), Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	nonFinite(reflect.ValueOf(c), "", bad)
	if err := checkListen(c.AgentCheck.Listen); err != nil {
		bad("agent_check.listen", "%v (for example \":5555\" or \"10.0.0.11:5555\")", err)
	}
	if _, err := ParseAllow(c.AgentCheck.Allow); err != nil {
		bad("agent_check.allow", "%v", err)
	}
	if c.AgentCheck.Timeout <= 0 {
		bad("agent_check.timeout", "must be positive, for example 2s")
	}
	if c.AgentCheck.Lines < 1 || c.AgentCheck.Lines > 64 {
		bad("agent_check.lines", "%d is outside 1..64: the server lines of each HAProxy that point at this host", c.AgentCheck.Lines)
	}
	if c.AgentCheck.MaxConns < 1 {
		bad("agent_check.max_conns", "must be at least 1")
	}
	if c.AgentCheck.ReadyTimeout <= 0 {
		bad("agent_check.ready_timeout", "must be positive, for example 30s")
	}
	switch {
	case c.ControlSocket == "":
		bad("control_socket", "must be a path, for example %s", DefaultControlSocket)
	case len(c.ControlSocket) > haproxy.MaxUnixPath:
		bad("control_socket", "%q is %d bytes, longer than the %d a Unix socket path may have: use a shorter path", c.ControlSocket, len(c.ControlSocket), haproxy.MaxUnixPath)
	case strings.ContainsRune(c.ControlSocket, 0):
		bad("control_socket", "contains a NUL byte")
	}
	if c.StateFile == "" {
		bad("state_file", "must be a path, for example %s", DefaultStateFile)
	} else if strings.ContainsRune(c.StateFile, 0) {
		bad("state_file", "contains a NUL byte")
	}
	if c.Interval < 10*time.Millisecond {
		bad("interval", "%v is too short: use 10ms or more (1s is typical)", c.Interval)
	}
	for _, p := range c.Sources.Ports {
		if p == 0 {
			bad("sources.ports", "port 0 is not a port: list the ports your application listens on, for example [8080, 8443]")
		}
	}
	if len(c.Sources.Ports) > 1000 {
		bad("sources.ports", "%d ports is more than the 1000 supported", len(c.Sources.Ports))
	}
	src := c.Sources
	if !slices.Contains([]Scope{ScopeHost, ScopeCgroup, ScopeProcess, ScopeNone}, src.CPU) {
		bad("sources.cpu", "%q: want host, cgroup, process, or none to leave CPU out", src.CPU)
	}
	for _, s := range []struct {
		key   string
		scope Scope
	}{{"memory", src.Memory}, {"pressure", src.Pressure}} {
		if !slices.Contains([]Scope{ScopeHost, ScopeCgroup, ScopeNone}, s.scope) {
			bad("sources."+s.key, "%q: want host, cgroup or none", s.scope)
		}
	}
	if src.CPU == ScopeProcess && src.PID == 0 && src.PIDFile == "" {
		bad("sources.cpu", "process needs sources.pid or sources.pidfile")
	}
	usesCgroup := src.CPU == ScopeCgroup || src.Memory == ScopeCgroup || src.Pressure == ScopeCgroup
	if usesCgroup && src.Cgroup == "" && src.PID == 0 && src.PIDFile == "" {
		bad("sources.cgroup", "the cgroup scope needs a group (e.g. /system.slice/ws.service), or sources.pid / sources.pidfile to find it")
	}
	if src.CountBudget < 0 || src.CountBudget > 1 {
		bad("sources.count_budget", "%v is outside 0..1: the share of one core counting connections may use, for example 0.01", src.CountBudget)
	}
	if src.PID < 0 {
		bad("sources.pid", "must not be negative")
	}
	if src.App.URL != "" && src.App.File != "" {
		bad("sources.app", "set url or file, not both")
	}
	if src.App.URL != "" {
		if u, err := url.Parse(src.App.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("sources.app.url", "%q is not an http(s) URL, for example http://127.0.0.1:8080/load", src.App.URL)
		}
	}
	if src.App.Timeout <= 0 {
		bad("sources.app.timeout", "must be positive, for example 1s")
	}
	if src.ProcRoot == "" {
		bad("sources.proc_root", "must be a path, normally /proc")
	}
	if src.CgroupRoot == "" {
		bad("sources.cgroup_root", "must be a path, normally /sys/fs/cgroup")
	}
	pc := c.Policy
	if pc.ReferenceCapacity < 1 {
		bad("policy.reference_capacity", "must be at least 1: the connections a host with weight 100%% holds at its targets, the same on every host")
	}
	for _, t := range []struct {
		key string
		v   float64
	}{{"cpu", pc.Targets.CPU}, {"memory", pc.Targets.Memory}, {"pressure", pc.Targets.Pressure}, {"app", pc.Targets.App}} {
		if t.v < 0 || t.v > 1 {
			bad("policy.targets."+t.key, "%v is outside 0..1: it is the fraction counted as full load (0 leaves the signal out)", t.v)
		}
	}
	if pc.Targets.Connections < 0 {
		bad("policy.targets.connections", "must not be negative (0 leaves connections out of the utilisation)")
	}
	for _, name := range slices.Sorted(maps.Keys(pc.Mix)) {
		w := pc.Mix[name]
		if !policy.IsSignal(name) {
			bad("policy.mix", "unknown signal %q: want cpu, memory, pressure, app or connections", name)
		} else if w < 0 {
			bad("policy.mix."+name, "weight %v must not be negative", w)
		}
	}
	if pc.Smoothing < 0 {
		bad("policy.smoothing", "must not be negative")
	}
	if pc.DeadBand < 0 || pc.DeadBand >= 1 {
		bad("policy.dead_band", "%v is outside [0, 1): it is the relative weight change not worth reporting, for example 0.05", pc.DeadBand)
	}
	if pc.MaxStep <= 0 {
		bad("policy.max_step", "must be positive: the largest relative weight change per second, for example 0.25")
	}
	if pc.Blackout < 0 {
		bad("policy.blackout", "must not be negative")
	}
	if pc.IdleUtilisation < 0 || pc.IdleUtilisation >= 1 {
		bad("policy.idle_utilisation", "%v is outside [0, 1)", pc.IdleUtilisation)
	}
	if pc.MinConnections < 1 {
		bad("policy.min_connections", "must be at least 1")
	}
	if pc.HighWater < 0 || (pc.HighWater > 0 && pc.HighWater < 0.5) {
		bad("policy.high_water", "%v: use 0 to turn the overload guard off, or a utilisation of 0.5 or more (1.25 is typical)", pc.HighWater)
	}
	if pc.Maxconn < 0 {
		bad("policy.maxconn", "must not be negative (0 means unlimited)")
	}
	if pc.StaleAfter <= 0 {
		bad("policy.stale_after", "must be positive, for example 10s")
	}
	// Each HAProxy once: listed twice, its sessions are closed and its
	// connections counted twice, so rebalancing sheds at twice its rate.
	// One HAProxy may be listed once per backend/server pair this host is
	// in; a listing without them finds every line of this host, so it
	// stands alone.
	var (
		anyOf   = map[string]int{} // endpoint: its first listing
		wholeOf = map[string]int{} // endpoint: its listing without backend/server
		pairOf  = map[string]int{} // endpoint backend/server: its listing
	)
	for i, h := range c.HAProxy {
		key := fmt.Sprintf("haproxy[%d]", i)
		canon, err := haproxy.CanonicalEndpoint(h.Runtime)
		if err != nil {
			bad(key+".runtime", "%v", err)
		} else {
			pair := canon + " " + h.Backend + "/" + h.Server
			j, again := wholeOf[canon]
			if !again && h.Backend == "" {
				j, again = anyOf[canon]
			}
			if !again && h.Backend != "" {
				j, again = pairOf[pair]
			}
			if again {
				bad(key+".runtime", "%s is haproxy[%d]'s HAProxy again: list each HAProxy once, or its connections count twice and rebalancing sheds at twice max_rate "+
					"(one HAProxy may be listed once per backend/server pair, but not beside a listing without them, which finds every line of this host)", h.Runtime, j)
			}
			if _, ok := anyOf[canon]; !ok {
				anyOf[canon] = i
			}
			if h.Backend == "" {
				wholeOf[canon] = i
			} else {
				pairOf[pair] = i
			}
		}
		if (h.Backend == "") != (h.Server == "") {
			bad(key, "set both backend and server, or neither to find this host in show servers state")
		}
		for _, f := range []struct{ field, name string }{{"backend", h.Backend}, {"server", h.Server}} {
			if f.name == "" {
				continue
			}
			if err := haproxy.ValidateName(f.field, f.name); err != nil {
				bad(key+"."+f.field, "%v", err)
			}
		}
	}
	switch c.Shed.Via {
	case ShedViaRuntime:
	case ShedViaHook:
		if c.Shed.HookURL == "" {
			bad("shed.hook_url", "shed.via: hook needs the application's URL, for example http://127.0.0.1:8080/hafeed/shed")
		}
	case ShedViaKernel:
		if len(c.Sources.Ports) == 0 {
			bad("shed.via", "shed.via: kernel closes the established connections on sources.ports, which is empty: list the application's ports, e.g. sources.ports: [8080] (with none it would close every service's connections, ssh's too)")
		}
	default:
		bad("shed.via", "%q: want runtime (HAProxy closes sessions), hook (the application closes sockets) or kernel (the kernel closes the sockets on sources.ports)", c.Shed.Via)
	}
	if c.Shed.HookURL != "" {
		if u, err := url.Parse(c.Shed.HookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("shed.hook_url", "%q is not an http(s) URL, for example http://127.0.0.1:8080/hafeed/shed", c.Shed.HookURL)
		}
	}
	if c.Shed.Via == ShedViaRuntime && c.Rebalance.Enabled && len(c.HAProxy) == 0 {
		bad("shed.via", "rebalance with shed.via: runtime needs at least one haproxy[].runtime endpoint, or use shed.via: hook")
	}
	rb := c.Rebalance
	if rb.Margin < 0 {
		bad("rebalance.margin", "must not be negative (0.1 sheds above 110%% of the fair share)")
	}
	if rb.Sustain < 0 || rb.Cooldown < 0 {
		bad("rebalance", "sustain and cooldown must not be negative")
	}
	if rb.MaxRate <= 0 || rb.MaxRate > 1 {
		bad("rebalance.max_rate", "%v is outside (0, 1]: the fraction of the host's connections shed per second, for example 0.01", rb.MaxRate)
	}
	if rb.HighWater <= 0 {
		bad("rebalance.high_water", "must be positive (1.0 is the utilisation at the targets)")
	}
	if fl := c.Fleet; fl.TargetUtilisation <= 0 || fl.TargetUtilisation > 2 {
		bad("fleet.target_utilisation", "%v is outside (0, 2]: the backend utilisation (1 = every host at its targets) to size the farm for, for example 0.75", fl.TargetUtilisation)
	}
	if fl := c.Fleet; fl.Tolerance < 0 || fl.Tolerance >= 1 {
		bad("fleet.tolerance", "%v is outside [0, 1): how far from the target, as a fraction of it, desired_servers lets the utilisation go, for example 0.1", fl.Tolerance)
	}
	if c.Fleet.Settle < 0 {
		bad("fleet.settle", "must not be negative, for example 2m")
	}
	if sp := c.SourcePorts; sp.Range != "" {
		if _, err := ParsePortRange(sp.Range); err != nil {
			bad("source_ports.range", "%v", err)
		}
	}
	if sp := c.SourcePorts; sp.Warn <= 0 || sp.Warn > 1 {
		bad("source_ports.warn", "%v is outside (0, 1]: the share of a source's port range its connections are logged at, for example 0.8", sp.Warn)
	}
	if sp := c.SourcePorts; sp.Cap < 0 || sp.Cap > 1 {
		bad("source_ports.cap", "%v is outside [0, 1]: the share of a source's port range from which its server line gets maxconn, for example 0.9; 0 turns it off", sp.Cap)
	}
	if c.Metrics.Listen != "" {
		if err := checkListen(c.Metrics.Listen); err != nil {
			bad("metrics.listen", "%v (for example \"127.0.0.1:9555\"), or \"\" to turn metrics off", err)
		} else if c.Metrics.Listen == c.AgentCheck.Listen && PortOf(c.Metrics.Listen) != 0 {
			bad("metrics.listen", "%q is agent_check.listen too: give metrics a port of its own", c.Metrics.Listen)
		}
	}
	if !slices.Contains([]string{"auto", "json", "console"}, c.Log.Format) {
		bad("log.format", "%q: want auto, json or console", c.Log.Format)
	}
	if _, err := ParseLevel(c.Log.Level); err != nil {
		bad("log.level", "%v", err)
	}
	return errors.Join(errs...)
}

// checkListen checks a TCP listen address as net.Listen would take it: an
// optional IP address or host name, and a numeric port.
func checkListen(addr string) error {
	if strings.ContainsRune(addr, 0) {
		return fmt.Errorf("%q contains a NUL byte", addr)
	}
	if scheme, _, ok := strings.Cut(addr, "://"); ok {
		return fmt.Errorf("%q: a listen address takes no scheme (%s://): write host:port", addr, scheme)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if !isHostName(host) {
		return fmt.Errorf("%q: %q is neither an IP address nor a host name", addr, host)
	}
	return nil
}

// isHostName says whether s is made of DNS labels.
func isHostName(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// PortOf returns the port of a host:port address such as
// agent_check.listen, 0 if it has none.
func PortOf(addr string) uint16 {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return 0
	}
	return uint16(n)
}

// nonFinite reports every float in v (a Config, walked by its yaml keys)
// that is NaN or infinite: no comparison rejects NaN, and either would
// poison the arithmetic and the JSON of every reply.
func nonFinite(v reflect.Value, key string, bad func(key, format string, args ...any)) {
	join := func(name string) string {
		if key == "" {
			return name
		}
		return key + "." + name
	}
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			bad(key, "%v is not a finite number", f)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			nonFinite(v.Field(i), join(name), bad)
		}
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		for _, k := range keys {
			nonFinite(v.MapIndex(k), join(fmt.Sprint(k)), bad)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			nonFinite(v.Index(i), fmt.Sprintf("%s[%d]", key, i), bad)
		}
	}
}

// Validate checks a configuration built in code or changed by flags.
func (c Config) Validate(source string) error { return c.validate(source, nil) }

// keyLine finds the line of a dotted key ("haproxy[0].runtime") in a YAML
// mapping; it stops at the deepest part it finds, 0 if none.
func keyLine(n *yaml.Node, key string) int {
	if n == nil {
		return 0
	}
	line := 0
	for _, part := range strings.Split(key, ".") {
		name, index, hasIndex := strings.Cut(strings.TrimSuffix(part, "]"), "[")
		if n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == name {
				line, next = n.Content[i].Line, n.Content[i+1]
				break
			}
		}
		if next == nil {
			return line
		}
		if hasIndex {
			i, err := strconv.Atoi(index)
			if err != nil || next.Kind != yaml.SequenceNode || i >= len(next.Content) {
				return line
			}
			next = next.Content[i]
			line = next.Line
		}
		n = next
	}
	return line
}

// ParseAllow parses agent_check.allow: CIDR prefixes or single addresses,
// each as the agent-check server matches it (haproxy.ParseAllow).
func ParseAllow(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		p, err := haproxy.ParseAllow(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// ParseLevel parses log.level.
func ParseLevel(s string) (zerolog.Level, error) {
	l, err := zerolog.ParseLevel(s)
	if err != nil || s == "" {
		return 0, fmt.Errorf("%q is not a log level: want trace, debug, info, warn or error", s)
	}
	return l, nil
}
