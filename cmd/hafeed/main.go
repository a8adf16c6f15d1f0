// Command hafeed is the load-feedback agent for HAProxy: see `hafeed --help`.
package main

import (
	"os"

	"github.com/hafeed/hafeed/cmd"
)

func main() {
	os.Exit(cmd.Main(os.Args[1:], os.Stdout, os.Stderr))
}
