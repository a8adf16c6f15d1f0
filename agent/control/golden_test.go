package control

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
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
