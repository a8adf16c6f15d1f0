// Command balance measures how HAProxy balances real WebSocket traffic
// under four policies: balance roundrobin, leastconn, leastconn with
// hafeed's agent-check weights, and the same with hafeed's rebalancing.
// Everything is a real process on loopback: WebSocket backends, one hafeed
// per backend, HAProxy 2.6 and a population of clients.
//
// The farm, on one machine:
//
//   - Backends are Go WebSocket echo servers, one process each, that hash
//     every message with SHA-256 a calibrated number of times before
//     echoing it. ws1 is a half-speed host (each message costs it twice the
//     CPU), ws2..ws4 are speed 1.
//   - Every backend has its own hafeed watching the backend's port for
//     connections and the backend's process for CPU (sources.cpu: process,
//     sources.pid): on one machine host CPU is shared, so per-process CPU is
//     the honest host signal. A backend's utilisation is its CPU over a
//     budget of 0.4 cores (-budget; targets.cpu = budget / CPUs), the same
//     for every backend; the client load is sized so that the backends
//     together want about 40 % of a 2-CPU machine. The time scale is
//     compressed, and so are the agents' settings: smoothing 5s, blackout
//     0s, rebalance sustain 5s, max_rate 3 %/s, cooldown 10s.
//   - The clients run in one separate process: 40 hot clients (a message
//     every 100 ms) arrive first, then 800 lazy ones (a message every 2 s),
//     half the messages each; 5 % of them leave each second and are
//     replaced, so that a 30-second run sees the connections turn over. Every
//     message carries the client id and a sequence number and the client
//     checks each echo; a client whose connection ends reconnects with
//     jittered backoff and resends what was not echoed.
//   - HAProxy runs in master-worker mode from a generated configuration,
//     polling each agent every second when the policy uses agent-check.
//
// The scenarios: (1) steady state, where the hot clients land before any
// weight exists; (2) scale-up, ws4 enters service mid-run (hafeed ready);
// (3) scale-down, ws4 is drained to zero with hafeed drain --wait
// --shed-rate; (4) an HAProxy reload mid-run (SIGUSR2 to the master, the
// old worker closing what it still holds after hard-stop-after).
//
// Usage (make bench-balance runs the first line, QUICK=1 the second):
//
//	go run ./bench/balance -out docs/img
//	go run ./bench/balance -quick -out .dev/balance
//	go run ./bench/balance -scenarios steady -policies leastconn,hafeed -json
//
// The farm is internal/farm, which the live demo (demo/, make demo) runs
// too. The program re-executes itself for the farm's child roles (a
// backend, the clients), builds cmd/hafeed once into a temporary folder,
// and stops every process it started (SIGTERM to the process group, then
// SIGKILL) when it ends, fails or is interrupted.
package main
