package agent

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// layers ranks the daemon's packages along the data flow: a package may
// import only packages of a lower rank. The leaves (haproxy, metrics, the
// application-side shed, internal/...) import no agent package at all.
var layers = map[string]int{
	"haproxy":         0,
	"metrics":         0,
	"shed":            0,
	"agent/policy":    0,
	"agent/config":    1,
	"agent/runtime":   2,
	"agent/shed":      2,
	"agent/sampler":   2,
	"agent/rebalance": 3,
	"agent/control":   4,
	"agent":           5,
	"cmd":             6,
}

const module = "github.com/hafeed/hafeed/"

// TestImportGraphIsOneWay keeps the import graph one-way: no package
// imports one above it or beside it, and every package under agent/ has
// its place in layers.
func TestImportGraphIsOneWay(t *testing.T) {
	t.Parallel()
	dirs, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, ok := layers["agent/"+d.Name()]; d.IsDir() && d.Name() != "testdata" && !ok {
			t.Errorf("package agent/%s has no place in layers: add it", d.Name())
		}
	}
	for pkg, rank := range layers {
		dir := filepath.Join("..", pkg)
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			checked++
			parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range parsed.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				dep, ok := strings.CutPrefix(path, module)
				if !ok || strings.HasPrefix(dep, "internal/") {
					continue
				}
				depRank, known := layers[dep]
				switch {
				case !known && strings.HasPrefix(dep, "agent"):
					t.Errorf("%s imports %s, which has no place in layers", f, path)
				case known && depRank >= rank && !(rank == 0 && !strings.HasPrefix(dep, "agent")):
					t.Errorf("%s (rank %d) imports %s (rank %d): imports must go down the layers", f, rank, dep, depRank)
				}
			}
		}
		if checked == 0 {
			t.Errorf("no source file of %s found in %s: the test checked nothing there", pkg, dir)
		}
	}
}
