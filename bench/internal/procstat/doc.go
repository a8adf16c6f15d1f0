// Package procstat reads what the benchmarks measure of processes and of the
// machine from procfs: a process's CPU time and memory, the host's busy
// share, its load average and its TCP socket counts. It is the benchmarks'
// own, not the agent's (the agent's readers are in package metrics).
package procstat
