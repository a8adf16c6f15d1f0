package metrics

import "time"

// CountPacer spaces connection counts so that counting takes at most
// Budget of one core: after a count that took cost, the next one waits
// cost / Budget. A Budget of 0 counts every time. The sampler and a drain's
// shedding job each pace their counts with one.
type CountPacer struct {
	Budget float64
	// at is when the last good count started, cost how long it took.
	at   time.Time
	cost time.Duration
	// soon makes the next Due true once, whatever the budget.
	soon bool
}

// Spacing is the least time between two counts that keeps counting within
// the budget.
func (p *CountPacer) Spacing() time.Duration {
	if p.Budget <= 0 {
		return 0
	}
	return time.Duration(float64(p.cost) / p.Budget)
}

// Due says whether to count now.
func (p *CountPacer) Due(now time.Time) bool {
	return p.soon || p.at.IsZero() || now.Sub(p.at) >= p.Spacing()
}

// Soon makes the next count due at once, outside the budget: for a count
// that someone waits on, such as hafeed drain --wait's once the drain's
// shedding job has ended. With 100,000 sockets in the kernel's table a
// count takes a quarter to a whole second on a busy machine, which the
// budget spaces 30 s to 2 min apart.
func (p *CountPacer) Soon() { p.soon = true }

// Counted records a good count that started at at and took cost.
func (p *CountPacer) Counted(at time.Time, cost time.Duration) {
	p.at, p.cost, p.soon = at, cost, false
}

// At is when the last good count started; zero before one.
func (p *CountPacer) At() time.Time { return p.at }
