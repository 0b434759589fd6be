package controlplane

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/flotilla-dev/flotilla/deploy"
)

// CRDs decodes the embedded Flotilla CRDs. Each call returns new objects, because
// installing them fills in server-side fields.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	files, err := fs.Glob(deploy.CRDs, "crds/*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, name := range files {
		f, err := deploy.CRDs.Open(name)
		if err != nil {
			return nil, err
		}
		d := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
		for {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			err := d.Decode(crd)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if crd.Name == "" { // an empty document between separators
				continue
			}
			crds = append(crds, crd)
		}
		f.Close()
	}
	if len(crds) == 0 {
		return nil, errors.New("no CRDs embedded in deploy.CRDs")
	}
	return crds, nil
}
