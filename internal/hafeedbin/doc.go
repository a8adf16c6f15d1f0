// Package hafeedbin builds the hafeed binary for the programs that run it
// as a child process: the benchmarks and the demo. It builds cmd/hafeed of
// the hafeed module the caller is built against, in that module's own
// folder, so that it works from the daemon's module, from the benchmarks'
// (through go.work or their replace directive) and with GOWORK=off.
package hafeedbin
