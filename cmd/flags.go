package cmd

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/internal/termsafe"
)

// configFlags are the flags of `hafeed run` that override the config file.
// A flag means the same on every command that takes it, and a command takes
// only the groups it uses (flagGroups).
type configFlags struct {
	groups        flagGroups
	file          string
	agentListen   string
	controlSocket string
	stateFile     string
	ports         string
	interval      time.Duration
	logFormat     string
	logLevel      string
}

// flagGroups says which of run's flags a command takes.
type flagGroups uint8

const (
	// withConfig is --config: every command that reads the config file.
	withConfig flagGroups = 1 << iota
	// withSocket is --control-socket: the commands that talk to the agent,
	// and those that check or run it.
	withSocket
	// withSources are the flags that change what a sample counts:
	// --ports, and --agent-listen, whose port is never counted.
	withSources
	// withDaemon are the flags only the running agent uses: --state-file,
	// --interval and --log-*.
	withDaemon

	// clientFlags are those of drain, ready, maint and status, which act on
	// the running agent and its own configuration; status, which samples
	// load too, adds withSources.
	clientFlags = withConfig | withSocket
	// sampleFlags are those of sample, which samples load as run would.
	sampleFlags = withConfig | withSources
	// allFlags are those of run, and of config check, which reads the
	// configuration exactly as run does.
	allFlags = withConfig | withSocket | withSources | withDaemon
)

func (f *configFlags) register(c *cobra.Command, groups flagGroups) {
	f.groups = groups
	fs := c.Flags()
	if groups&withConfig != 0 {
		fs.StringVarP(&f.file, "config", "c", "", "config file (default $HAFEED_CONFIG, else "+config.DefaultConfigFile+" if it exists)")
	}
	if groups&withSources != 0 {
		fs.StringVar(&f.ports, "ports", "", "local ports whose established inbound connections count as load, e.g. 8080,8443 (default: every listening port)")
		fs.StringVar(&f.agentListen, "agent-listen", "", `agent-check address HAProxy polls (default ":5555"); its port never counts as load`)
	}
	if groups&withSocket != 0 {
		fs.StringVar(&f.controlSocket, "control-socket", "", "control socket of the agent (default $HAFEED_CONTROL_SOCKET, else "+config.DefaultControlSocket+")")
	}
	if groups&withDaemon != 0 {
		fs.StringVar(&f.stateFile, "state-file", "", "file that keeps the admin state across restarts (default "+config.DefaultStateFile+")")
		fs.DurationVar(&f.interval, "interval", 0, "sampling interval (default 1s)")
		fs.StringVar(&f.logFormat, "log-format", "", "log format: auto, json or console (default auto)")
		fs.StringVar(&f.logLevel, "log-level", "", "log level: trace, debug, info, warn or error (default info)")
	}
}

// sourcesGiven says whether a source flag was given on the command line.
func (f *configFlags) sourcesGiven(c *cobra.Command) bool {
	return f.groups&withSources != 0 && (c.Flags().Changed("ports") || c.Flags().Changed("agent-listen"))
}

// configPath says which file to read: the flag, $HAFEED_CONFIG, or the
// default path when it exists; "" means defaults only.
func (f *configFlags) configPath() (path string, explicit bool) {
	if f.file != "" {
		return f.file, true
	}
	if env := os.Getenv("HAFEED_CONFIG"); env != "" {
		return env, true
	}
	if _, err := os.Stat(config.DefaultConfigFile); err == nil {
		return config.DefaultConfigFile, false
	}
	return "", false
}

// load reads the config file (if any) and applies the flags over it.
func (f *configFlags) load(c *cobra.Command) (config.Config, string, error) {
	path, _ := f.configPath()
	cfg := config.Default()
	if path != "" {
		var err error
		cfg, err = config.Load(path)
		if errors.Is(err, os.ErrNotExist) {
			return cfg, path, usageErr(fmt.Errorf("config file %s does not exist: create one with `hafeed config example > %s`, or leave --config and $HAFEED_CONFIG unset to run on defaults", path, path))
		}
		if err != nil {
			return cfg, path, usageErr(err)
		}
	}
	if err := f.apply(c, &cfg); err != nil {
		return cfg, path, usageErr(err)
	}
	if err := cfg.Validate("flags"); err != nil {
		return cfg, path, usageErr(err)
	}
	return cfg, path, nil
}

// socket finds the control socket for a client command (drain, ready,
// maint, status): the flag, then $HAFEED_CONTROL_SOCKET, then
// control_socket in the config file, then the default. Nothing else is
// validated: a problem elsewhere in the file is a warning on stderr, since
// an operator may need `drain` exactly while the config is broken.
func (f *configFlags) socket(c *cobra.Command) string {
	if c.Flags().Changed("control-socket") {
		return f.controlSocket
	}
	if env := os.Getenv("HAFEED_CONTROL_SOCKET"); env != "" {
		return env
	}
	path, _ := f.configPath()
	if path == "" {
		return config.DefaultControlSocket
	}
	cfg, err := config.Load(path)
	socket := cfg.ControlSocket
	if socket == "" {
		socket = config.DefaultControlSocket
	}
	if err != nil {
		printLines(c.ErrOrStderr(), "warning: ", fmt.Sprintf("the configuration has problems (`hafeed config check` lists them); using control socket %s\n%v", socket, termsafe.Text(err.Error())))
	}
	return socket
}

func (f *configFlags) apply(c *cobra.Command, cfg *config.Config) error {
	changed := c.Flags().Changed
	if changed("agent-listen") {
		cfg.AgentCheck.Listen = f.agentListen
	}
	if changed("control-socket") {
		cfg.ControlSocket = f.controlSocket
	} else if env := os.Getenv("HAFEED_CONTROL_SOCKET"); env != "" && f.groups&withSocket != 0 {
		cfg.ControlSocket = env
	}
	if changed("state-file") {
		cfg.StateFile = f.stateFile
	}
	if changed("ports") {
		ports, err := parsePorts(f.ports)
		if err != nil {
			return fmt.Errorf("--ports: %w", err)
		}
		cfg.Sources.Ports = ports
	}
	if changed("interval") {
		cfg.Interval = f.interval
	}
	if changed("log-format") {
		cfg.Log.Format = f.logFormat
	}
	if changed("log-level") {
		cfg.Log.Level = f.logLevel
	}
	return nil
}

// parsePorts parses "8080,8443"; an empty string means every listening port.
func parsePorts(s string) ([]uint16, error) {
	var ports []uint16
	for _, field := range strings.Split(s, ",") {
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		n, err := strconv.ParseUint(field, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("%q is not a port number (1-65535); give a comma-separated list such as 8080,8443", field)
		}
		ports = append(ports, uint16(n))
	}
	return ports, nil
}
