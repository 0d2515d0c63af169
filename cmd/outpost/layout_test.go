package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const modulePath = "github.com/outpost-cdn/outpost"

// repoPackages parses the import clauses of every non-test Go file of the
// module (directories with a go.mod of their own, such as deploy/, are other modules) and returns, per package
// directory relative to the root, its imports within the module and
// whether some file carries a package doc comment.
func repoPackages(t *testing.T) (imports map[string][]string, documented map[string]bool) {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	imports = make(map[string][]string)
	documented = make(map[string]bool)
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			name := d.Name()
			if rel != "." && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); rel != "." && err == nil {
				return filepath.SkipDir // a module of its own (deploy, bench/harness/origin)
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(rel))
		if _, ok := imports[dir]; !ok {
			imports[dir] = nil
		}
		if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
			documented[dir] = true
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if rest, ok := strings.CutPrefix(p, modulePath+"/"); ok && !slices.Contains(imports[dir], rest) {
				imports[dir] = append(imports[dir], rest)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(imports) < 10 {
		t.Fatalf("found only %d packages under %s", len(imports), root)
	}
	return imports, documented
}

// forbidden reports whether pkg importing dep breaks a rule against bad:
// dep is bad or below it, and pkg is not. A package below pop (its parts)
// may not import pop itself, though the parts may import one another.
func forbidden(pkg, dep, bad string) bool {
	if !within(dep, bad) {
		return false
	}
	if !within(pkg, bad) {
		return true
	}
	return dep == bad && pkg != bad
}

// within reports whether pkg is dir or below it.
func within(pkg, dir string) bool { return pkg == dir || strings.HasPrefix(pkg, dir+"/") }

// TestImportDirections enforces the package graph the design states
// (../../DEVELOPERS.md): the PoP and the DNS server never import each
// other, the caching rules and the origin client import no role, and
// nothing but cmd imports a command.
func TestImportDirections(t *testing.T) {
	imports, _ := repoPackages(t)
	rules := []struct {
		name      string
		from      string   // packages at or below this directory
		forbidden []string // may not import these (or anything below them)
	}{
		{"pop never imports dnsgeo", "pop", []string{"dnsgeo"}},
		{"dnsgeo never imports pop", "dnsgeo", []string{"pop"}},
		{"cache imports no role", "cache", []string{"pop", "dnsgeo", "origin", "bench", "lab", "netlab", "purge", "stats", "config", "cmd"}},
		{"origin imports no role", "origin", []string{"pop", "dnsgeo", "bench", "lab", "netlab", "purge", "stats", "config", "cmd"}},
		{"config imports no role", "config", []string{"pop", "dnsgeo", "bench", "lab", "netlab", "purge", "stats", "cmd"}},
		{"the load tool is a black-box client", "bench", []string{"pop", "dnsgeo", "lab", "cmd"}},
		{"the purge client links no server", "purge", []string{"pop", "dnsgeo", "lab"}},
		{"the stats client links no server", "stats", []string{"pop", "dnsgeo", "lab"}},
		{"the wire types link no server", "popapi", []string{"pop", "dnsgeo", "lab"}},
		{"the control plane reaches the PoP through its seam only", "control", []string{"pop", "dnsgeo", "lab", "netlab", "bench"}},
		{"the fast path talks to the PoP through its seam only", "pop/fastpath", []string{"pop"}},
		{"the fill mechanics know no PoP", "pop/fill", []string{"pop", "origin", "config"}},
		{"nothing imports the command", "", []string{"cmd"}},
	}
	for _, rule := range rules {
		t.Run(rule.name, func(t *testing.T) {
			for pkg, deps := range imports {
				if rule.from != "" && !within(pkg, rule.from) || rule.from == "" && within(pkg, "cmd") {
					continue
				}
				for _, dep := range deps {
					for _, bad := range rule.forbidden {
						if forbidden(pkg, dep, bad) {
							t.Errorf("%s imports %s", pkg, dep)
						}
					}
				}
			}
		})
	}
}

// TestPackageDocs checks that every package says what it does and why in
// a package doc comment.
func TestPackageDocs(t *testing.T) {
	imports, documented := repoPackages(t)
	for pkg := range imports {
		if !documented[pkg] {
			t.Errorf("package %s has no package doc comment", pkg)
		}
	}
	if _, err := os.Stat(filepath.Join("..", "..", "DEVELOPERS.md")); err != nil {
		t.Errorf("DEVELOPERS.md, which states the package graph: %v", err)
	}
}
