package sampler

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/hafeed/hafeed/agent/config"
	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/metrics"
)

// TestReloadReplacesOnlyChangedSources checks that a reload rebuilds the
// sources whose keys it changed and keeps the others, with their history.
func TestReloadReplacesOnlyChangedSources(t *testing.T) {
	t.Parallel()
	start := config.Default().Sources
	start.Ports = []uint16{1}
	start.PID = os.Getpid() // so that sources.cpu can change to process alone
	start.Pressure = config.ScopeHost
	start.App.File = filepath.Join(t.TempDir(), "load") // not read to build the source
	all := []string{policy.SignalCPU, policy.SignalMemory, policy.SignalPressure, policy.SignalApp}
	tests := []struct {
		name   string
		change func(*config.SourcesConfig)
		kept   []string
	}{
		{"nothing", func(*config.SourcesConfig) {}, all},
		{"sources.memory", func(s *config.SourcesConfig) { s.Memory = config.ScopeNone },
			[]string{policy.SignalCPU, policy.SignalPressure, policy.SignalApp}},
		{"sources.pressure", func(s *config.SourcesConfig) { s.Pressure = config.ScopeNone },
			[]string{policy.SignalCPU, policy.SignalMemory, policy.SignalApp}},
		{"sources.cpu", func(s *config.SourcesConfig) { s.CPU = config.ScopeProcess },
			[]string{policy.SignalMemory, policy.SignalPressure, policy.SignalApp}},
		{"sources.app", func(s *config.SourcesConfig) { s.App.JSONField = "load" },
			[]string{policy.SignalCPU, policy.SignalMemory, policy.SignalPressure}},
		{"sources.ports and sources.count_budget", func(s *config.SourcesConfig) { s.Ports, s.CountBudget = []uint16{2}, 0 }, all},
		{"sources.proc_root", func(s *config.SourcesConfig) { s.ProcRoot = t.TempDir() },
			[]string{policy.SignalApp}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := New(start, 0)
			before := maps.Clone(s.sources)
			if got := slices.Sorted(maps.Keys(before)); !slices.Equal(got, slices.Sorted(slices.Values(all))) {
				t.Fatalf("sources %v, want %v", got, all)
			}
			next := start
			tt.change(&next)
			s.SetSources(next)
			for name, old := range before {
				now, ok := s.sources[name]
				switch kept := slices.Contains(tt.kept, name); {
				case kept && now != old:
					t.Errorf("a reload that changed %s replaced the %s source", tt.name, name)
				case !kept && ok && now == old:
					t.Errorf("a reload that changed %s kept the %s source", tt.name, name)
				}
			}
		})
	}
}

// TestReloadKeepsCPUHistory checks what keeping a source is for: a CPU
// rate after a reload that changed sources.memory, and none until a second
// reading after one that changed sources.cpu.
func TestReloadKeepsCPUHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := config.Default().Sources
	src.Ports = []uint16{1}
	s := New(src)
	if _, err := s.sources[policy.SignalCPU].read(ctx); !errors.Is(err, metrics.ErrNoData) {
		t.Fatalf("first cpu read: %v, want ErrNoData", err)
	}
	src.Memory = config.ScopeNone
	s.SetSources(src)
	if _, err := s.sources[policy.SignalCPU].read(ctx); err != nil {
		t.Errorf("cpu read after a reload that changed sources.memory: %v, want a rate from the kept history", err)
	}
	src.CPU, src.PID = config.ScopeProcess, os.Getpid()
	s.SetSources(src)
	if _, err := s.sources[policy.SignalCPU].read(ctx); !errors.Is(err, metrics.ErrNoData) {
		t.Errorf("cpu read after a reload that changed sources.cpu: %v, want ErrNoData from a new source", err)
	}
}

// TestSignalKeysAreSourcesKeys checks the registrations: each names a
// signal the policy knows and keys that sources has.
func TestSignalKeysAreSourcesKeys(t *testing.T) {
	t.Parallel()
	v := reflect.ValueOf(config.SourcesConfig{})
	for _, sig := range signals {
		if !policy.IsSignal(sig.name) {
			t.Errorf("signal %q is not one the policy knows", sig.name)
		}
		for _, key := range sig.keys {
			if _, ok := fieldOf(v, key); !ok {
				t.Errorf("signal %s depends on sources.%s, which does not exist", sig.name, key)
			}
		}
	}
}
