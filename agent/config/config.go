package config

import (
	"bytes"
	_ "embed"
	"time"

	"github.com/hafeed/hafeed/agent/policy"
)

// Default paths; the dev config (make run) points them at a local folder.
const (
	DefaultConfigFile    = "/etc/hafeed/hafeed.yaml"
	DefaultControlSocket = "/run/hafeed/control.sock"
	DefaultStateFile     = "/var/lib/hafeed/state.json"
)

// Config is the agent's configuration, as read from YAML.
type Config struct {
	AgentCheck    AgentCheckConfig    `yaml:"agent_check"`
	ControlSocket string              `yaml:"control_socket"`
	StateFile     string              `yaml:"state_file"`
	Interval      time.Duration       `yaml:"interval"`
	Sources       SourcesConfig       `yaml:"sources"`
	Policy        policy.PolicyConfig `yaml:"policy"`
	// HAProxy lists the HAProxy instances whose runtime API hafeed uses to
	// push admin changes, see the backend and close sessions.
	HAProxy   []HAProxyConfig        `yaml:"haproxy"`
	Shed      ShedConfig             `yaml:"shed"`
	Rebalance policy.RebalanceConfig `yaml:"rebalance"`
	// Fleet is what the backend's figures for autoscalers (hafeed fleet,
	// /fleet, the hafeed_backend_* metrics) are computed against.
	Fleet policy.FleetConfig `yaml:"fleet"`
	// SourcePorts watches each HAProxy source address's use of its local
	// ports toward this host.
	SourcePorts SourcePortsConfig `yaml:"source_ports"`
	Metrics     MetricsConfig     `yaml:"metrics"`
	Log         LogConfig         `yaml:"log"`
}

// SourcePortsConfig is how hafeed watches the source ports HAProxy uses to
// reach this host: between one source address and one server ip:port
// there are only as many connections as the source's port range holds.
type SourcePortsConfig struct {
	// Range is the source port range, "LOW-HIGH"; "" reads
	// net.ipv4.ip_local_port_range for a source that is an address of
	// this host, and takes Linux's default 32768-60999 otherwise.
	Range string `yaml:"range"`
	// Warn is the share of its range a source's connections are logged at.
	Warn float64 `yaml:"warn"`
	// Cap is the share of its range from which the reply to that source's
	// server line carries maxconn at it; 0: never.
	Cap float64 `yaml:"cap"`
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
	Via     ShedVia `yaml:"via"`
	HookURL string  `yaml:"hook_url"`
}

// ShedVia is how connections are closed: the values of shed.via.
type ShedVia string

const (
	// ShedViaRuntime has HAProxy close sessions ("shutdown session").
	ShedViaRuntime ShedVia = "runtime"
	// ShedViaHook asks the application to close sockets (shed.hook_url).
	ShedViaHook ShedVia = "hook"
	// ShedViaKernel has the kernel close the sockets on sources.ports
	// (sock_diag SOCK_DESTROY, as ss -K does; needs CAP_NET_ADMIN).
	ShedViaKernel ShedVia = "kernel"
)

// AgentCheckConfig is the agent-check server HAProxy polls.
type AgentCheckConfig struct {
	Listen       string        `yaml:"listen"`
	Allow        []string      `yaml:"allow"`
	Timeout      time.Duration `yaml:"timeout"`
	MaxConns     int           `yaml:"max_conns"`
	ReadyTimeout time.Duration `yaml:"ready_timeout"`
	// Lines is how many server lines of each HAProxy point at this host
	// (past 64k sockets: a line per source address or app port), when no
	// runtime endpoint shows them: the weight is split among them.
	Lines int `yaml:"lines"`
}

// SourcesConfig says what load is sampled.
type SourcesConfig struct {
	Ports []uint16 `yaml:"ports"`
	// CPU is whose CPU counts: host, cgroup, process or none.
	CPU Scope `yaml:"cpu"`
	// Memory and Pressure (PSI "some avg10" of CPU) are host, cgroup or none.
	Memory   Scope `yaml:"memory"`
	Pressure Scope `yaml:"pressure"`
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

// Scope is whose resources a source measures: the values of sources.cpu,
// sources.memory and sources.pressure.
type Scope string

const (
	// ScopeNone leaves the signal out.
	ScopeNone Scope = "none"
	// ScopeHost measures the whole host.
	ScopeHost Scope = "host"
	// ScopeCgroup measures a cgroup v2 group: sources.cgroup, or the group
	// of sources.pid / sources.pidfile.
	ScopeCgroup Scope = "cgroup"
	// ScopeProcess measures the process sources.pid or sources.pidfile
	// names; only sources.cpu has it.
	ScopeProcess Scope = "process"
)

// AppSourceConfig is utilisation the application reports itself.
type AppSourceConfig struct {
	URL       string        `yaml:"url"`
	File      string        `yaml:"file"`
	JSONField string        `yaml:"json_field"`
	Timeout   time.Duration `yaml:"timeout"`
}

// LogConfig is how the agent logs.
type LogConfig struct {
	Format string `yaml:"format"`
	Level  string `yaml:"level"`
}

// Default is the configuration used where no file or flag says otherwise.
func Default() Config {
	return Config{
		AgentCheck: AgentCheckConfig{
			Listen:       ":5555",
			Timeout:      2 * time.Second,
			MaxConns:     256,
			ReadyTimeout: 30 * time.Second,
			Lines:        1,
		},
		ControlSocket: DefaultControlSocket,
		StateFile:     DefaultStateFile,
		Interval:      time.Second,
		Sources: SourcesConfig{
			CPU:         ScopeHost,
			CountBudget: 0.008,
			Memory:      ScopeHost,
			Pressure:    ScopeNone,
			App:         AppSourceConfig{Timeout: time.Second},
			ProcRoot:    "/proc",
			CgroupRoot:  "/sys/fs/cgroup",
		},
		Policy:      policy.DefaultConfig(),
		Shed:        ShedConfig{Via: ShedViaRuntime},
		Rebalance:   policy.DefaultRebalance(),
		Fleet:       policy.DefaultFleet(),
		SourcePorts: SourcePortsConfig{Warn: 0.8, Cap: 0.9},
		Log:         LogConfig{Format: "auto", Level: "info"},
	}
}

//go:embed example.yaml
var exampleConfig []byte

// Example is a commented configuration that Load accepts: every key with
// its default.
func Example() []byte { return bytes.Clone(exampleConfig) }
