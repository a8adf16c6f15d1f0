package agent

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Default paths; the dev config (make run) points them at a local folder.
const (
	DefaultConfigFile    = "/etc/hafeed/hafeed.yaml"
	DefaultControlSocket = "/run/hafeed/control.sock"
	DefaultStateFile     = "/var/lib/hafeed/state.json"
)

// Config is the agent's configuration, as read from YAML.
type Config struct {
	AgentCheck    AgentCheckConfig `yaml:"agent_check"`
	ControlSocket string           `yaml:"control_socket"`
	StateFile     string           `yaml:"state_file"`
	Interval      time.Duration    `yaml:"interval"`
	Sources       SourcesConfig    `yaml:"sources"`
	Policy        PolicyConfig     `yaml:"policy"`
	// HAProxy lists the HAProxy instances whose runtime API hafeed uses to
	// push admin changes, see the backend and close sessions.
	HAProxy   []HAProxyConfig `yaml:"haproxy"`
	Shed      ShedConfig      `yaml:"shed"`
	Rebalance RebalanceConfig `yaml:"rebalance"`
	Metrics   MetricsConfig   `yaml:"metrics"`
	Log       LogConfig       `yaml:"log"`
}

// MetricsConfig is the optional Prometheus endpoint.
type MetricsConfig struct {
	// Listen is the address of /metrics, e.g. 127.0.0.1:9555; "" is off.
	Listen string `yaml:"listen"`
}

// HAProxyConfig is one HAProxy this host sits behind.
type HAProxyConfig struct {
	// Runtime is the stats socket: unix:///run/haproxy/admin.sock or
	// tcp://127.0.0.1:9999.
	Runtime string `yaml:"runtime"`
	// Backend and Server name this host; empty: found by matching this
	// host's addresses and ports in "show servers state".
	Backend string `yaml:"backend"`
	Server  string `yaml:"server"`
}

// ShedConfig is how hafeed closes connections to move them.
type ShedConfig struct {
	// Via is runtime (HAProxy's "shutdown session") or hook (an HTTP POST
	// asking the application to close sockets with a WebSocket close 1012).
	Via     string `yaml:"via"`
	HookURL string `yaml:"hook_url"`
}

// RebalanceConfig moves connections off a host that holds more than its
// share, after scale-up.
type RebalanceConfig struct {
	Enabled bool `yaml:"enabled"`
	// Margin is how far above its fair share (a fraction) the host must be.
	Margin float64 `yaml:"margin"`
	// Sustain is how long it must stay there before shedding.
	Sustain time.Duration `yaml:"sustain"`
	// MaxRate bounds shedding, as a fraction of the host's connections per second.
	MaxRate float64 `yaml:"max_rate"`
	// Cooldown is the pause after a round of shedding.
	Cooldown time.Duration `yaml:"cooldown"`
	// HighWater is the utilisation that triggers shedding when no runtime
	// endpoint shows the backend.
	HighWater float64 `yaml:"high_water"`
}

// AgentCheckConfig is the agent-check server HAProxy polls.
type AgentCheckConfig struct {
	Listen       string        `yaml:"listen"`
	Allow        []string      `yaml:"allow"`
	Timeout      time.Duration `yaml:"timeout"`
	MaxConns     int           `yaml:"max_conns"`
	ReadyTimeout time.Duration `yaml:"ready_timeout"`
}

// SourcesConfig says what load is sampled.
type SourcesConfig struct {
	Ports []uint16 `yaml:"ports"`
	// CPU is whose CPU counts: host, cgroup, process or none.
	CPU string `yaml:"cpu"`
	// Memory and Pressure (PSI "some avg10" of CPU) are host, cgroup or none.
	Memory   string `yaml:"memory"`
	Pressure string `yaml:"pressure"`
	// Cgroup is the cgroup v2 group measured by the "cgroup" scope, e.g.
	// /system.slice/ws.service; "" is the group of PID or PIDFile.
	Cgroup string `yaml:"cgroup"`
	// PID or PIDFile names the process measured by the "process" scope.
	PID     int             `yaml:"pid"`
	PIDFile string          `yaml:"pidfile"`
	App     AppSourceConfig `yaml:"app"`
	// CountBudget is the share of one core that counting connections may
	// use; with very many connections they are counted less often than
	// every sample. 0 counts every sample.
	CountBudget float64 `yaml:"count_budget"`
	// ProcRoot and CgroupRoot are where procfs and cgroup2 are mounted.
	ProcRoot   string `yaml:"proc_root"`
	CgroupRoot string `yaml:"cgroup_root"`
}

