package main

import (
	"fmt"
	"image/color"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// hostRole is how the plot colours a host.
type hostRole struct {
	name  string
	color color.RGBA
}

var (
	roleSlow    = hostRole{"speed 0.7", color.RGBA{R: 214, G: 39, B: 40, A: 255}}
	roleNormal  = hostRole{"speed 1", color.RGBA{R: 150, G: 150, B: 150, A: 255}}
	roleFast    = hostRole{"speed 1.5", color.RGBA{R: 31, G: 119, B: 180, A: 255}}
	roleAdded   = hostRole{"added (speed 1)", color.RGBA{R: 44, G: 160, B: 44, A: 255}}
	roleDrained = hostRole{"drained (speed 1.5)", color.RGBA{R: 148, G: 103, B: 189, A: 255}}
	roleNoisy   = hostRole{"noisy neighbour (speed 1, then 0.5)", color.RGBA{R: 255, G: 127, B: 14, A: 255}}
)

func (sr ScenarioResult) role(h int) hostRole {
	switch {
	case h == sr.Hosts:
		return roleAdded
	case h == sr.DrainedHost:
		return roleDrained
	case h == sr.NoisyHost:
		return roleNoisy
	case sr.Speeds[h] < 1:
		return roleSlow
	case sr.Speeds[h] > 1:
		return roleFast
	}
	return roleNormal
}

// plotUtilisation draws each host's utilisation over time, one panel per
// policy, with the events marked.
func plotUtilisation(sr ScenarioResult, path string) error {
	ymax := 0.0
	for _, r := range sr.Results {
		for _, series := range r.series {
			for _, u := range series {
				if !math.IsNaN(u) {
					ymax = max(ymax, u)
				}
			}
		}
	}
	ymax = math.Ceil(ymax*10) / 10
	plots := make([][]*plot.Plot, len(sr.Results))
	for i, r := range sr.Results {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s — %d hosts, %d connections: CPU utilisation per host", r.Policy, sr.Hosts, sr.Connections)
		p.X.Label.Text = fmt.Sprintf("minutes (steady state from %.0f; host added at %.0f, host drained at %.0f, noisy neighbour at %.0f)", float64(sr.WarmUp)/60,
			float64(sr.ScaleUp)/60, float64(sr.Drain)/60, float64(sr.Noisy)/60)
		p.X.Tick.Marker = minuteTicks{}
		p.Y.Label.Text = "CPU demand / capacity"
		p.Y.Min, p.Y.Max = 0, ymax
		p.Legend.Top = true
		p.Legend.Left = true
		p.Legend.XOffs = vg.Points(10)
		p.Add(plotter.NewGrid())
		for _, at := range []int{sr.WarmUp, sr.ScaleUp, sr.Drain, sr.Noisy} {
			l, err := plotter.NewLine(plotter.XYs{{X: float64(at) / 60, Y: 0}, {X: float64(at) / 60, Y: ymax}})
			if err != nil {
				return err
			}
			l.Color = color.Black
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			p.Add(l)
		}
		legend := map[string]bool{}
		for h, series := range r.series {
			var xys plotter.XYs
			for sec, u := range series {
				if !math.IsNaN(u) {
					xys = append(xys, plotter.XY{X: float64(sec+1) / 60, Y: u})
				}
			}
			if len(xys) == 0 {
				continue
			}
			l, err := plotter.NewLine(xys)
			if err != nil {
				return err
			}
			role := sr.role(h)
			l.Color = role.color
			l.Width = vg.Points(1)
			p.Add(l)
			if i == 1 && !legend[role.name] {
				legend[role.name] = true
				p.Legend.Add(role.name, l)
			}
		}
		plots[i] = []*plot.Plot{p}
	}
	img := vgimg.New(vg.Points(1000), vg.Points(330*float64(len(plots))))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadX: vg.Points(10), PadY: vg.Points(10), PadTop: vg.Points(5), PadBottom: vg.Points(5), PadLeft: vg.Points(5), PadRight: vg.Points(10)}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// minuteTicks marks every minute and labels every other one.
type minuteTicks struct{}

func (minuteTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for m := math.Ceil(lo); m <= hi; m++ {
		t := plot.Tick{Value: m}
		if int(m)%2 == 0 {
			t.Label = fmt.Sprint(m)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// scalerColors are the daily plot's colours, one per autoscaler.
var scalerColors = []color.RGBA{
	{R: 31, G: 119, B: 180, A: 255},
	{R: 255, G: 127, B: 14, A: 255},
	{R: 44, G: 160, B: 44, A: 255},
}

// plotDaily draws the measured day of the daily farm for every
// autoscaler: the connections, the hosts running, and the hosts' mean and
// busiest utilisation against the target band.
func plotDaily(r DailyResult, path string) error {
	conns, hosts, util := plot.New(), plot.New(), plot.New()
	day := fmt.Sprintf("hour of the measured day (a day is %g h of simulated time)", r.Day.Hours())
	conns.Title.Text = fmt.Sprintf("daily farm, seed %d: connections, the same arrivals for every autoscaler (dashed: the curve they follow, before noise)", r.Seed)
	conns.Y.Label.Text = "connections"
	hosts.Title.Text = "hosts running (booting and draining included)"
	hosts.Y.Label.Text = "hosts"
	util.Title.Text = fmt.Sprintf("utilisation = CPU / CPU target: mean over the hosts in rotation (thick), busiest host (thin); band %.3g-%.3g dotted", r.Band[0], r.Band[1])
	util.Y.Label.Text = "utilisation"
	for _, p := range []*plot.Plot{conns, hosts, util} {
		p.X.Label.Text = day
		p.X.Min, p.X.Max = 0, 24
		p.X.Tick.Marker = hourTicks{}
		p.Add(plotter.NewGrid())
		p.Legend.Top = true
		p.Legend.Left = true
		p.Legend.XOffs = vg.Points(10)
	}
	line := func(p *plot.Plot, xys plotter.XYs, c color.Color, width float64, dashed bool) (*plotter.Line, error) {
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		l.Color = c
		l.Width = vg.Points(width)
		if dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		return l, nil
	}
	umax := 1.0
	for i, res := range r.Results {
		c := scalerColors[i%len(scalerColors)]
		var cx, hx, mean, busiest, curve plotter.XYs
		for _, m := range res.series {
			cx = append(cx, plotter.XY{X: m.hour, Y: float64(m.connections)})
			hx = append(hx, plotter.XY{X: m.hour, Y: float64(m.running)})
			mean = append(mean, plotter.XY{X: m.hour, Y: m.mean})
			busiest = append(busiest, plotter.XY{X: m.hour, Y: m.max})
			curve = append(curve, plotter.XY{X: m.hour, Y: m.curve})
			umax = max(umax, m.max)
		}
		if len(cx) == 0 {
			continue
		}
		if i == 0 {
			if _, err := line(conns, curve, color.Black, 1, true); err != nil {
				return err
			}
			if _, err := line(conns, cx, color.Black, 1, false); err != nil {
				return err
			}
		}
		l, err := line(hosts, hx, c, 1.5, false)
		if err != nil {
			return err
		}
		hosts.Legend.Add(fmt.Sprintf("%s: %.0f host-hours", res.Autoscaler, res.HostHours), l)
		if l, err = line(util, mean, c, 1.5, false); err != nil {
			return err
		}
		util.Legend.Add(fmt.Sprintf("%s: mean outside the band %.0f%% of the day, busiest above it %.0f%%", res.Autoscaler, 100*res.MeanOutside, 100*res.MaxAbove), l)
		if _, err = line(util, busiest, c, 0.5, false); err != nil {
			return err
		}
	}
	util.Y.Min, util.Y.Max = 0.4, math.Ceil(umax*10)/10
	util.Legend.Top = false
	for _, v := range r.Band {
		l, err := line(util, plotter.XYs{{X: 0, Y: v}, {X: 24, Y: v}}, color.Black, 1, false)
		if err != nil {
			return err
		}
		l.Dashes = []vg.Length{vg.Points(1), vg.Points(2)}
	}
	hosts.Y.Min = 0
	conns.Y.Min = 0
	plots := [][]*plot.Plot{{conns}, {hosts}, {util}}
	img := vgimg.New(vg.Points(1000), vg.Points(900))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadX: vg.Points(10), PadY: vg.Points(10), PadTop: vg.Points(5), PadBottom: vg.Points(5), PadLeft: vg.Points(5), PadRight: vg.Points(10)}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// hourTicks marks every hour and labels every other one.
type hourTicks struct{}

func (hourTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for h := math.Ceil(lo); h <= hi; h++ {
		t := plot.Tick{Value: h}
		if int(h)%2 == 0 {
			t.Label = fmt.Sprintf("%02.0f:00", h)
		}
		ticks = append(ticks, t)
	}
	return ticks
}
