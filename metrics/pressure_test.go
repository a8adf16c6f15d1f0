package metrics

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParsePSI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, content string
		want          psiStats
		wantErr       bool
	}{
		{"host fixture", readFixture(t, "proc/pressure/cpu"), psiStats{
			Some: psiAverages{Avg10: 0.62, Avg60: 3.44, Avg300: 4.61},
		}, false},
		{"cgroup fixture", readFixture(t, "cgroup/cpu.pressure"), psiStats{
			Some: psiAverages{Avg10: 12.5, Avg60: 8.25, Avg300: 3.1},
			Full: psiAverages{Avg10: 4, Avg60: 2, Avg300: 1},
		}, false},
		{"before Linux 5.13: no full line", "some avg10=100.00 avg60=50.00 avg300=0.00 total=1\n", psiStats{
			Some: psiAverages{Avg10: 100, Avg60: 50},
		}, false},
		{"fields in another order", "some total=1 avg300=3 avg60=2 avg10=1\n", psiStats{
			Some: psiAverages{Avg10: 1, Avg60: 2, Avg300: 3},
		}, false},
		{"full only", "full avg10=1 avg60=2 avg300=3 total=4\n", psiStats{}, true},
		{"missing avg300", "some avg10=1 avg60=2 total=4\n", psiStats{}, true},
		{"not a number", "some avg10=x avg60=2 avg300=3 total=4\n", psiStats{}, true},
		{"no equals", "some avg10 avg60=2 avg300=3\n", psiStats{}, true},
		{"unknown line", "some avg10=1 avg60=2 avg300=3\nhalf avg10=1 avg60=2 avg300=3\n", psiStats{}, true},
		{"empty", "", psiStats{}, true},
	}
	for _, tt := range tests {
		got, err := parsePSI(tt.content)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: parsePSI error = %v, want error %v", tt.name, err, tt.wantErr)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: parsePSI (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestPressureCPUSome(t *testing.T) {
	t.Parallel()
	const group = "/system.slice/ws.service"
	cgroupRoot := t.TempDir()
	copyFixtures(t, "cgroup", filepath.Join(cgroupRoot, filepath.FromSlash(group)))
	tests := []struct {
		name string
		p    Pressure
		want float64
	}{
		{"host", Pressure{ProcRoot: "testdata/proc"}, 0.0062},
		{"group", Pressure{ProcRoot: "testdata/proc", CgroupRoot: cgroupRoot, Cgroup: group}, 0.125},
	}
	for _, tt := range tests {
		got, err := tt.p.CPUSome(context.Background())
		if err != nil || !near(got, tt.want) {
			t.Errorf("%s: CPUSome = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

func TestPressureWithoutPSI(t *testing.T) {
	t.Parallel()
	for name, p := range map[string]Pressure{
		"host":  {ProcRoot: t.TempDir()},
		"group": {CgroupRoot: t.TempDir(), Cgroup: "/system.slice/ws.service"},
	} {
		if _, err := p.CPUSome(context.Background()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: CPUSome error = %v, want os.ErrNotExist", name, err)
		}
	}
	// A kernel booted with psi=0 refuses the read instead.
	disabled := psiReadError(&fs.PathError{Op: "read", Path: "/proc/pressure/cpu", Err: syscall.EOPNOTSUPP})
	if !errors.Is(disabled, os.ErrNotExist) {
		t.Errorf("psiReadError(EOPNOTSUPP) = %v, want os.ErrNotExist", disabled)
	}
	if other := psiReadError(&fs.PathError{Op: "open", Path: "/proc/pressure/cpu", Err: syscall.EACCES}); errors.Is(other, os.ErrNotExist) {
		t.Errorf("psiReadError(EACCES) = %v, want not os.ErrNotExist", other)
	}
}

func TestPressureMalformed(t *testing.T) {
	t.Parallel()
	procRoot := t.TempDir()
	writeFile(t, filepath.Join(procRoot, "pressure", "cpu"), "some avg10=lots\n")
	if _, err := (&Pressure{ProcRoot: procRoot}).CPUSome(context.Background()); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Errorf("CPUSome(malformed) error = %v, want a parse failure", err)
	}
}
