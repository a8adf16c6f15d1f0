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
