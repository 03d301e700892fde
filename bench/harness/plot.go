package harness

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

	"github.com/meshlens/meshlens/bench/loadgen"
)

var pathColor = map[string]color.RGBA{
	pathDirect: {0, 0, 0, 255},
	pathML1:    {31, 119, 180, 255},
	pathML2:    {23, 60, 140, 255},
	pathHA1:    {255, 127, 14, 255},
	pathHA2:    {190, 70, 0, 255},
}

// nines places quantile q on the x axis: 1 at 90 %, 2 at 99 %, ...
func nines(q float64) float64 { return -math.Log10(1 - q) }

type ninesTicks struct{}

func (ninesTicks) Ticks(min, max float64) []plot.Tick {
	var t []plot.Tick
	for _, q := range []struct {
		v     float64
		label string
	}{{0.5, "50%"}, {0.9, "90%"}, {0.99, "99%"}, {0.999, "99.9%"}, {0.9999, "99.99%"}} {
		if x := nines(q.v); x >= min-1e-9 && x <= max+1e-9 {
			t = append(t, plot.Tick{Value: x, Label: q.label})
		}
	}
	return t
}

// latencyPlot draws latency by percentile of one scenario at one load,
// one line per path (the median over repetitions at each quantile).
func latencyPlot(res *Results, scenario, load, title string) (*plot.Plot, bool) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (ms)"
	p.X.Tick.Marker = ninesTicks{}
	p.Legend.Top, p.Legend.Left = true, true
	a := aggregate(res.Runs)
	drawn := false
	for _, path := range allPaths {
		runs := a[key("default", scenario, load, path)]
		if len(runs) == 0 {
			continue
		}
		pts := make(plotter.XYs, 0, len(loadgen.CurveQuantiles))
		for i, q := range loadgen.CurveQuantiles {
			v := make([]float64, 0, len(runs))
			for _, r := range runs {
				if i < len(r.Curve) {
					v = append(v, r.Curve[i])
				}
			}
			if len(v) == 0 {
				continue
			}
			pts = append(pts, plotter.XY{X: nines(q), Y: statOf(v).med})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			continue
		}
		l.Color = pathColor[path]
		l.Width = vg.Points(1.5)
		if path == pathML2 || path == pathHA2 {
			l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(pathLabel[path], l)
		drawn = true
	}
	p.Add(plotter.NewGrid())
	return p, drawn
}

// writePlot draws the latency plots of HTTP/1.1 and gRPC 1 KB at 1000
// requests per second side by side.
func writePlot(path string, res *Results) error {
	panels := []struct{ scenario, load, title string }{
		{"http1-1k", "1000rps", "HTTP/1.1, 1 KB, 1000 rps"},
		{"grpc-1k", "1000rps", "gRPC unary, 1 KB, 1000 rps"},
	}
	var plots []*plot.Plot
	for _, pn := range panels {
		if p, ok := latencyPlot(res, pn.scenario, pn.load, pn.title); ok {
			plots = append(plots, p)
		}
	}
	if len(plots) == 0 {
		return nil
	}
	const w, h = 8 * vg.Inch, 4 * vg.Inch
	img := vgimg.New(w*vg.Length(len(plots))/2, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(plots), PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 2, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align([][]*plot.Plot{plots}, tiles, dc)
	for i, p := range plots {
		p.Draw(canvases[0][i])
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer f.Close()
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
