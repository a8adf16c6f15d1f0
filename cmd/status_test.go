package cmd

import (
	"bytes"
	"testing"
)

func TestStyle(t *testing.T) {
	if got := (style{on: true}).admin("drain"); got != "\033[33mdrain\033[0m" {
		t.Errorf("coloured admin = %q", got)
	}
	if got := (style{}).bad("boom"); got != "boom" {
		t.Errorf("uncoloured = %q", got)
	}
	var buf bytes.Buffer
	if styleFor(&buf).on {
		t.Errorf("colour on for a buffer, want it only on a terminal")
	}
}
