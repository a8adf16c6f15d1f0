package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/haproxy"
	"github.com/hafeed/hafeed/internal/testutil"
)

func TestStateFileRoundTrip(t *testing.T) {
	t.Parallel()
	since := time.Date(2026, 3, 4, 5, 6, 7, 8, time.FixedZone("CET", 3600))
	tests := []State{
		{Admin: haproxy.AdminReady, Since: since},
		{Admin: haproxy.AdminReady, Since: since, ReadyPending: true},
		{Admin: haproxy.AdminDrain, Since: since},
		{Admin: haproxy.AdminMaint, Since: since},
		{Admin: haproxy.AdminReady, Since: since, Baseline: &policy.LoadModel{Baseline: 0.07, Measured: 60}},
	}
	for _, want := range tests {
		f := StateFile{Path: filepath.Join(t.TempDir(), "state.json")}
		if err := f.Save(want); err != nil {
			t.Fatalf("Save(%+v) = %v", want, err)
		}
		got, err := f.Load()
		if err != nil {
			t.Fatalf("Load() after Save(%+v) = %v", want, err)
		}
		// cmp compares times with Time.Equal, so the zone may change.
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Load() after Save() (-want +got):\n%s", diff)
		}
	}
}

// TestStateFileDropsBadBaseline checks that a baseline that is not a
// measurement is measured again rather than trusted.
func TestStateFileDropsBadBaseline(t *testing.T) {
	t.Parallel()
	for _, b := range []string{`{"baseline": 0.1, "measured_s": 0}`, `{"baseline": 7, "measured_s": 30}`, `{"baseline": -1, "measured_s": 30}`} {
		path := filepath.Join(t.TempDir(), "state.json")
		if err := os.WriteFile(path, []byte(`{"version": 1, "admin": "ready", "baseline": `+b+`}`), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := StateFile{Path: path}.Load()
		if err != nil || got.Baseline != nil {
			t.Errorf("Load() with baseline %s = %+v, %v; want no baseline", b, got.Baseline, err)
		}
	}
}

func TestStateFileSaveReplaces(t *testing.T) {
	t.Parallel()
	f := StateFile{Path: filepath.Join(t.TempDir(), "state.json")}
	for _, admin := range []haproxy.Admin{haproxy.AdminDrain, haproxy.AdminMaint, haproxy.AdminReady} {
		if err := f.Save(State{Admin: admin}); err != nil {
			t.Fatal(err)
		}
		got, err := f.Load()
		if err != nil || got.Admin != admin {
			t.Fatalf("Load() after Save(%v) = %+v, %v", admin, got, err)
		}
	}
}

func TestStateFileLoadMissing(t *testing.T) {
	t.Parallel()
	got, err := StateFile{Path: filepath.Join(t.TempDir(), "state.json")}.Load()
	if err != nil {
		t.Fatalf("Load() of a missing file = %v, want nil", err)
	}
	if diff := cmp.Diff(State{Admin: haproxy.AdminReady}, got); diff != "" {
		t.Errorf("Load() of a missing file (-want +got):\n%s", diff)
	}
}

func TestStateFileLoadCorrupt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data string
	}{
		{name: "empty", data: ""},
		{name: "truncated JSON", data: `{"version": 1, "admin": "dr`},
		{name: "not JSON", data: "drain\n"},
		{name: "wrong type", data: `{"version": 1, "admin": 2}`},
		{name: "unknown admin word", data: `{"version": 1, "admin": "sleeping", "since": "2026-01-01T00:00:00Z"}`},
		{name: "no admin", data: `{"version": 1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "state.json")
			if err := os.WriteFile(path, []byte(tt.data), 0o640); err != nil {
				t.Fatal(err)
			}
			got, err := StateFile{Path: path}.Load()
			if !errors.Is(err, ErrCorruptState) {
				t.Errorf("Load() = %+v, %v; want an error wrapping ErrCorruptState", got, err)
			}
		})
	}
}

func TestStateFileLoadUnreadable(t *testing.T) {
	t.Parallel()
	// A directory where the file should be cannot be read, but it is not
	// a corrupt state file either.
	path := t.TempDir()
	_, err := StateFile{Path: path}.Load()
	if err == nil || errors.Is(err, ErrCorruptState) {
		t.Errorf("Load() of a directory = %v, want an error that is not ErrCorruptState", err)
	}
}

func TestStateFileSaveFiles(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "var", "lib", "hafeed")
	f := StateFile{Path: filepath.Join(dir, "state.json")}
	for _, admin := range []haproxy.Admin{haproxy.AdminDrain, haproxy.AdminReady} {
		if err := f.Save(State{Admin: admin, Since: time.Now()}); err != nil {
			t.Fatalf("Save() into a missing directory = %v", err)
		}
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"state.json"}, names); diff != "" {
		t.Errorf("files in the state directory (-want +got):\n%s", diff)
	}
	fi, err := os.Stat(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode(); got != 0o640 {
		t.Errorf("state file mode = %v, want %v", got, os.FileMode(0o640))
	}
}

func TestStateFileSaveError(t *testing.T) {
	t.Parallel()
	// A regular file where the directory should be.
	blocker := filepath.Join(t.TempDir(), "blocker")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := (StateFile{Path: filepath.Join(blocker, "state.json")}).Save(State{Admin: haproxy.AdminDrain}); err == nil {
		t.Error("Save() under a regular file = nil, want an error")
	}
}

// TestStateFileReadsVersion1 loads a state file recorded before the
// policy's types lost their JSON tags and saves it again: the file must
// come out byte for byte as it was, so old state files keep working.
func TestStateFileReadsVersion1(t *testing.T) {
	t.Parallel()
	recorded, err := os.ReadFile("testdata/state-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	f := StateFile{Path: filepath.Join(t.TempDir(), "state.json")}
	if err := os.WriteFile(f.Path, recorded, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	want := State{Admin: haproxy.AdminMaint, Since: time.Date(2026, 12, 3, 9, 30, 0, 123456789, time.UTC), ReadyPending: true,
		Baseline: &policy.LoadModel{Baseline: 0.12, Measured: 30}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load() of a version 1 file (-want +got):\n%s", diff)
	}
	if err := f.Save(got); err != nil {
		t.Fatal(err)
	}
	saved, err := os.ReadFile(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(recorded), string(saved)); diff != "" {
		t.Errorf("a version 1 file saved again changed (-recorded +saved):\n%s", diff)
	}
}

// TestStateFileSaveSetsModeOnTheFile checks that Save sets the mode of
// the file it wrote, not of whatever its temporary name points to when it
// gets there (issue 17, item 13: the mode was set by path).
func TestStateFileSaveSetsModeOnTheFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	victim := filepath.Join(dir, "someone-elses")
	if err := os.WriteFile(victim, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f := StateFile{Path: filepath.Join(dir, "state.json"), hooks: &fileHooks{written: func(tmp string) {
		// Another process swaps the temporary name for a link.
		if err := os.Remove(tmp); err != nil {
			t.Error(err)
		}
		if err := os.Symlink(victim, tmp); err != nil {
			t.Error(err)
		}
	}}}
	_ = f.Save(State{Admin: haproxy.AdminDrain})
	fi, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("mode of the file the temporary name was swapped for = %v, want it untouched at %v", got, os.FileMode(0o600))
	}
}

// TestStateFileLoadRefusesFIFO checks that a FIFO at the state file's
// path is refused at once instead of read: it hung `hafeed run`, deaf to
// SIGTERM, until a writer came (issue 17, item 12).
func TestStateFileLoadRefusesFIFO(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	type result struct {
		st  State
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := StateFile{Path: path}.Load()
		done <- result{st, err}
	}()
	select {
	case r := <-done:
		if r.err == nil || errors.Is(r.err, ErrCorruptState) || !strings.Contains(r.err.Error(), "not a regular file") {
			t.Errorf("Load() of a FIFO = %+v, %v; want an error saying it is not a regular file", r.st, r.err)
		}
	case <-time.After(2 * time.Second):
		// Let the reader go: a writer that closes at once ends its read.
		if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		testutil.Recv(t, done, waitLimit, "Load() of a FIFO to return once a writer closed it")
		t.Fatal("Load() of a FIFO still reading after 2s, want a prompt refusal")
	}
}

// TestStateFileLoadBounded checks that a state file far larger than any
// the agent writes is not read whole: it is corrupt, and served as drain.
func TestStateFileLoadBounded(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	// Valid JSON, padded to twice the bound.
	data := `{"version": 1, "admin": "ready"` + strings.Repeat(" ", 2*maxStateBytes) + "}"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := (StateFile{Path: path}).Load(); !errors.Is(err, ErrCorruptState) {
		t.Errorf("Load() of a %d-byte file = %+v, %v; want ErrCorruptState", len(data), got, err)
	}
}

// TestStateFileSaveSaysWhetherItReplaced checks that an error from Save
// says whether the new state is in place: after the rename it is, and the
// error wraps ErrNotDurable; before it, the old state is.
func TestStateFileSaveSaysWhetherItReplaced(t *testing.T) {
	t.Parallel()
	eio := &os.PathError{Op: "fsync", Path: "dir", Err: syscall.EIO}
	tests := []struct {
		name  string
		hooks *fileHooks
		want  haproxy.Admin
	}{
		{name: "directory sync fails", hooks: &fileHooks{syncDir: func(*os.File) error { return eio }}, want: haproxy.AdminDrain},
		{name: "rename fails", hooks: &fileHooks{written: func(tmp string) { os.Remove(tmp) }}, want: haproxy.AdminReady},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := StateFile{Path: filepath.Join(t.TempDir(), "state.json")}
			if err := f.Save(State{Admin: haproxy.AdminReady}); err != nil {
				t.Fatal(err)
			}
			f.hooks = tt.hooks
			err := f.Save(State{Admin: haproxy.AdminDrain})
			got, loadErr := f.Load()
			if loadErr != nil {
				t.Fatal(loadErr)
			}
			if err == nil || got.Admin != tt.want || errors.Is(err, ErrNotDurable) != (tt.want == haproxy.AdminDrain) {
				t.Errorf("Save(drain) = %v, file holds %s; want an error wrapping ErrNotDurable exactly when the file holds drain (want %s)", err, got.Admin, tt.want)
			}
		})
	}
}
