package install

import (
	"bytes"
	"context"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/flotilla-dev/flotilla/fleet/cli"
	"github.com/flotilla-dev/flotilla/test/env"
)

func TestMain(m *testing.M) { env.Main(m) }

// HubUser is the identity the install gives the hub: its ServiceAccount. The API
// server adds the ServiceAccount groups when it is impersonated.
const HubUser = "system:serviceaccount:flotilla-system:flotilla-hub"

// asHub is cfg impersonating the hub's ServiceAccount: the hub then has exactly the
// rights the install manifests give it.
func asHub(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: HubUser}
	return cfg
}

// flotilla runs one command line of the CLI.
func flotilla(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := cli.NewRootCommand()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}
