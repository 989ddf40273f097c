package server

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/collabd/collabd/storage"
)

// openAPIRoutes reads docs/openapi.yaml and returns its operations as
// "METHOD /path" (the mux's pattern syntax) and every $ref it uses.
func openAPIRoutes(t *testing.T) (routes []string, refs []string, doc map[string]any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1") {
		t.Fatalf("openapi version %q, want 3.1.x", v)
	}
	paths, _ := doc["paths"].(map[string]any)
	for path, item := range paths {
		ops, _ := item.(map[string]any)
		for method, op := range ops {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
			default:
				continue // parameters, summary, …
			}
			o, _ := op.(map[string]any)
			if r, _ := o["responses"].(map[string]any); len(r) == 0 {
				t.Errorf("%s %s: no responses", method, path)
			}
			routes = append(routes, strings.ToUpper(method)+" "+path)
		}
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && k == "$ref" {
					refs = append(refs, s)
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	slices.Sort(routes)
	return routes, refs, doc
}

// registeredRoutes returns the patterns this package registers on a mux:
// every HandleFunc/Handle call whose first argument is a "METHOD /path"
// literal, in the package's non-test files.
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 2 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "HandleFunc" && sel.Sel.Name != "Handle") {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				t.Errorf("%s: route registered with a non-literal pattern; the OpenAPI check cannot see it", fset.Position(call.Pos()))
				return true
			}
			p, err := strconv.Unquote(lit.Value)
			if err == nil && strings.Contains(p, " /") {
				out = append(out, p)
			}
			return true
		})
	}
	slices.Sort(out)
	return out
}

// TestOpenAPIMatchesRoutes checks that docs/openapi.yaml describes exactly
// the routes Handler serves: the same (method, path) set as the patterns
// registered in this package, each of which the real mux resolves to
// itself, and that every $ref points at something.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	documented, refs, doc := openAPIRoutes(t)
	registered := registeredRoutes(t)
	if !slices.Equal(documented, registered) {
		for _, r := range registered {
			if !slices.Contains(documented, r) {
				t.Errorf("route %q is served but not in docs/openapi.yaml", r)
			}
		}
		for _, r := range documented {
			if !slices.Contains(registered, r) {
				t.Errorf("docs/openapi.yaml documents %q, which is not served", r)
			}
		}
	}

	store, err := storage.Open(filepath.Join(t.TempDir(), "collabd.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	s, err := New(Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}()
	mux := s.routes()
	for _, r := range documented {
		method, path, _ := strings.Cut(r, " ")
		concrete := path
		for _, seg := range []string{"{id}", "{session}", "{seq}"} {
			concrete = strings.ReplaceAll(concrete, seg, "x%2Fy")
		}
		req := httptest.NewRequest(method, concrete, nil)
		if _, pattern := mux.Handler(req); pattern != r {
			t.Errorf("%s %s resolves to pattern %q, want %q", method, concrete, pattern, r)
		}
	}

	for _, ref := range refs {
		var cur any = doc
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			m, _ := cur.(map[string]any)
			cur = m[part]
		}
		if cur == nil || !strings.HasPrefix(ref, "#/") {
			t.Errorf("$ref %q does not resolve", ref)
		}
	}
}
