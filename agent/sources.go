package agent

import (
	"context"
	"fmt"

	"github.com/hafeed/hafeed/metrics"
)

// buildSources makes the signal sources the configuration names, reusing
// those in prev whose settings are unchanged (a CPU rate needs the previous
// reading).
func buildSources(src SourcesConfig, prev map[string]signalSource) (map[string]signalSource, error) {
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

	switch src.CPU {
	case "none":
	case "host":
		add(SignalCPU, keyed(key, &metrics.HostCPU{ProcRoot: src.ProcRoot}, (*metrics.HostCPU).Busy))
	case "cgroup":
		c := &metrics.CgroupCPU{Root: src.CgroupRoot, ProcRoot: src.ProcRoot}
		add(SignalCPU, keyed(key, c, func(c *metrics.CgroupCPU, ctx context.Context) (float64, error) {
			c.Path = group()
			if c.Path == "" {
				return 0, fmt.Errorf("cgroup of %s not found", processName(src))
			}
			return c.Busy(ctx)
		}))
	case "process":
		add(SignalCPU, keyed(key, &metrics.ProcessCPU{ProcRoot: src.ProcRoot, PID: src.PID, PIDFile: src.PIDFile}, (*metrics.ProcessCPU).Busy))
	default:
		return nil, fmt.Errorf("sources.cpu: unknown scope %q", src.CPU)
	}

	switch src.Memory {
	case "none":
	case "host", "cgroup":
		m := &metrics.Memory{ProcRoot: src.ProcRoot, CgroupRoot: src.CgroupRoot}
		scope := src.Memory
		add(SignalMemory, keyed(key, m, func(m *metrics.Memory, ctx context.Context) (float64, error) {
			if scope == "cgroup" {
				if m.Cgroup = group(); m.Cgroup == "" {
					return 0, fmt.Errorf("cgroup of %s not found", processName(src))
				}
			}
			return m.Used(ctx)
		}))
	default:
		return nil, fmt.Errorf("sources.memory: unknown scope %q", src.Memory)
	}

	switch src.Pressure {
	case "none":
	case "host", "cgroup":
		p := &metrics.Pressure{ProcRoot: src.ProcRoot, CgroupRoot: src.CgroupRoot}
		scope := src.Pressure
		add(SignalPressure, keyed(key, p, func(p *metrics.Pressure, ctx context.Context) (float64, error) {
			if scope == "cgroup" {
				if p.Cgroup = group(); p.Cgroup == "" {
					return 0, fmt.Errorf("cgroup of %s not found", processName(src))
				}
			}
			return p.CPUSome(ctx)
		}))
	default:
		return nil, fmt.Errorf("sources.pressure: unknown scope %q", src.Pressure)
	}

	if src.App.URL != "" || src.App.File != "" {
		add(SignalApp, keyed(key, &metrics.App{URL: src.App.URL, File: src.App.File, JSONField: src.App.JSONField, Timeout: src.App.Timeout}, (*metrics.App).Utilisation))
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

func processName(src SourcesConfig) string {
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

func keyed[T any](key string, sampler T, read func(T, context.Context) (float64, error)) keyedSource {
	return keyedSource{key: key, signalFunc: func(ctx context.Context) (float64, error) { return read(sampler, ctx) }}
}