// AppSourceConfig is utilisation the application reports itself.
type AppSourceConfig struct {
	URL       string        `yaml:"url"`
	File      string        `yaml:"file"`
	JSONField string        `yaml:"json_field"`
	Timeout   time.Duration `yaml:"timeout"`
}

// PolicyConfig turns load into a weight; see PolicyConfig.Step.
type PolicyConfig struct {
	// ReferenceCapacity is the capacity, in connections at target
	// utilisation, that weight 100% stands for; the same on every host.
	ReferenceCapacity int                `yaml:"reference_capacity"`
	Targets           Targets            `yaml:"targets"`
	Mix               map[string]float64 `yaml:"mix"`
	Smoothing         time.Duration      `yaml:"smoothing"`
	DeadBand          float64            `yaml:"dead_band"`
	MaxStep           float64            `yaml:"max_step"`
	Blackout          time.Duration      `yaml:"blackout"`
	IdleUtilisation   float64            `yaml:"idle_utilisation"`
	MinConnections    int                `yaml:"min_connections"`
	HighWater         float64            `yaml:"high_water"`
	Maxconn           int                `yaml:"maxconn"`
	StaleAfter        time.Duration      `yaml:"stale_after"`
}

// Targets are the values at which each signal counts as full load.
type Targets struct {
	CPU         float64 `yaml:"cpu"`
	Memory      float64 `yaml:"memory"`
	Pressure    float64 `yaml:"pressure"`
	App         float64 `yaml:"app"`
	Connections int     `yaml:"connections"`
}

// Signal names, as used in targets, mix, status and logs.
const (
	SignalCPU         = "cpu"
	SignalMemory      = "memory"
	SignalPressure    = "pressure"
	SignalApp         = "app"
	SignalConnections = "connections"
)

func isSignal(name string) bool {
	return slices.Contains([]string{SignalCPU, SignalMemory, SignalPressure, SignalApp, SignalConnections}, name)
}

func (t Targets) of(signal string) float64 {
	switch signal {
	case SignalCPU:
		return t.CPU
	case SignalMemory:
		return t.Memory
	case SignalPressure:
		return t.Pressure
	case SignalApp:
		return t.App
	case SignalConnections:
		return float64(t.Connections)
	}
	return 0
}

// LogConfig is how the agent logs.
type LogConfig struct {
	Format string `yaml:"format"`
	Level  string `yaml:"level"`
}

// DefaultConfig is the configuration used where no file or flag says otherwise.
func DefaultConfig() Config {
	return Config{
		AgentCheck: AgentCheckConfig{
			Listen:       ":5555",
			Timeout:      2 * time.Second,
			MaxConns:     256,
			ReadyTimeout: 30 * time.Second,
		},
		ControlSocket: DefaultControlSocket,
		StateFile:     DefaultStateFile,
		Interval:      time.Second,
		Sources: SourcesConfig{
			CPU:         "host",
			CountBudget: 0.01,
			Memory:      "host",
			Pressure:    "none",
			App:         AppSourceConfig{Timeout: time.Second},
			ProcRoot:    "/proc",
			CgroupRoot:  "/sys/fs/cgroup",
		},
		Policy: PolicyConfig{
			ReferenceCapacity: 10000,
			Targets:           Targets{CPU: 0.8, Memory: 0.9, Pressure: 0.5, App: 0.8},
			Smoothing:         10 * time.Second,
			DeadBand:          0.02,
			MaxStep:           0.25,
			Blackout:          10 * time.Second,
			IdleUtilisation:   0.05,
			MinConnections:    10,
			HighWater:         1.2,
			StaleAfter:        10 * time.Second,
		},
		Shed: ShedConfig{Via: "runtime"},
		Rebalance: RebalanceConfig{
			Margin:    0.1,
			Sustain:   30 * time.Second,
			MaxRate:   0.01,
			Cooldown:  time.Minute,
			HighWater: 1.0,
		},
		Log: LogConfig{Format: "auto", Level: "info"},
	}
}

