package main

import (
	"fmt"
	"os"

	"github.com/hafeed/hafeed/cmd"
)

func main() {
	if err := os.WriteFile("docs/CONFIG.md", cmd.ConfigReference(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}
