package helm

import "testing"

func TestDecide(t *testing.T) {
	const d1, d2 = "sha256:1", "sha256:2"
	deployed := func(digest string) Observed {
		return Observed{Exists: true, Status: "deployed", Digest: digest, HasDeployed: true}
	}
	failed := func(digest string, hasDeployed bool) Observed {
		return Observed{Exists: true, Status: "failed", Digest: digest, HasDeployed: hasDeployed}
	}
	for _, tc := range []struct {
		name string
		obs  Observed
		want Desired
		plan Plan
	}{
		{"no release: install", Observed{}, Desired{Digest: d1}, PlanInstall},
		{"uninstalled release kept in history: install", Observed{Status: "uninstalled", Digest: d1, HasDeployed: true}, Desired{Digest: d1}, PlanInstall},
		{"same digest deployed: nothing", deployed(d1), Desired{Digest: d1}, PlanNothing},
		{"same digest deployed after failures: nothing", deployed(d1), Desired{Digest: d1, Failures: 5}, PlanNothing},
		{"new digest: upgrade", deployed(d1), Desired{Digest: d2}, PlanUpgrade},
		{"failed install, retries left: reinstall", failed(d1, false), Desired{Digest: d1, Failures: 1, InstallRetries: 2}, PlanReinstall},
		{"failed install, retries used: stalled", failed(d1, false), Desired{Digest: d1, Failures: 3, InstallRetries: 2}, PlanStalled},
		{"failed install, no retries: stalled", failed(d1, false), Desired{Digest: d1, Failures: 1}, PlanStalled},
		{"failed install of an older digest: reinstall the new one", failed(d1, false), Desired{Digest: d2}, PlanReinstall},
		{"failed upgrade not remediated, retries left", failed(d2, true), Desired{Digest: d2, Failures: 1, UpgradeRetries: 1}, PlanRemediateUpgrade},
		{"failed upgrade rolled back, retries left: upgrade again", deployed(d1), Desired{Digest: d2, Failures: 1, UpgradeRetries: 2}, PlanUpgrade},
		{"failed upgrade rolled back, retries used: stalled", deployed(d1), Desired{Digest: d2, Failures: 1}, PlanStalled},
		{"failed upgrade left failed, retries used: stalled", failed(d2, true), Desired{Digest: d2, Failures: 3, UpgradeRetries: 2}, PlanStalled},
		{"a new digest after a failed upgrade: upgrade", failed(d2, true), Desired{Digest: d1}, PlanUpgrade},
		{"failed upgrade uninstalled: install counts against upgrade retries", Observed{}, Desired{Digest: d2, Failures: 1, UpgradeRetries: 1, UpgradeUninstalls: true}, PlanInstall},
		{"failed upgrade uninstalled, retries used: stalled", Observed{}, Desired{Digest: d2, Failures: 2, UpgradeRetries: 1, UpgradeUninstalls: true}, PlanStalled},
		{"interrupted upgrade (marked failed): remediate", failed(d2, true), Desired{Digest: d2}, PlanRemediateUpgrade},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(tc.obs, tc.want); got != tc.plan {
				t.Errorf("Decide(%+v, %+v) = %s, want %s", tc.obs, tc.want, got, tc.plan)
			}
		})
	}
}