//go:embed example.yaml
var exampleConfig []byte

// ExampleConfig is a commented configuration that LoadConfig accepts.
func ExampleConfig() []byte { return bytes.Clone(exampleConfig) }

// ConfigError is one problem with a configuration, located in its file.
type ConfigError struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Key != "" {
		b.WriteString(": " + e.Key)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// LoadConfig reads a YAML file over the defaults. Unknown keys are errors;
// every error names the file, the line and the key.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading config: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig is LoadConfig for bytes already read; name labels errors.
func ParseConfig(name string, data []byte) (Config, error) {
	cfg := DefaultConfig()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Config{}, &ConfigError{File: name, Line: yamlErrorLine(err), Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if len(doc.Content) == 0 {
		return cfg, cfg.validate(name, nil) // an empty file means defaults
	}
	root := doc.Content[0]
	errs := checkKeys(name, root, reflect.TypeOf(cfg), "")
	if err := root.Decode(&cfg); err != nil {
		return Config{}, errors.Join(append(errs, decodeError(name, err))...)
	}
	if err := cfg.validate(name, root); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return cfg, nil
}

// checkKeys reports every mapping key that has no field in t.
func checkKeys(file string, n *yaml.Node, t reflect.Type, path string) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode {
		var errs []error
		for i, item := range n.Content {
			errs = append(errs, checkKeys(file, item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
		return errs
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeOf(time.Duration(0)) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		return []error{&ConfigError{File: file, Line: n.Line, Key: strings.TrimPrefix(path, "."), Msg: "must be a mapping of keys"}}
	}
	fields := map[string]reflect.Type{}
	var known []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = f.Type
		known = append(known, name)
	}
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := path + "." + k.Value
		ft, ok := fields[k.Value]
		if !ok {
			errs = append(errs, &ConfigError{File: file, Line: k.Line, Key: strings.TrimPrefix(key, "."),
				Msg: "unknown key; known keys here: " + strings.Join(known, ", ")})
			continue
		}
		errs = append(errs, checkKeys(file, v, ft, key)...)
	}
	return errs
}

// decodeError turns yaml's type errors ("line 3: cannot unmarshal ...")
// into ConfigErrors that name the file.
func decodeError(file string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return &ConfigError{File: file, Msg: err.Error()}
	}
	var errs []error
	for _, msg := range te.Errors {
		line := 0
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			num, tail, _ := strings.Cut(rest, ": ")
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, tail
			}
		}
		errs = append(errs, &ConfigError{File: file, Line: line, Msg: msg})
	}
	return errors.Join(errs...)
}

func yamlErrorLine(err error) int {
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		digits := strings.FieldsFunc(msg[i+5:], func(r rune) bool { return r < '0' || r > '9' })
		if len(digits) > 0 {
			n, _ := strconv.Atoi(digits[0])
			return n
		}
	}
	return 0
}

