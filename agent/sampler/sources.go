package sampler

import (
	"context"
	"fmt"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/metrics"
)

// buildSources makes the signal sources the configuration names, reusing
// those in prev whose settings are unchanged (a CPU rate needs the previous
// reading).
func buildSources(src config.SourcesConfig, prev map[string]signalSource) (map[string]signalSource, error) {
	out := map[string]signalSource{}
	add := func(name string, s keyedSource) {
		if old, ok := prev[name].(keyedSource); ok && old.key == s.key {
			out[name] = old
			return
		}
		out[name] = s
	}
	group := func() string { return src.Cgroup }
	if src.Cgroup == "" && (src.PID != 0 || src.PIDFile != "") {
		// The group of the process, looked up at each read so that a
		// restarted service is followed.
		proc := &metrics.ProcessCPU{ProcRoot: src.ProcRoot, PID: src.PID, PIDFile: src.PIDFile}
		group = func() string {
			g, err := processCgroup(src.ProcRoot, proc)
			if err != nil {
				return ""
			}
			return g
		}
	}
	key := fmt.Sprintf("%+v", src)

	// inGroup resolves the cgroup before each read of a cgroup-scoped source.
	inGroup := func(set func(string), read func(context.Context) (float64, error)) func(context.Context) (float64, error) {
		return func(ctx context.Context) (float64, error) {
			g := group()
			if g == "" {
				return 0, fmt.Errorf("cgroup of %s not found", processName(src))
			}
			set(g)
			return read(ctx)
		}
	}

	switch src.CPU {
	case "none":
	case "host":
		add(policy.SignalCPU, keyedSource{key, (&metrics.HostCPU{ProcRoot: src.ProcRoot}).Busy})
	case "cgroup":
		c := &metrics.CgroupCPU{Root: src.CgroupRoot, ProcRoot: src.ProcRoot}
		add(policy.SignalCPU, keyedSource{key, inGroup(func(g string) { c.Path = g }, c.Busy)})
	case "process":
		add(policy.SignalCPU, keyedSource{key, (&metrics.ProcessCPU{ProcRoot: src.ProcRoot, PID: src.PID, PIDFile: src.PIDFile}).Busy})
	default:
		return nil, fmt.Errorf("sources.cpu: unknown scope %q", src.CPU)
	}

	m := &metrics.Memory{ProcRoot: src.ProcRoot, CgroupRoot: src.CgroupRoot}
	switch src.Memory {
	case "none":
	case "host":
		add(policy.SignalMemory, keyedSource{key, m.Used})
	case "cgroup":
		add(policy.SignalMemory, keyedSource{key, inGroup(func(g string) { m.Cgroup = g }, m.Used)})
	default:
		return nil, fmt.Errorf("sources.memory: unknown scope %q", src.Memory)
	}

	p := &metrics.Pressure{ProcRoot: src.ProcRoot, CgroupRoot: src.CgroupRoot}
	switch src.Pressure {
	case "none":
	case "host":
		add(policy.SignalPressure, keyedSource{key, p.CPUSome})
	case "cgroup":
		add(policy.SignalPressure, keyedSource{key, inGroup(func(g string) { p.Cgroup = g }, p.CPUSome)})
	default:
		return nil, fmt.Errorf("sources.pressure: unknown scope %q", src.Pressure)
	}

	if src.App.URL != "" || src.App.File != "" {
		app := &metrics.App{URL: src.App.URL, File: src.App.File, JSONField: src.App.JSONField, Timeout: src.App.Timeout}
		add(policy.SignalApp, keyedSource{key, app.Utilisation})
	}
	return out, nil
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

// keyedSource is a source with the settings it was built from, so that a
// reload with the same settings keeps its state.
type keyedSource struct {
	key string
	signalFunc
}
