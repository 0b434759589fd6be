package drift

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// maxPaths bounds how many differing fields Diff names; one is enough to act on,
// a few help people see what changed.
const maxPaths = 5

// Diff returns the paths (e.g. ".data.value") where the live object differs from
// the server's dry-run apply of the desired one, ignoring what the server or other
// controllers write: status, managedFields, resourceVersion, generation. Empty means
// no drift.
func Diff(live, dryRun *unstructured.Unstructured) []string {
	a, b := normalize(live), normalize(dryRun)
	var paths []string
	diff("", a, b, &paths)
	sort.Strings(paths)
	return paths
}

// Describe says it for people: ".data.value, .spec.replicas".
func Describe(paths []string) string {
	if len(paths) > maxPaths {
		return strings.Join(paths[:maxPaths], ", ") + fmt.Sprintf(" and %d more", len(paths)-maxPaths)
	}
	return strings.Join(paths, ", ")
}

func normalize(u *unstructured.Unstructured) map[string]interface{} {
	obj := u.DeepCopy().Object
	delete(obj, "status")
	if md, ok := obj["metadata"].(map[string]interface{}); ok {
		for _, f := range []string{"managedFields", "resourceVersion", "generation"} {
			delete(md, f)
		}
	}
	return obj
}

// diff walks two JSON trees and appends the paths where they differ; lists are
// compared as a whole, which is what a change to any item of them means to people.
func diff(path string, a, b interface{}, out *[]string) {
	am, aok := a.(map[string]interface{})
	bm, bok := b.(map[string]interface{})
	if aok && bok {
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		for k := range keys {
			diff(path+"."+k, am[k], bm[k], out)
		}
		return
	}
	if !reflect.DeepEqual(a, b) {
		*out = append(*out, path)
	}
}