// validate checks values; root, when not nil, locates keys for messages.
func (c Config) validate(file string, root *yaml.Node) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &ConfigError{File: file, Line: keyLine(root, key), Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if _, _, err := net.SplitHostPort(c.AgentCheck.Listen); err != nil {
		bad("agent_check.listen", "%q is not host:port (for example \":5555\" or \"10.0.0.11:5555\")", c.AgentCheck.Listen)
	}
	if _, err := ParseAllow(c.AgentCheck.Allow); err != nil {
		bad("agent_check.allow", "%v", err)
	}
	if c.AgentCheck.Timeout <= 0 {
		bad("agent_check.timeout", "must be positive, for example 2s")
	}
	if c.AgentCheck.MaxConns < 1 {
		bad("agent_check.max_conns", "must be at least 1")
	}
	if c.AgentCheck.ReadyTimeout <= 0 {
		bad("agent_check.ready_timeout", "must be positive, for example 30s")
	}
	if c.ControlSocket == "" {
		bad("control_socket", "must be a path, for example %s", DefaultControlSocket)
	}
	if c.StateFile == "" {
		bad("state_file", "must be a path, for example %s", DefaultStateFile)
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
	if !slices.Contains([]string{"host", "cgroup", "process", "none"}, src.CPU) {
		bad("sources.cpu", "%q: want host, cgroup, process, or none to leave CPU out", src.CPU)
	}
	for key, v := range map[string]string{"memory": src.Memory, "pressure": src.Pressure} {
		if !slices.Contains([]string{"host", "cgroup", "none"}, v) {
			bad("sources."+key, "%q: want host, cgroup or none", v)
		}
	}
	if src.CPU == "process" && src.PID == 0 && src.PIDFile == "" {
		bad("sources.cpu", "process needs sources.pid or sources.pidfile")
	}
	usesCgroup := src.CPU == "cgroup" || src.Memory == "cgroup" || src.Pressure == "cgroup"
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
	for key, v := range map[string]float64{"cpu": pc.Targets.CPU, "memory": pc.Targets.Memory, "pressure": pc.Targets.Pressure, "app": pc.Targets.App} {
		if v < 0 || v > 1 {
			bad("policy.targets."+key, "%v is outside 0..1: it is the fraction counted as full load (0 leaves the signal out)", v)
		}
	}
	if pc.Targets.Connections < 0 {
		bad("policy.targets.connections", "must not be negative (0 leaves connections out of the utilisation)")
	}
	for name, w := range pc.Mix {
		if !isSignal(name) {
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
		bad("policy.max_step", "must be positive: the largest relative weight change per sample, for example 0.25")
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
	for i, h := range c.HAProxy {
		key := fmt.Sprintf("haproxy[%d]", i)
		if _, err := parseRuntimeEndpoint(h.Runtime); err != nil {
			bad(key+".runtime", "%v", err)
		}
		if (h.Backend == "") != (h.Server == "") {
			bad(key, "set both backend and server, or neither to find this host in show servers state")
		}
		for field, name := range map[string]string{"backend": h.Backend, "server": h.Server} {
			if strings.ContainsAny(name, "; \\\t\r\n/") {
				bad(key+"."+field, "%q contains a character HAProxy names cannot have", name)
			}
		}
	}
	switch c.Shed.Via {
	case "runtime":
	case "hook":
		if c.Shed.HookURL == "" {
			bad("shed.hook_url", "shed.via: hook needs the application's URL, for example http://127.0.0.1:8080/hafeed/shed")
		}
	default:
		bad("shed.via", "%q: want runtime (HAProxy closes sessions) or hook (the application closes sockets)", c.Shed.Via)
	}
	if c.Shed.HookURL != "" {
		if u, err := url.Parse(c.Shed.HookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("shed.hook_url", "%q is not an http(s) URL, for example http://127.0.0.1:8080/hafeed/shed", c.Shed.HookURL)
		}
	}
	if c.Shed.Via == "runtime" && c.Rebalance.Enabled && len(c.HAProxy) == 0 {
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
	if c.Metrics.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			bad("metrics.listen", "%q is not host:port (for example \"127.0.0.1:9555\"), or \"\" to turn metrics off", c.Metrics.Listen)
		}
	}
	if !slices.Contains([]string{"auto", "json", "console"}, c.Log.Format) {
		bad("log.format", "%q: want auto, json or console", c.Log.Format)
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		bad("log.level", "%v", err)
	}
	return errors.Join(errs...)
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

// ParseAllow parses agent_check.allow: CIDR prefixes or single addresses.
func ParseAllow(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR prefix (10.0.0.0/8) nor an address", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// parseRuntimeEndpoint checks a runtime API address: unix:///path, a bare
// absolute path, or tcp://host:port.
func parseRuntimeEndpoint(s string) (string, error) {
	switch {
	case strings.HasPrefix(s, "unix://"):
		if p := strings.TrimPrefix(s, "unix://"); strings.HasPrefix(p, "/") {
			return s, nil
		}
	case strings.HasPrefix(s, "/"):
		return "unix://" + s, nil
	case strings.HasPrefix(s, "tcp://"):
		if _, _, err := net.SplitHostPort(strings.TrimPrefix(s, "tcp://")); err == nil {
			return s, nil
		}
	}
	return "", fmt.Errorf("%q is not a runtime API address: use unix:///run/haproxy/admin.sock or tcp://127.0.0.1:9999", s)
}
