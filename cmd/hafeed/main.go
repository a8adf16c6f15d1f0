package main

import (
	"os"

	"github.com/hafeed/hafeed/cmd"
)

func main() {
	os.Exit(cmd.Main(os.Args[1:], os.Stdout, os.Stderr))
}
