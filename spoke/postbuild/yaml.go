package postbuild

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	sigsyaml "sigs.k8s.io/yaml"
)

// SubstituteAnnotation on an object with the value SubstituteDisabled keeps it out of
// substitution, for manifests that carry ${…} meant for another tool.
const (
	SubstituteAnnotation = "fleet.flotilla.dev/substitute"
	SubstituteDisabled   = "disabled"
)

// Options tune substitution.
type Options struct {
	// Strict makes a reference to an unset variable without a default an error;
	// otherwise it becomes the empty string, as in Flux.
	Strict bool
}

// Disabled reports whether an object asks to be left out of substitution.
func Disabled(u *unstructured.Unstructured) bool {
	return u.GetAnnotations()[SubstituteAnnotation] == SubstituteDisabled
}

// SubstituteYAML expands variables in one YAML (or JSON) document and returns the
// document re-encoded as YAML.
//
// It works on the scalars of the parsed document rather than on its text: a value
// can never inject keys or break the document's structure, whatever it holds
// (newlines, ": ", quotes). Typing follows the source as a textual substitution
// would: a quoted "${port}" stays a string, while a plain ${replicas} takes the type
// of what it expands to (replicas: 3 is an integer). A plain reference that expands
// to nothing stays an empty string rather than turning into null.
func SubstituteYAML(doc []byte, vars map[string]string, opts Options) ([]byte, error) {
	if !bytes.Contains(doc, []byte("${")) {
		return doc, nil
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return doc, nil
		}
		return nil, fmt.Errorf("parsing YAML: %w", err)
	}
	changed, err := substituteNode(&root, vars, opts)
	if err != nil {
		return nil, err
	}
	if !changed {
		return doc, nil
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, fmt.Errorf("encoding YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func substituteNode(n *yaml.Node, vars map[string]string, opts Options) (bool, error) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode, yaml.MappingNode:
		changed := false
		for _, c := range n.Content {
			ch, err := substituteNode(c, vars, opts)
			if err != nil {
				return false, err
			}
			changed = changed || ch
		}
		return changed, nil
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return false, nil
		}
		v, err := Expand(n.Value, vars, opts.Strict)
		if err != nil {
			return false, fmt.Errorf("line %d: %w", n.Line, err)
		}
		if v == n.Value {
			return false, nil
		}
		n.Value = v
		plain := n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle|yaml.TaggedStyle) == 0
		if plain && v != "" {
			// Let the encoder resolve the new text, as a parser would have had the
			// value been written there.
			n.Tag = ""
		}
		return true, nil
	}
	// Aliases point at nodes that are substituted where they are defined.
	return false, nil
}

// SubstituteObject expands variables in an object already parsed. The object goes
// through YAML, so quoting of the source is lost: prefer SubstituteYAML on the
// source document where it is at hand.
func SubstituteObject(u *unstructured.Unstructured, vars map[string]string, opts Options) error {
	data, err := sigsyaml.Marshal(u.Object)
	if err != nil {
		return err
	}
	out, err := SubstituteYAML(data, vars, opts)
	if err != nil {
		return err
	}
	obj := map[string]interface{}{}
	if err := sigsyaml.Unmarshal(out, &obj); err != nil {
		return err
	}
	u.Object = obj
	return nil
}
