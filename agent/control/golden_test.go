package control

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hafeed/hafeed/agent/policy"
	"github.com/hafeed/hafeed/agent/sampler"
	"github.com/hafeed/hafeed/metrics"
)

// The replies in testdata were recorded from `status --json` before the
// domain model and the wire format were separated: every field name and
// value they hold must come out of the wire types unchanged.
func TestStatusWireFormatIsStable(t *testing.T) {
	for _, name := range []string{"testdata/status-v1-full.json", "testdata/status-v1-ready.json"} {
		t.Run(name, func(t *testing.T) {
			recorded, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(bytes.NewReader(recorded))
			dec.DisallowUnknownFields()
			var st Status
			if err := dec.Decode(&st); err != nil {
				t.Fatalf("a recorded reply no longer decodes: %v", err)
			}
			again, err := json.MarshalIndent(st, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(recorded), string(again)+"\n"); diff != "" {
				t.Errorf("status --json changed (-recorded +now):\n%s", diff)
			}
		})
	}
}

// TestSampleOfKeepsTheWireFormat maps a sample with every field set
// through SampleOf and compares it with the sample recorded in
// testdata/status-v1-full.json.
func TestSampleOfKeepsTheWireFormat(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 3, 9, 30, 0, 123456789, time.UTC)
	s := sampler.Sample{
		At: at, Duration: 1500 * time.Microsecond,
		Connections: 42, Ports: []uint16{8080, 8081}, ConnMethod: "netlink",
		// Paths is not on the wire sample: status shows it as source_ports.
		Paths: map[metrics.Path]int{{Peer: netip.MustParseAddr("127.0.0.2"), Local: netip.MustParseAddrPort("127.0.0.1:8080")}: 42},
		Signals: map[string]sampler.SignalStatus{
			policy.SignalConnections: {Value: 42, At: at},
			policy.SignalCPU:         {Value: 0.25, Target: 0.7, At: at, Stale: true, Error: "e", Duration: time.Millisecond},
		},
		Errors: []string{"app: x"},
		Decision: policy.Decision{
			Utilisation: 0.5, Bottleneck: policy.SignalCPU, Capacity: 84,
			Model:         policy.ModelFit{Baseline: 0.1, Measured: true, Cost: 1.2, Headroom: 0.9, Share: 0.8},
			WeightPercent: 80, Maxconn: 900, SendMaxconn: true, Reason: "r", SuggestedReference: 300,
		},
	}
	for _, path := range unset(reflect.ValueOf(s), "Sample") {
		t.Errorf("%s is not set: the test must map every field", path)
	}

	recorded, err := os.ReadFile("testdata/status-v1-full.json")
	if err != nil {
		t.Fatal(err)
	}
	var status struct{ Sample json.RawMessage }
	if err := json.Unmarshal(recorded, &status); err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(SampleOf(s))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(indent(t, status.Sample), indent(t, got)); diff != "" {
		t.Errorf("SampleOf's JSON differs from the recorded sample (-recorded +now):\n%s", diff)
	}
}

// unset lists the fields of v, recursively, that hold their zero value,
// and the maps and slices that hold no element.
func unset(v reflect.Value, path string) []string {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			break
		}
		var out []string
		for i := range v.NumField() {
			out = append(out, unset(v.Field(i), path+"."+v.Type().Field(i).Name)...)
		}
		return out
	case reflect.Map, reflect.Slice:
		if v.Len() == 0 {
			return []string{path}
		}
		return nil
	}
	if v.IsZero() {
		return []string{path}
	}
	return nil
}

// indent lays JSON out one value a line, for a readable diff.
func indent(t *testing.T, data []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Indent(&b, data, "", "  "); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
