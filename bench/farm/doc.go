// Command farm runs issue 19's farm: 100,000 real WebSocket connections
// through HAProxy to four hosts with hafeed on each, and measures the time
// to connect them, each agent's CPU and memory at 25,000 connections, the
// steady balance, a drain of one host at 1,000 sockets a second, and the
// rebalancing onto a fifth host.
//
//	go run ./bench/farm -out docs/img     # 100,000 clients (make bench-farm)
//	go run ./bench/farm -quick -out DIR   # 10,000 through 2 HAProxies (make bench-farm QUICK=1)
//
// Every process here may hold at most 20,000 descriptors (RLIMIT_NOFILE,
// hard), and HAProxy needs two a proxied connection and a few dozen more
// (Maxsock less twice maxconn: 40 with the farm's configuration on 2.6),
// so one HAProxy holds at most 9,980 connections. The benchmark measures that
// first (-probe), then runs the farm through as many HAProxy processes as
// the clients need, each independent, with its own stats socket and
// maxconn, all bound to the one frontend address with SO_REUSEPORT (so
// the kernel spreads the clients over them), as a farm of HAProxies would:
// hafeed's agents answer any number of them.
//
// Each HAProxy connects to the hosts from its own source address
// (127.0.2.x), so that no (source, destination) pair comes near the
// 28,232 ports of the default ip_local_port_range: from one shared
// 127.0.0.1, the 33,334 sockets a host holds while another is drained
// would not fit. Each host is several application processes (this binary
// re-executed, a wstest echo server each) sharing one SO_REUSEPORT port,
// which its agent counts and sheds (shed.via: kernel); the clients are
// cooperating wstest populations, one process per 127.0.1.x source
// address, that reconnect when their connection ends and record how long
// they were without one. Every process is stopped, and the temp dir
// removed, at the end, on failure and on Ctrl-C; the processes also die
// with the benchmark (parent-death signal, and the roles exit when their
// stdin closes). Results go to stdout as markdown, progress to stderr;
// -json-out keeps every sample and -out the plot.
package main
