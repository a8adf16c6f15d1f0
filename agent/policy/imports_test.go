package policy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// TestImportsOnlyTheStandardLibrary keeps the policy pure: the simulator
// links it, and it must not bring in the daemon's logger, YAML, Prometheus
// or system calls.
func TestImportsOnlyTheStandardLibrary(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
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
			if first, _, _ := strings.Cut(path, "/"); strings.Contains(first, ".") {
				t.Errorf("%s imports %s: package policy imports only the standard library", f, path)
			}
		}
	}
	if checked == 0 {
		t.Fatalf("no source file of package policy found in the working directory: the test checked nothing")
	}
}

// TestNoWireFormat keeps the wire format out of the policy: its types are
// the domain's, and the packages that serialise them (agent/control for
// status --json, agent for the state file) keep their own JSON structs.
func TestNoWireFormat(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		checked++
		fset := token.NewFileSet()
		parsed, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(parsed, func(n ast.Node) bool {
			field, ok := n.(*ast.Field)
			if !ok || field.Tag == nil {
				return true
			}
			tag, _ := strconv.Unquote(field.Tag.Value)
			if _, ok := reflect.StructTag(tag).Lookup("json"); ok {
				t.Errorf("%s:%d: a field has a JSON tag: the wire format belongs to the package that speaks it", f, fset.Position(field.Pos()).Line)
			}
			return true
		})
	}
	if checked == 0 {
		t.Fatalf("no source file of package policy found in the working directory: the test checked nothing")
	}
}
