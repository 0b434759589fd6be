// Command layers fails when an import breaks Flotilla's layering (ARCHITECTURE.md,
// "Layers"): arrows between the top-level folders point one way, from the operator's
// tools down to the API, and the hub and the spoke never import each other, not even
// from their tests.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
)

const module = "github.com/flotilla-dev/flotilla"

// A layer may import its own layer and any lower one. Packages are matched by the
// longest prefix.
var layers = []struct {
	prefix string
	rank   int
	name   string
}{
	{"api/meta", 0, "api types"},
	{"api/source", 0, "api types"},
	{"api/delivery", 0, "api types"},
	{"api/fleet", 0, "api types"},
	{"api/tenancy", 0, "api types"},
	{"api/notification", 0, "api types"},
	{"deploy", 0, "install manifests"},
	{"api", 1, "api: shared by hub and spoke"},
	{"tenancy", 2, "tenancy"},
	{"hub", 3, "hub"},
	{"spoke", 3, "spoke"},
	{"fleet", 4, "fleet: CLI and local fleet"},
	{"test", 5, "test harnesses"},
	{"hack", 6, "hack"},
}

// testHarness starts real control planes for any package's tests; it imports only
// the API and the install manifests, so it may be used from every layer's tests.
const testHarness = "fleet/devenv/controlplane"

// Layers of the same rank that must not import each other.
var apart = map[string]string{"hub": "spoke", "spoke": "hub"}

type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

func layerOf(path string) (top string, rank int, name string, ok bool) {
	rel := strings.TrimPrefix(path, module+"/")
	if rel == path {
		if path == module {
			rel = ""
		} else {
			return "", 0, "", false
		}
	}
	best := -1
	for i, l := range layers {
		if (rel == l.prefix || strings.HasPrefix(rel, l.prefix+"/")) && (best < 0 || len(l.prefix) > len(layers[best].prefix)) {
			best = i
		}
	}
	if best < 0 {
		return rel, -1, "unknown", true
	}
	top = strings.SplitN(rel, "/", 2)[0]
	return top, layers[best].rank, layers[best].name, true
}

func main() {
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "go list:", err)
		os.Exit(2)
	}
	pkgs := map[string]*pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			fmt.Fprintln(os.Stderr, "go list output:", err)
			os.Exit(2)
		}
		pkgs[p.ImportPath] = &p
	}

	var problems []string
	for _, p := range pkgs {
		top, rank, name, _ := layerOf(p.ImportPath)
		if rank < 0 {
			problems = append(problems, fmt.Sprintf("%s: in no layer; add it to hack/layers and ARCHITECTURE.md", p.ImportPath))
			continue
		}
		for _, imp := range p.Imports {
			itop, irank, iname, ours := layerOf(imp)
			if !ours {
				continue
			}
			switch {
			case irank > rank:
				problems = append(problems, fmt.Sprintf("%s (%s) imports %s (%s): arrows point down only", p.ImportPath, name, imp, iname))
			case apart[top] == itop:
				problems = append(problems, fmt.Sprintf("%s imports %s: hub and spoke never import each other", p.ImportPath, imp))
			}
		}
	}

	// Tests may use the harnesses under test/, but a hub package's tests must not
	// compile the spoke, nor a spoke package's the hub, nor the API's either.
	deps := func(roots []string) map[string]bool {
		seen := map[string]bool{}
		var walk func(string)
		walk = func(path string) {
			if seen[path] {
				return
			}
			seen[path] = true
			if p := pkgs[path]; p != nil {
				for _, i := range p.Imports {
					walk(i)
				}
			}
		}
		for _, r := range roots {
			walk(r)
		}
		return seen
	}
	for _, p := range pkgs {
		top, rank, _, _ := layerOf(p.ImportPath)
		if rank > 3 || rank < 0 {
			continue
		}
		for d := range deps(append(append([]string{}, p.TestImports...), p.XTestImports...)) {
			dtop, _, _, ours := layerOf(d)
			rel := strings.TrimPrefix(d, module+"/")
			if !ours || d == p.ImportPath || strings.HasPrefix(rel, testHarness) {
				continue
			}
			if apart[top] == dtop || dtop == "fleet" || (rank <= 1 && (dtop == "hub" || dtop == "spoke" || dtop == "tenancy")) {
				problems = append(problems, fmt.Sprintf("tests of %s compile %s", p.ImportPath, d))
				break
			}
		}
	}

	if len(problems) > 0 {
		sort.Strings(problems)
		fmt.Fprintln(os.Stderr, "layering broken (see ARCHITECTURE.md, Layers):")
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "  "+p)
		}
		os.Exit(1)
	}
	fmt.Printf("layers: %d packages, every import points down\n", len(pkgs))
}
