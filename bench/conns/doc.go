// Command conns measures what it costs to count established connections when
// there are many of them: hafeed's sampler (metrics.Conns, netlink sock_diag
// with a kernel-side port filter) against `ss ... | wc -l` and gopsutil's
// net.Connections, all on the same 100,000 loopback connections, and the
// steady CPU and memory of the real agent sampling them every second.
//
//	go run ./bench/conns               # 100,000 connections (make bench-conns)
//	go run ./bench/conns -conns 10000  # smoke run (make bench-conns QUICK=1)
//
// A process may hold at most 20,000 descriptors here, so the connections are
// spread over child processes (this binary re-executed with a hidden role):
// servers that share one listening socket on 127.0.0.1:P and accept, and
// clients that each dial from their own source address 127.0.0.(10+i). The
// results go to stdout as a markdown table (-json for machines); progress goes
// to stderr. Every child is killed at the end, on error and on Ctrl-C.
package main
