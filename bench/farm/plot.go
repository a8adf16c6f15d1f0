package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// hostColors colour the drained host red and the joining one green.
var hostColors = []color.RGBA{
	{R: 214, G: 39, B: 40, A: 255},
	{R: 31, G: 119, B: 180, A: 255},
	{R: 255, G: 127, B: 14, A: 255},
	{R: 140, G: 140, B: 140, A: 255},
	{R: 44, G: 160, B: 44, A: 255},
	{R: 148, G: 103, B: 189, A: 255},
}

// plotHosts draws the connections of each host over time, and of each
// HAProxy below, with the events and the steady window, into
// dir/farm-hosts.png.
func plotHosts(dir string, r *results) (string, error) {
	hosts := plot.New()
	hosts.Title.Text = fmt.Sprintf("Connections per host (each application's count): %d clients, %d HAProxies; shaded: the agents' measurement window", r.Plan.Conns, r.Plan.HAProxies)
	hp := plot.New()
	hp.Title.Text = "Connections per HAProxy process (CurrConns), one line each"
	tMax := r.Samples[len(r.Samples)-1].T
	yHosts, yHAProxy := 0.0, 0.0
	for _, s := range r.Samples {
		for _, n := range s.Hosts {
			yHosts = max(yHosts, float64(n))
		}
		for _, n := range s.HAProxies {
			yHAProxy = max(yHAProxy, float64(n))
		}
	}
	for _, p := range []*plot.Plot{hosts, hp} {
		p.Title.TextStyle.Font.Size = vg.Points(11)
		p.X.Label.Text = "seconds since the clients started"
		p.Y.Label.Text = "connections"
		p.X.Min, p.X.Max = 0, tMax
		p.X.Tick.Marker = secondTicks{}
		p.Y.Min = 0
		p.Legend.Top = true
		p.Legend.Left = true
		// Below the event labels, right of the first one.
		p.Legend.XOffs, p.Legend.YOffs = vg.Points(70), -vg.Points(45)
		p.Legend.TextStyle.Font.Size = vg.Points(9)
		p.Add(plotter.NewGrid())
	}
	hosts.Y.Max = yHosts*1.25 + 1
	hp.Y.Max = max(yHAProxy, float64(r.Plan.MaxPerHAProxy)) * 1.12
	if s := r.Steady; s != nil {
		for _, p := range []*plot.Plot{hosts, hp} {
			poly, err := plotter.NewPolygon(plotter.XYs{{X: s.From, Y: 0}, {X: s.To, Y: 0}, {X: s.To, Y: p.Y.Max}, {X: s.From, Y: p.Y.Max}})
			if err != nil {
				return "", err
			}
			poly.Color = color.RGBA{R: 230, G: 230, B: 230, A: 255}
			poly.LineStyle.Width = 0
			p.Add(poly)
		}
	}
	for i := range r.Samples[0].Hosts {
		var xy plotter.XYs
		for _, s := range r.Samples {
			xy = append(xy, plotter.XY{X: s.T, Y: float64(s.Hosts[i])})
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return "", err
		}
		l.Color = hostColors[i%len(hostColors)]
		l.Width = vg.Points(1.5)
		hosts.Add(l)
		hosts.Legend.Add(fmt.Sprintf("ws%d", i+1), l)
	}
	for i := range r.Samples[0].HAProxies {
		var xy plotter.XYs
		for _, s := range r.Samples {
			if s.HAProxies[i] >= 0 {
				xy = append(xy, plotter.XY{X: s.T, Y: float64(s.HAProxies[i])})
			}
		}
		if len(xy) == 0 {
			continue
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return "", err
		}
		l.Color = color.NRGBA{R: 31, G: 119, B: 180, A: 160}
		l.Width = vg.Points(1)
		hp.Add(l)
	}
	maxLine, err := plotter.NewLine(plotter.XYs{{X: 0, Y: float64(r.Plan.MaxPerHAProxy)}, {X: tMax, Y: float64(r.Plan.MaxPerHAProxy)}})
	if err != nil {
		return "", err
	}
	maxLine.Color = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	maxLine.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
	hp.Add(maxLine)
	hp.Legend.Add(fmt.Sprintf("maxconn %d: the most one HAProxy holds", r.Plan.MaxPerHAProxy), maxLine)
	for _, p := range []*plot.Plot{hosts, hp} {
		for _, ev := range r.Events {
			l, err := plotter.NewLine(plotter.XYs{{X: ev.At, Y: 0}, {X: ev.At, Y: p.Y.Max}})
			if err != nil {
				return "", err
			}
			l.Color = color.Black
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			p.Add(l)
		}
	}
	labels, err := eventLabels(r.Events, hosts.Y.Max)
	if err != nil {
		return "", err
	}
	hosts.Add(labels)

	img := vgimg.New(vg.Points(1000), vg.Points(640))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Points(10), PadY: vg.Points(14), PadTop: vg.Points(6),
		PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(12)}
	rows := [][]*plot.Plot{{hosts}, {hp}}
	canvases := plot.Align(rows, tiles, dc)
	hosts.Draw(canvases[0][0])
	hp.Draw(canvases[1][0])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "farm-hosts.png")
	out, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(out); err != nil {
		out.Close()
		return "", err
	}
	return path, out.Close()
}

// secondTicks marks every 10 seconds and labels every 50 (every 10 and 50
// below a minute and a half: quick runs).
type secondTicks struct{}

func (secondTicks) Ticks(lo, hi float64) []plot.Tick {
	minor, major := 10.0, 50.0
	if hi-lo < 90 {
		minor, major = 5, 10
	}
	var ticks []plot.Tick
	for s := math.Ceil(lo/minor) * minor; s <= hi; s += minor {
		t := plot.Tick{Value: s}
		if math.Mod(s, major) == 0 {
			t.Label = fmt.Sprint(s)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// eventLabels writes each event's name beside its line, near the top.
func eventLabels(events []event, yMax float64) (*plotter.Labels, error) {
	var xy plotter.XYs
	var text []string
	for i, ev := range events {
		// Alternate heights so that close events do not overlap.
		y := yMax * (0.97 - 0.06*float64(i%3))
		xy = append(xy, plotter.XY{X: ev.At, Y: y})
		text = append(text, " "+ev.Label)
	}
	labels, err := plotter.NewLabels(plotter.XYLabels{XYs: xy, Labels: text})
	if err != nil {
		return nil, err
	}
	for i := range labels.TextStyle {
		labels.TextStyle[i].Font.Size = vg.Points(9)
	}
	return labels, nil
}
