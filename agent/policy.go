package agent

import (
	"math"
	"time"
)

// Inputs are the load signals of one sample.
type Inputs struct {
	Connections int `json:"connections"`
	// CPUBusy is the smoothed CPU busy fraction; HaveCPU is false until two
	// readings exist.
	CPUBusy float64 `json:"cpu_busy"`
	HaveCPU bool    `json:"have_cpu"`
}

// Decision is what the policy makes of the inputs.
type Decision struct {
	// Score is the utilisation estimate: 1 means full.
	Score         float64 `json:"score"`
	WeightPercent int     `json:"weight_percent"`
	// Bottleneck names the signal that set the score.
	Bottleneck string `json:"bottleneck"`
}

// Decide is load policy v0: the utilisation is the larger of connections
// over their capacity and CPU over its target, and the weight is the share
// of the host left free, as a percentage of the configured weight. Load
// never yields 0%: 0% takes a host out of rotation, which only the admin
// states may do.
func Decide(p PolicyConfig, in Inputs) Decision {
	d := Decision{Score: float64(in.Connections) / float64(p.ConnCapacity), Bottleneck: "connections"}
	if in.HaveCPU {
		if cpu := in.CPUBusy / p.CPUTarget; cpu > d.Score {
			d.Score, d.Bottleneck = cpu, "cpu"
		}
	}
	d.WeightPercent = int(math.Round(100 * (1 - d.Score)))
	d.WeightPercent = min(max(d.WeightPercent, 1), 100)
	return d
}

// ewma is an exponentially weighted moving average over irregular samples.
type ewma struct {
	value float64
	have  bool
}

// update folds x, observed dt after the previous sample, into the average
// with time constant tau; tau 0 disables smoothing.
func (e *ewma) update(x float64, dt, tau time.Duration) float64 {
	if !e.have || tau <= 0 {
		e.value, e.have = x, true
		return x
	}
	alpha := 1 - math.Exp(-float64(dt)/float64(tau))
	e.value += alpha * (x - e.value)
	return e.value
}
