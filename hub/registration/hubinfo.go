package registration

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// HubInfoConfigMap (in the system namespace) tells `flotilla cluster add` where
// spokes reach the hub: like kube-public/cluster-info, it holds nothing secret.
const HubInfoConfigMap = "flotilla-hub-info"

// HubInfo is where spokes reach the hub.
type HubInfo struct {
	// Server and CAData reach the hub's API server.
	Server string
	CAData []byte
	// RegistrationURL is the hub's /register endpoint; RegistrationCA verifies it
	// when it is HTTPS with a certificate of the hub's own.
	RegistrationURL string
	RegistrationCA  []byte
}

// PublishHubInfo writes info into the HubInfoConfigMap.
func PublishHubInfo(ctx context.Context, c client.Client, ns string, info HubInfo) error {
	data := map[string]string{"server": info.Server, "ca.crt": string(info.CAData), "registrationURL": info.RegistrationURL}
	if len(info.RegistrationCA) > 0 {
		data["registrationCA.crt"] = string(info.RegistrationCA)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: HubInfoConfigMap}}
	err := c.Get(ctx, client.ObjectKeyFromObject(cm), cm)
	if apierrors.IsNotFound(err) {
		cm.Data = data
		return c.Create(ctx, cm)
	}
	if err != nil {
		return err
	}
	cm.Data = data
	return c.Update(ctx, cm)
}

// ReadHubInfo reads the HubInfoConfigMap.
func ReadHubInfo(ctx context.Context, c client.Client, ns string) (HubInfo, error) {
	var cm corev1.ConfigMap
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: HubInfoConfigMap}, &cm); err != nil {
		return HubInfo{}, fmt.Errorf("hub info %s/%s (is the hub running?): %w", ns, HubInfoConfigMap, err)
	}
	info := HubInfo{
		Server:          cm.Data["server"],
		CAData:          []byte(cm.Data["ca.crt"]),
		RegistrationURL: cm.Data["registrationURL"],
		RegistrationCA:  []byte(cm.Data["registrationCA.crt"]),
	}
	if info.Server == "" || info.RegistrationURL == "" {
		return HubInfo{}, fmt.Errorf("hub info %s/%s lacks server or registrationURL", ns, HubInfoConfigMap)
	}
	return info, nil
}
