package storage

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metrics of the artifact server, so that what the fleet's downloads cost the hub is
// seen on its /metrics endpoint.
const (
	ServedBytesMetric    = "flotilla_artifact_served_bytes_total"
	ServedRequestsMetric = "flotilla_artifact_requests_total"
)

var (
	servedBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: ServedBytesMetric,
		Help: "Bytes of artifacts the hub's artifact server sent.",
	})
	servedRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: ServedRequestsMetric,
		Help: "Artifact requests the store answered, by HTTP status code.",
	}, []string{"code"})
)

func init() { crmetrics.Registry.MustRegister(servedBytes, servedRequests) }

// countingWriter counts the body bytes and remembers the status of a response.
type countingWriter struct {
	http.ResponseWriter
	code  int
	bytes int64
}

func (w *countingWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *countingWriter) done() {
	servedBytes.Add(float64(w.bytes))
	code := w.code
	if code == 0 {
		code = http.StatusOK
	}
	servedRequests.WithLabelValues(strconv.Itoa(code)).Inc()
}
