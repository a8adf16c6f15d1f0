package cmd

import (
	"bytes"
	"os"
	"testing"
)

// TestConfigReferenceIsCurrent fails when docs/CONFIG.md no longer matches
// the example configuration: run `make docs`.
func TestConfigReferenceIsCurrent(t *testing.T) {
	got, err := os.ReadFile("../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, ConfigReference()) {
		t.Error("docs/CONFIG.md is out of date with `hafeed config example`: run `make docs` and commit it")
	}
}
