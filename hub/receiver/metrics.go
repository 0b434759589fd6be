package receiver

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// RequestsName is the metric counting calls to receivers by result.
const RequestsName = "flotilla_receiver_requests_total"

// Results of a call, the values of the result label.
const (
	ResultAccepted         = "accepted"          // resources asked to reconcile
	ResultIgnored          = "ignored"           // valid, but an event the Receiver does not act on (or a ping)
	ResultInvalidSignature = "invalid_signature" // signature or token missing or wrong: nothing done
	ResultNotFound         = "not_found"         // no Receiver has this path
	ResultSuspended        = "suspended"         // the Receiver is suspended
	ResultRefused          = "refused"           // the Receiver names resources it may not reach
	ResultRateLimited      = "rate_limited"      // too many calls
	ResultTooLarge         = "too_large"         // body over the limit
	ResultBadRequest       = "bad_request"       // not a POST, or the body could not be read
	ResultError            = "error"             // the hub could not read the token or annotate a resource
)

var requests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: RequestsName,
	Help: "Calls to the hub's webhook receivers by result (accepted, ignored, invalid_signature, not_found, suspended, refused, rate_limited, too_large, bad_request, error).",
}, []string{"result"})

func init() {
	crmetrics.Registry.MustRegister(requests)
	for _, r := range []string{ResultAccepted, ResultIgnored, ResultInvalidSignature, ResultNotFound, ResultSuspended,
		ResultRefused, ResultRateLimited, ResultTooLarge, ResultBadRequest, ResultError} {
		requests.WithLabelValues(r)
	}
}

// Requests is the number of calls counted with result so far in this process.
func Requests(result string) float64 {
	var m dto.Metric
	if err := requests.WithLabelValues(result).Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
