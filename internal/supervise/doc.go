// Package supervise starts the child processes of the benchmarks and the
// demo (HAProxy, backends, agents, clients, the benchmarks' own roles) and
// stops every one of them, process group included, however the program
// ends: each child gets SIGTERM when this process dies and sees its stdin
// close, and Stop and StopAll end it with SIGTERM, then SIGKILL.
package supervise
