package apply

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Parse reads every .yaml, .yml and .json file of an artifact, in name order, and
// returns its objects sorted for apply (see SortForApply). YAML files may hold many
// documents; empty ones are skipped, and a v1 List is expanded into its items.
func Parse(files map[string][]byte) ([]*unstructured.Unstructured, error) {
	names := make([]string, 0, len(files))
	for name := range files {
		switch strings.ToLower(path.Ext(name)) {
		case ".yaml", ".yml", ".json":
			names = append(names, name)
		}
	}
	sort.Strings(names)

	var objs []*unstructured.Unstructured
	seen := map[string]string{} // object ID to the file that holds it
	for _, name := range names {
		docs, err := parseFile(name, files[name])
		if err != nil {
			return nil, err
		}
		for _, u := range docs {
			id := RefOf(u).ID()
			if first, ok := seen[id]; ok {
				return nil, fmt.Errorf("%s: %s is also defined in %s", name, RefOf(u), first)
			}
			seen[id] = name
			objs = append(objs, u)
		}
	}
	SortForApply(objs)
	return objs, nil
}

func parseFile(name string, data []byte) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for doc := 1; ; doc++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, doc, err)
		}
		js, err := utilyaml.ToJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, doc, err)
		}
		if t := bytes.TrimSpace(js); len(t) == 0 || bytes.Equal(t, []byte("null")) {
			continue
		}
		// utiljson keeps integers as int64, as unstructured objects require.
		var content map[string]interface{}
		if err := utiljson.Unmarshal(js, &content); err != nil {
			return nil, fmt.Errorf("%s: document %d is not an object: %w", name, doc, err)
		}
		if len(content) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: content}
		if u.GetAPIVersion() == "v1" && u.GetKind() == "List" {
			items, err := u.ToList()
			if err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", name, doc, err)
			}
			for i := range items.Items {
				item := &items.Items[i]
				if err := check(item); err != nil {
					return nil, fmt.Errorf("%s: document %d: item %d: %w", name, doc, i+1, err)
				}
				objs = append(objs, item)
			}
			continue
		}
		if err := check(u); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, doc, err)
		}
		objs = append(objs, u)
	}
}

// check refuses what server-side apply cannot address, and drops the fields that
// belong to a live object rather than to a manifest.
func check(u *unstructured.Unstructured) error {
	for _, f := range []string{"apiVersion", "kind"} {
		if s, ok := u.Object[f].(string); !ok || s == "" {
			return fmt.Errorf("object has no %s", f)
		}
	}
	if _, ok := u.Object["metadata"].(map[string]interface{}); !ok && u.Object["metadata"] != nil {
		return fmt.Errorf("%s: metadata is not an object", u.GetKind())
	}
	if u.GetName() == "" {
		return fmt.Errorf("%s has no metadata.name", u.GetKind())
	}
	u.SetResourceVersion("")
	u.SetUID("")
	u.SetManagedFields(nil)
	return nil
}

// SortForApply orders objects so that what others depend on comes first:
// CustomResourceDefinitions, then Namespaces, then everything else, each group
// keeping its order.
func SortForApply(objs []*unstructured.Unstructured) {
	sort.SliceStable(objs, func(i, j int) bool { return rank(RefOf(objs[i])) < rank(RefOf(objs[j])) })
}

// rank is an object's place in the apply order; deletion runs in the reverse order.
func rank(r ObjectRef) int {
	switch {
	case r.Group == "apiextensions.k8s.io" && r.Kind == "CustomResourceDefinition":
		return 0
	case r.Group == "" && r.Kind == "Namespace":
		return 1
	default:
		return 2
	}
}
