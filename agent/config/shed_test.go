package config

import (
	"errors"
	"strings"
	"testing"
)

func TestShedWay(t *testing.T) {
	t.Parallel()
	runtime := []HAProxyConfig{{Runtime: "unix:///run/haproxy/admin.sock"}}
	tests := []struct {
		name     string
		shed     ShedConfig
		haproxy  []HAProxyConfig
		ports    []uint16
		want     ShedVia
		wantText []string // in the error, when there is no way
	}{
		{name: "defaults, as packaged", shed: ShedConfig{Via: ShedViaRuntime},
			wantText: []string{"hafeed-drain.conf", "configure haproxy[].runtime (shed.via: runtime", "shed.hook_url with shed.via: hook", "shed.via: kernel"}},
		{name: "kernel", shed: ShedConfig{Via: ShedViaKernel}, ports: []uint16{8080}, want: ShedViaKernel},
		{name: "runtime endpoint", shed: ShedConfig{Via: ShedViaRuntime}, haproxy: runtime, want: ShedViaRuntime},
		{name: "hook", shed: ShedConfig{Via: ShedViaHook, HookURL: "http://127.0.0.1:8080/hafeed/shed"}, want: ShedViaHook},
		{name: "hook beside runtime endpoints", shed: ShedConfig{Via: ShedViaHook, HookURL: "http://127.0.0.1:8080/hafeed/shed"}, haproxy: runtime, want: ShedViaHook},
		{name: "hook URL without shed.via: hook", shed: ShedConfig{Via: ShedViaRuntime, HookURL: "http://127.0.0.1:8080/hafeed/shed"},
			wantText: []string{"shed.hook_url is set", "set shed.via: hook"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := Default()
			cfg.Shed, cfg.HAProxy, cfg.Sources.Ports = tt.shed, tt.haproxy, tt.ports
			if err := cfg.Validate("test"); err != nil {
				t.Fatalf("the case's config is invalid: %v", err)
			}
			got, err := cfg.ShedWay()
			if got != tt.want {
				t.Errorf("ShedWay() = %q, %v; want %q", got, err, tt.want)
			}
			if tt.want != "" {
				if err != nil {
					t.Errorf("ShedWay() error = %v, want none", err)
				}
				return
			}
			if !errors.Is(err, ErrCannotShed) {
				t.Fatalf("ShedWay() error = %v, want ErrCannotShed", err)
			}
			for _, w := range tt.wantText {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ShedWay() error = %q, want it to say %q", err, w)
				}
			}
		})
	}
}
