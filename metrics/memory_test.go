package metrics

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCgroupValue(t *testing.T) {
	t.Parallel()
	type result struct {
		Value   uint64
		Limited bool
		Err     bool
	}
	tests := []struct {
		name, content string
		want          result
	}{
		{"memory.current fixture", readFixture(t, "cgroup/memory.current"), result{Value: 268435456, Limited: true}},
		{"memory.max fixture", readFixture(t, "cgroup/memory.max"), result{Value: 536870912, Limited: true}},
		{"max", "max\n", result{}},
		{"zero", "0\n", result{Limited: true}},
		{"negative", "-1\n", result{Err: true}},
		{"words", "lots\n", result{Err: true}},
		{"empty", "", result{Err: true}},
	}
	for _, tt := range tests {
		v, limited, err := parseCgroupValue(tt.content)
		got := result{Value: v, Limited: limited, Err: err != nil}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: parseCgroupValue(%q) (-want +got):\n%s", tt.name, tt.content, diff)
		}
	}
}

func TestParseMemoryStat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, content, key string
		want               uint64
		wantErr            bool
	}{
		{"fixture", readFixture(t, "cgroup/memory.stat"), "inactive_file", 67108864, false},
		{"fixture anon", readFixture(t, "cgroup/memory.stat"), "anon", 150994944, false},
		{"prefix is not a match", "inactive_file_x 5\ninactive_file 7\n", "inactive_file", 7, false},
		{"missing", "anon 1\nfile 2\n", "inactive_file", 0, true},
		{"malformed", "inactive_file many\n", "inactive_file", 0, true},
	}
	for _, tt := range tests {
		got, err := parseMemoryStat(tt.content, tt.key)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: parseMemoryStat error = %v, want error %v", tt.name, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("%s: parseMemoryStat = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestMemoryUsed(t *testing.T) {
	t.Parallel()
	const (
		group = "/system.slice/ws.service"
		mib   = 1 << 20
	)
	// The host fixture has 8 GiB, 6 GiB of it available; the group fixture
	// uses 256 MiB, 64 MiB of it inactive file cache, of a 512 MiB limit.
	tests := []struct {
		name   string
		cgroup string
		// files are rewritten in the group's copy of testdata/cgroup.
		files map[string]string
		want  float64
	}{
		{"host", "", nil, 0.25},
		{"root group is the host", "/", nil, 0.25},
		{"group under its limit", group, nil, 192.0 / 512},
		{"group without a limit", group, map[string]string{"memory.max": "max\n"}, 192.0 / 8192},
		{"limit above the host", group, map[string]string{"memory.max": "1099511627776\n"}, 192.0 / 8192},
		{"all cache", group, map[string]string{"memory.current": "67108864\n"}, 0},
		{"over the limit", group, map[string]string{"memory.max": "100000000\n"}, 1},
		{"zero limit", group, map[string]string{"memory.max": "0\n"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cgroupRoot := t.TempDir()
			groupDir := filepath.Join(cgroupRoot, filepath.FromSlash(group))
			copyFixtures(t, "cgroup", groupDir)
			for name, content := range tt.files {
				writeFile(t, filepath.Join(groupDir, name), content)
			}
			m := &Memory{ProcRoot: "testdata/proc", CgroupRoot: cgroupRoot, Cgroup: tt.cgroup}
			got, err := m.Used(context.Background())
			if err != nil || !near(got, tt.want) {
				t.Errorf("Used = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestMemoryUsedErrors(t *testing.T) {
	t.Parallel()
	cgroupRoot := t.TempDir()
	copyFixtures(t, "cgroup", filepath.Join(cgroupRoot, "nostat"))
	if err := os.Remove(filepath.Join(cgroupRoot, "nostat", "memory.stat")); err != nil {
		t.Fatal(err)
	}
	copyFixtures(t, "cgroup", filepath.Join(cgroupRoot, "maxcurrent"))
	writeFile(t, filepath.Join(cgroupRoot, "maxcurrent", "memory.current"), "max\n")
	copyFixtures(t, "cgroup", filepath.Join(cgroupRoot, "badmax"))
	writeFile(t, filepath.Join(cgroupRoot, "badmax", "memory.max"), "-1\n")
	tests := []struct {
		name     string
		m        Memory
		notExist bool
	}{
		{"no procfs", Memory{ProcRoot: t.TempDir()}, true},
		{"no such group", Memory{ProcRoot: "testdata/proc", CgroupRoot: cgroupRoot, Cgroup: "/missing"}, true},
		{"no memory.stat", Memory{ProcRoot: "testdata/proc", CgroupRoot: cgroupRoot, Cgroup: "/nostat"}, true},
		{"max in memory.current", Memory{ProcRoot: "testdata/proc", CgroupRoot: cgroupRoot, Cgroup: "/maxcurrent"}, false},
		{"bad memory.max", Memory{ProcRoot: "testdata/proc", CgroupRoot: cgroupRoot, Cgroup: "/badmax"}, false},
	}
	for _, tt := range tests {
		_, err := tt.m.Used(context.Background())
		if err == nil || errors.Is(err, os.ErrNotExist) != tt.notExist {
			t.Errorf("%s: Used error = %v, want a failure (not exist: %v)", tt.name, err, tt.notExist)
		}
	}
}

func TestMemoryUsedRealHost(t *testing.T) {
	t.Parallel()
	got, err := (&Memory{}).Used(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got <= 0 || got >= 1 {
		t.Errorf("Used = %v, want within (0, 1): this test process alone uses some memory", got)
	}
}
