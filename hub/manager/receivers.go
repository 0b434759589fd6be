package manager

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	notificationv1 "github.com/flotilla-dev/flotilla/api/notification/v1alpha1"
	"github.com/flotilla-dev/flotilla/hub/receiver"
)

// serveReceivers serves the webhook receivers on every replica: under /hook/ of the
// artifact server, or on a listener of their own (opts.ReceiverAddr). It returns
// the base URL callers reach them at.
func serveReceivers(ctx context.Context, mgr ctrl.Manager, artifacts *http.ServeMux, artifactURL string, opts Options) (string, error) {
	if err := receiver.IndexFields(ctx, mgr.GetFieldIndexer()); err != nil {
		return "", err
	}
	h := &receiver.Handler{Cache: mgr.GetClient(), Live: mgr.GetAPIReader(), Writer: mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("flotilla-receiver"), Log: mgr.GetLogger().WithName("receiver")}
	if opts.ReceiverAddr == "" {
		artifacts.Handle(notificationv1.WebhookPathPrefix, h)
		return orDefault(opts.ReceiverBaseURL, artifactURL), nil
	}
	lis, err := net.Listen("tcp", opts.ReceiverAddr)
	if err != nil {
		return "", fmt.Errorf("receiver server: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(notificationv1.WebhookPathPrefix, h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, MaxHeaderBytes: 64 << 10}
	if err := mgr.Add(everyReplica(func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdown)
		}()
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})); err != nil {
		lis.Close()
		return "", err
	}
	return orDefault(opts.ReceiverBaseURL, "http://"+lis.Addr().String()), nil
}

func orDefault(s, def string) string {
	if s = strings.TrimSpace(s); s != "" {
		return s
	}
	return def
}
