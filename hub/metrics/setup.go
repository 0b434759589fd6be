package metrics

import (
	"context"
	"net/http"
	"strconv"

	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/api/version"
	"github.com/flotilla-dev/flotilla/hub/delivery/owners"
)

func hubVersion() string { return version.Version }

// Setup makes the cluster metrics read mgr's cache while it runs, and drops a
// deployment's series when it is deleted.
func Setup(mgr ctrl.Manager) error {
	for _, k := range owners.All() {
		inf, err := mgr.GetCache().GetInformer(context.Background(), k.New())
		if err != nil {
			return err
		}
		kind := k.Kind
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			DeleteFunc: func(obj any) {
				if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
					obj = t.Obj
				}
				if o, ok := obj.(client.Object); ok {
					ForgetDeployment(kind, o.GetNamespace(), o.GetName())
				}
			},
		}); err != nil {
			return err
		}
	}
	reader := client.Reader(mgr.GetCache())
	return mgr.Add(runnable(func(ctx context.Context) error {
		clusters.reader.Store(&reader)
		<-ctx.Done()
		clusters.reader.CompareAndSwap(&reader, nil)
		return nil
	}))
}

type runnable func(context.Context) error

func (r runnable) Start(ctx context.Context) error { return r(ctx) }

// CountServed wraps the artifact handler: bytes of successful downloads and
// requests by status code.
func CountServed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(cw, r)
		artifactRequests.WithLabelValues(strconv.Itoa(cw.code)).Inc()
		if cw.code < 300 {
			bytesServed.Add(float64(cw.n))
		}
	})
}

type countingWriter struct {
	http.ResponseWriter
	code int
	n    int64
}

func (w *countingWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
