// Command sim is a deterministic, seeded simulation of HAProxy load
// balancing over heterogeneous hosts, comparing roundrobin, leastconn and
// leastconn with the weights of hafeed's real policy: the agent/policy
// package's Observe and Step, the same code the daemon runs.
//
// The model, in steps of 100 ms:
//
//   - Hosts differ in speed (capacity multiplier 0.7, 1 or 1.5, in the
//     proportions 20/60/20 %) and clients in activity: 20 % of connections
//     are hot and cost 10 times as much as the others. A host's utilisation
//     is its CPU baseline plus the activity of its live connections over its
//     capacity; the load is sized so that the mean host runs at 60 % CPU.
//   - Load shapes: the small, medium and large farms have no baseline; the
//     -baseline farms give each host a baseline of 0-25 % of its CPU that
//     connections do not cause; the -idle farms are equal hosts whose
//     sockets cost next to nothing (0.5 % of CPU for all of them) beside a
//     7-8 % baseline, at the shipped reference capacity. Every agent starts
//     30 s before its host takes connections, as on a host that boots.
//   - Connections arrive as a Poisson process at rate connections / mean
//     lifetime and live for a Pareto-distributed time (alpha 1.5, mean 5
//     minutes). At t=0 the cluster is prefilled with the target number of
//     connections, each with a residual lifetime from the equilibrium
//     distribution, so the connection count starts in its steady state.
//   - Several HAProxy instances each pick a server for an arrival using only
//     their own connection counts: roundrobin over the servers in rotation,
//     leastconn by the lowest (conns+1)/weight with ties in turn. With hafeed
//     each host's agent samples every second (CPU with a little noise, capped
//     at 100 %) and runs the policy; each HAProxy polls each agent every
//     agent-inter (2 s, random phase), so the weights it uses are stale.
//   - Events: a host is added (scale-up; its agent runs 30 s before, as in
//     maint), a host is drained (it leaves the rotation on every HAProxy at
//     once, its connections end naturally) and a host's speed halves (noisy
//     neighbour).
//   - hafeed+rebalance also runs hafeed's rebalancer (rebalance.enabled,
//     defaults) in every agent, from the backend view a runtime endpoint
//     gives; a shed connection reconnects at once through a random HAProxy.
//     It runs in farms of up to 100 hosts.
//   - The daily farms (-scenario daily, daily-equal; issue 18): the
//     connection population follows a day's curve from 8,000 at 04:00 to
//     24,000 at 16:00 (a cosine, with 5 % noise on the arrival rate), over
//     two days of 24 h, the second measured. An HPA-like autoscaler sizes
//     the farm: once from hafeed's desired_servers, draining
//     scale_in_candidate (policy.ComputeFleet over the HAProxies' view),
//     once from the mean host CPU, draining the newest host, and once from
//     the mean CPU where HAProxy balances with leastconn alone. A launched
//     host joins after a minute's boot; a drained host sheds 50
//     connections a second and is removed when empty. Hosts draw the speed
//     mix and 0-25 % baselines (daily) or are all alike (daily-equal).
//
// Usage (make sim runs the first line):
//
//	go run ./bench/sim [-scenario all|small|medium|large|small-baseline|...|autoscaled|daily|daily-equal] [-seed N] [-json] [-plot DIR] [-quick]
//	go run ./bench/sim -scenario medium -dead-band 0.02   # try a policy variation
//
// Every scenario compares the policies on the same fleet and the same
// arrivals (separate seeded PCG streams), so the same seed prints the same
// results.
//
// Only hafeed+rebalance closes connections to move them ("moved"); "steady
// moved" counts those it closed before any event, which must be none.
package main
