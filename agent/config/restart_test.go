package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRestartOnly checks that a reload keeps the running value of every
// key that changes only on restart, names the ones it changed, and applies
// the others.
func TestRestartOnly(t *testing.T) {
	t.Parallel()
	prev := Default()
	next := prev
	next.AgentCheck.Listen, next.AgentCheck.Timeout, next.AgentCheck.MaxConns = ":5556", time.Second, 8
	next.ControlSocket, next.StateFile = "/tmp/c.sock", "/tmp/state.json"
	next.Log.Format, next.Metrics.Listen = "json", "127.0.0.1:9555"
	next.Interval, next.Log.Level = 2*time.Second, "debug"

	got, changed := RestartOnly(prev, next)
	want := prev
	want.Interval, want.Log.Level = 2*time.Second, "debug"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RestartOnly applied (-want +got):\n%s", diff)
	}
	if wantKeys := slices.Sorted(slices.Values(RestartOnlyKeys())); !slices.Equal(changed, wantKeys) {
		t.Errorf("changed = %v, want every restart-only key, sorted: %v", changed, wantKeys)
	}

	if got, changed := RestartOnly(prev, want); len(changed) != 0 || !cmp.Equal(got, want) {
		t.Errorf("a reload changing only reloadable keys: changed %v, config %+v; want none and the new values", changed, got)
	}
}

// TestRestartOnlyKeysExist checks that every restart-only key names a key
// of the configuration file.
func TestRestartOnlyKeysExist(t *testing.T) {
	t.Parallel()
	for _, key := range RestartOnlyKeys() {
		v := reflect.ValueOf(Config{})
		for part := range strings.SplitSeq(key, ".") {
			f, ok := v.Type().FieldByNameFunc(func(name string) bool {
				field, _ := v.Type().FieldByName(name)
				yamlKey, _, _ := strings.Cut(field.Tag.Get("yaml"), ",")
				return yamlKey == part
			})
			if !ok {
				t.Errorf("%s: no key %q in the configuration", key, part)
				break
			}
			v = v.FieldByIndex(f.Index)
		}
	}
}
