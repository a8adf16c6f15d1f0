package sampler

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/metrics"
)

// source reads one load signal. metrics.ErrNoData means "nothing yet" (a
// rate needs two readings) and is not a failure.
type source interface {
	read(ctx context.Context) (float64, error)
}

type readFunc func(ctx context.Context) (float64, error)

func (f readFunc) read(ctx context.Context) (float64, error) { return f(ctx) }

// signal registers one load signal the sampler reads besides the
// connection count.
type signal struct {
	name string
	// keys are the sources.* keys its source is built from: a reload that
	// changes none of them keeps the source, and with it the history a
	// rate needs.
	keys []string
	// build makes the source from a validated configuration; nil when the
	// configuration leaves the signal out.
	build func(src config.SourcesConfig) source
}

// signals are the load signals, one registration each; building the
// sources is a loop over them.
var signals = []signal{
	{policy.SignalCPU, []string{"cpu", "cgroup", "pid", "pidfile", "proc_root", "cgroup_root"}, cpuSource},
	{policy.SignalMemory, []string{"memory", "cgroup", "pid", "pidfile", "proc_root", "cgroup_root"}, memorySource},
	{policy.SignalPressure, []string{"pressure", "cgroup", "pid", "pidfile", "proc_root", "cgroup_root"}, pressureSource},
	{policy.SignalApp, []string{"app"}, appSource},
}

// builtSource is a source with the settings it was built from.
type builtSource struct {
	source
	settings string
}

// buildSources makes the sources the configuration names, keeping those in
// prev whose keys did not change.
func buildSources(src config.SourcesConfig, prev map[string]*builtSource) map[string]*builtSource {
	out := map[string]*builtSource{}
	for _, sig := range signals {
		settings := settingsOf(src, sig.keys)
		if old, ok := prev[sig.name]; ok && old.settings == settings {
			out[sig.name] = old
			continue
		}
		if s := sig.build(src); s != nil {
			out[sig.name] = &builtSource{source: s, settings: settings}
		}
	}
	return out
}

// settingsOf renders the values of the sources.* keys in src.
func settingsOf(src config.SourcesConfig, keys []string) string {
	v := reflect.ValueOf(src)
	var b strings.Builder
	for _, key := range keys {
		f, ok := fieldOf(v, key)
		if !ok {
			panic("sampler: sources has no key " + key) // TestSignalKeysAreSourcesKeys
		}
		fmt.Fprintf(&b, "%s=%+v\n", key, f.Interface())
	}
	return b.String()
}

// fieldOf is the field of struct v whose YAML key is key.
func fieldOf(v reflect.Value, key string) (reflect.Value, bool) {
	for i := range v.NumField() {
		if name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ","); name == key {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func cpuSource(src config.SourcesConfig) source {
	switch src.CPU {
	case config.ScopeHost:
		return readFunc((&metrics.HostCPU{ProcRoot: src.ProcRoot}).Busy)
	case config.ScopeCgroup:
		c := &metrics.CgroupCPU{Root: src.CgroupRoot, ProcRoot: src.ProcRoot}
		return inGroup(src, func(g string) { c.Path = g }, c.Busy)
	case config.ScopeProcess:
		return readFunc((&metrics.ProcessCPU{ProcRoot: src.ProcRoot, PID: src.PID, PIDFile: src.PIDFile}).Busy)
	}
	return nil
}

func memorySource(src config.SourcesConfig) source {
	m := &metrics.Memory{ProcRoot: src.ProcRoot, CgroupRoot: src.CgroupRoot}
	switch src.Memory {
	case config.ScopeHost:
		return readFunc(m.Used)
	case config.ScopeCgroup:
		return inGroup(src, func(g string) { m.Cgroup = g }, m.Used)
	}
	return nil
}

func pressureSource(src config.SourcesConfig) source {
	p := &metrics.Pressure{ProcRoot: src.ProcRoot, CgroupRoot: src.CgroupRoot}
	switch src.Pressure {
	case config.ScopeHost:
		return readFunc(p.CPUSome)
	case config.ScopeCgroup:
		return inGroup(src, func(g string) { p.Cgroup = g }, p.CPUSome)
	}
	return nil
}

func appSource(src config.SourcesConfig) source {
	if src.App.URL == "" && src.App.File == "" {
		return nil
	}
	app := &metrics.App{URL: src.App.URL, File: src.App.File, JSONField: src.App.JSONField, Timeout: src.App.Timeout}
	return readFunc(app.Utilisation)
}

// inGroup is a cgroup-scoped source: it resolves the group before each
// read, so that the group of a restarted process is followed.
func inGroup(src config.SourcesConfig, set func(group string), read readFunc) source {
	group := func() string { return src.Cgroup }
	if src.Cgroup == "" {
		proc := &metrics.ProcessCPU{ProcRoot: src.ProcRoot, PID: src.PID, PIDFile: src.PIDFile}
		group = func() string {
			g, err := processCgroup(src.ProcRoot, proc)
			if err != nil {
				return ""
			}
			return g
		}
	}
	return readFunc(func(ctx context.Context) (float64, error) {
		g := group()
		if g == "" {
			return 0, fmt.Errorf("cgroup of %s not found", processName(src))
		}
		set(g)
		return read(ctx)
	})
}

// processCgroup finds the cgroup v2 group of the configured process.
func processCgroup(procRoot string, p *metrics.ProcessCPU) (string, error) {
	pid, err := p.CurrentPID()
	if err != nil {
		return "", err
	}
	return metrics.CgroupOfPID(procRoot, pid)
}

func processName(src config.SourcesConfig) string {
	if src.PIDFile != "" {
		return "the process in " + src.PIDFile
	}
	return fmt.Sprintf("pid %d", src.PID)
}
