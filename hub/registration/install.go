package registration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/template"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"
	"github.com/flotilla-dev/flotilla/api/registration"
	"github.com/flotilla-dev/flotilla/api/version"
	"github.com/flotilla-dev/flotilla/deploy"
)

// DefaultAgentImage is the agent image of this release.
var DefaultAgentImage = "ghcr.io/flotilla-dev/flotilla-agent:" + version.Version

// InstallFieldOwner is the server-side apply field manager of the install manifests.
const InstallFieldOwner = "flotilla-install"

// InstallValues fill the agent's install manifests (deploy/agent) for one cluster.
type InstallValues struct {
	Cluster         string
	Token           string
	Expires         time.Time
	RegistrationURL string
	RegistrationCA  []byte
	HubServer       string
	HubCA           []byte
	Image           string
}

var installTemplate = template.Must(template.New("agent").Funcs(template.FuncMap{
	"b64": func(v any) string {
		switch v := v.(type) {
		case string:
			return base64.StdEncoding.EncodeToString([]byte(v))
		case []byte:
			return base64.StdEncoding.EncodeToString(v)
		}
		panic(fmt.Sprintf("b64 of %T", v))
	},
	// JSON strings are YAML strings, whatever they hold.
	"quote": func(s string) string { b, _ := json.Marshal(s); return string(b) },
}).Parse(deploy.AgentManifests))

// RenderInstall renders the install manifests as multi-document YAML.
func RenderInstall(v InstallValues) ([]byte, error) {
	if v.Cluster == "" || v.Token == "" || v.RegistrationURL == "" || v.HubServer == "" {
		return nil, errors.New("cluster, token, registration URL and hub server are required")
	}
	if v.Image == "" {
		v.Image = DefaultAgentImage
	}
	data := struct {
		InstallValues
		Namespace string
		Expires   string
	}{v, registration.SpokeNamespace, v.Expires.UTC().Format(time.RFC3339)}
	var buf bytes.Buffer
	if err := installTemplate.Execute(&buf, data); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// InstallObjects renders the install manifests as objects, in apply order.
func InstallObjects(v InstallValues) ([]*unstructured.Unstructured, error) {
	y, err := RenderInstall(v)
	if err != nil {
		return nil, err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(y), 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// ApplyInstall server-side applies the install manifests to a spoke. A credential the
// agent stored from an earlier registration is deleted, so that the agent registers
// again with the new token (this is how `cluster rotate` reaches a running agent).
func ApplyInstall(ctx context.Context, spoke client.Client, v InstallValues) error {
	objs, err := InstallObjects(v)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := spoke.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.FieldOwner(InstallFieldOwner), client.ForceOwnership); err != nil {
			return fmt.Errorf("apply %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	cred := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: registration.SpokeNamespace, Name: registration.CredentialSecretName}}
	if err := spoke.Delete(ctx, cred); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete the old credential: %w", err)
	}
	return nil
}

// Uninstall deletes the agent and everything its install created from a spoke,
// including the stored hub credential. What the agent applied stays.
func Uninstall(ctx context.Context, spoke client.Client) error {
	objs, err := InstallObjects(InstallValues{Cluster: "x", Token: "x", RegistrationURL: "x", HubServer: "x"})
	if err != nil {
		return err
	}
	var errs []error
	cred := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: registration.SpokeNamespace, Name: registration.CredentialSecretName}}
	if err := spoke.Delete(ctx, cred); client.IgnoreNotFound(err) != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, err)
	}
	// Reverse order: the Deployment before its credentials, the Namespace last.
	for i := len(objs) - 1; i >= 0; i-- {
		if err := spoke.Delete(ctx, objs[i]); client.IgnoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("delete %s %s: %w", objs[i].GetKind(), objs[i].GetName(), err))
		}
	}
	return errors.Join(errs...)
}

// PrepareCluster creates (or relabels) the fleet Cluster and issues its bootstrap
// token, returning the values its install manifests need. labels are set on top of
// the Cluster's existing ones.
func PrepareCluster(ctx context.Context, hub client.Client, systemNamespace, name string, labels map[string]string, ttl time.Duration) (InstallValues, error) {
	if name == "" || len(name) > MaxClusterNameLength {
		return InstallValues{}, fmt.Errorf("cluster name must have 1 to %d characters", MaxClusterNameLength)
	}
	info, err := ReadHubInfo(ctx, hub, systemNamespace)
	if err != nil {
		return InstallValues{}, err
	}
	cl := &fleetv1.Cluster{}
	err = hub.Get(ctx, client.ObjectKey{Name: name}, cl)
	switch {
	case apierrors.IsNotFound(err):
		cl = &fleetv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
		if err := hub.Create(ctx, cl); err != nil {
			return InstallValues{}, fmt.Errorf("create cluster %s: %w", name, err)
		}
	case err != nil:
		return InstallValues{}, err
	case len(labels) > 0:
		before := cl.DeepCopy()
		cl.Labels = merge(cl.Labels, labels)
		if err := hub.Patch(ctx, cl, client.MergeFrom(before)); err != nil {
			return InstallValues{}, fmt.Errorf("label cluster %s: %w", name, err)
		}
	}
	if cl.DeletionTimestamp != nil {
		return InstallValues{}, fmt.Errorf("cluster %s is being deleted", name)
	}
	token, expires, err := IssueBootstrapToken(ctx, hub, systemNamespace, name, ttl)
	if err != nil {
		return InstallValues{}, err
	}
	return InstallValues{
		Cluster:         name,
		Token:           token,
		Expires:         expires,
		RegistrationURL: info.RegistrationURL,
		RegistrationCA:  info.RegistrationCA,
		HubServer:       info.Server,
		HubCA:           info.CAData,
	}, nil
}
