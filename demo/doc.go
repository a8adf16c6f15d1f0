// Command demo is make demo: a live view, for about 90 seconds, of HAProxy
// balancing real WebSocket traffic with hafeed. It starts HAProxy
// (leastconn + agent-check), three backends with an agent each (ws1 a slow
// host), a spare backend in maintenance and a process of clients, all on
// 127.0.0.1 from temporary folders (internal/farm). A third of the way in
// it drains ws2 with hafeed drain --wait --shed-rate, and later adds ws4
// with hafeed ready. On a terminal it redraws a table every second;
// otherwise it prints what happens and a table every 10 seconds.
//
//	go run ./demo                  # make demo
//	go run ./demo -duration 3m
//
// It needs Go and haproxy on PATH and installs nothing. It stops every
// process it started and removes its folders when it ends or on Ctrl-C;
// when it fails, it keeps the processes' logs and says where they are.
package main
