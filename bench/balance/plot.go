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

// backendColors colour ws1 (the slow host) red and ws4 (added or drained)
// green.
var backendColors = map[string]color.RGBA{
	"ws1": {R: 214, G: 39, B: 40, A: 255},
	"ws2": {R: 31, G: 119, B: 180, A: 255},
	"ws3": {R: 140, G: 140, B: 140, A: 255},
	"ws4": {R: 44, G: 160, B: 44, A: 255},
}

// plotScenario draws, for one scenario, each backend's CPU and connections
// over time, one row of panels per policy, and returns the file written.
func plotScenario(dir string, sc scenario, results []runResult) (string, error) {
	var rows [][]*plot.Plot
	cpuMax, connMax := 0.0, 0.0
	for _, r := range results {
		for _, s := range r.Samples {
			for i := range s.CPU {
				if !math.IsNaN(s.CPU[i]) {
					cpuMax = max(cpuMax, s.CPU[i])
				}
				connMax = max(connMax, float64(s.Conns[i]))
			}
		}
	}
	cpuMax = math.Ceil(cpuMax*10+0.5) / 10
	connMax = math.Ceil(connMax/50+0.5) * 50
	for _, r := range results {
		cpu := panel(fmt.Sprintf("%s — CPU per backend (max/mean %.2f in the shaded window)", r.Policy, r.MaxMeanCPU), "cores", cpuMax, r)
		conns := panel(r.Policy+" — connections per backend", "connections", connMax, r)
		if err := markWindow(cpu, r, cpuMax); err != nil {
			return "", err
		}
		for i, name := range r.Backends {
			var cx, nx plotter.XYs
			for _, s := range r.Samples {
				if s.T <= 0.5 {
					continue // the first sample's CPU rate is from before the clients
				}
				if !math.IsNaN(s.CPU[i]) {
					cx = append(cx, plotter.XY{X: s.T, Y: s.CPU[i]})
				}
				nx = append(nx, plotter.XY{X: s.T, Y: float64(s.Conns[i])})
			}
			label := fmt.Sprintf("%s (speed %g)", name, r.Speeds[i])
			for _, pair := range []struct {
				p   *plot.Plot
				xys plotter.XYs
			}{{cpu, cx}, {conns, nx}} {
				if len(pair.xys) == 0 {
					continue
				}
				l, err := plotter.NewLine(pair.xys)
				if err != nil {
					return "", err
				}
				l.Color = backendColors[name]
				l.Width = vg.Points(1.5)
				pair.p.Add(l)
				pair.p.Legend.Add(label, l)
			}
		}
		for _, p := range []*plot.Plot{cpu, conns} {
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
		rows = append(rows, []*plot.Plot{cpu, conns})
	}
	if len(rows) == 0 {
		return "", nil
	}
	img := vgimg.New(vg.Points(1100), vg.Points(230*float64(len(rows))+30))
	dc := draw.New(img)
	title := draw.Crop(dc, 0, 0, 0, 0)
	titleFont := plot.DefaultFont
	titleFont.Size = vg.Points(13)
	title.FillText(draw.TextStyle{Color: color.Black, Font: titleFont, Handler: plot.DefaultTextHandler, XAlign: draw.XCenter},
		vg.Point{X: dc.Max.X / 2, Y: dc.Max.Y - vg.Points(16)}, sc.Title+" — dashed: event")
	body := draw.Crop(dc, 0, 0, 0, -vg.Points(30))
	tiles := draw.Tiles{Rows: len(rows), Cols: 2, PadX: vg.Points(20), PadY: vg.Points(12), PadTop: vg.Points(5),
		PadBottom: vg.Points(5), PadLeft: vg.Points(5), PadRight: vg.Points(10)}
	canvases := plot.Align(rows, tiles, body)
	for i := range rows {
		for j := range rows[i] {
			rows[i][j].Draw(canvases[i][j])
		}
	}
	path := filepath.Join(dir, "balance-"+sc.Name+".png")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}

func panel(title, ylabel string, ymax float64, r runResult) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(10)
	p.X.Label.Text = "seconds since the clients started"
	p.Y.Label.Text = ylabel
	p.X.Min, p.X.Max = 0, r.WindowTo
	p.X.Tick.Marker = secondTicks{}
	p.Y.Min, p.Y.Max = 0, ymax
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	p.Add(plotter.NewGrid())
	return p
}

// markWindow shades the steady-state window.
func markWindow(p *plot.Plot, r runResult, ymax float64) error {
	poly, err := plotter.NewPolygon(plotter.XYs{{X: r.WindowFrom, Y: 0}, {X: r.WindowTo, Y: 0}, {X: r.WindowTo, Y: ymax}, {X: r.WindowFrom, Y: ymax}})
	if err != nil {
		return err
	}
	poly.Color = color.RGBA{R: 230, G: 230, B: 230, A: 255}
	poly.LineStyle.Width = 0
	p.Add(poly)
	return nil
}

// secondTicks marks every 5 seconds and labels every 10.
type secondTicks struct{}

func (secondTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for s := math.Ceil(lo/5) * 5; s <= hi; s += 5 {
		t := plot.Tick{Value: s}
		if int(s)%10 == 0 {
			t.Label = fmt.Sprint(s)
		}
		ticks = append(ticks, t)
	}
	return ticks
}
