package ramp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// querier is the part of the Prometheus API the gates use.
type querier interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error)
}

// newPromTransport is the controller's own HTTP transport for Prometheus,
// whose idle connections Run closes when it returns.
func newPromTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 2
	tr.IdleConnTimeout = 30 * time.Second
	return tr
}

// errNoProm: a Prometheus gate with no PrometheusURL configured.
var errNoProm = errors.New("no Prometheus configured (ramp.Config.PrometheusURL)")

// queryProm runs an instant query and returns its one value. No data, more
// than one series, a NaN or an error is an error: a failed check.
func (c *Controller) queryProm(ctx context.Context, q string) (float64, error) {
	c.promOnce.Do(func() {
		if c.cfg.PrometheusURL == "" {
			c.promErr = errNoProm
			return
		}
		cli, err := api.NewClient(api.Config{Address: c.cfg.PrometheusURL, RoundTripper: c.promTransport})
		if err != nil {
			c.promErr = fmt.Errorf("Prometheus client for %s: %w", c.cfg.PrometheusURL, err)
			return
		}
		c.prom = promv1.NewAPI(cli)
	})
	if c.promErr != nil {
		return 0, c.promErr
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.PrometheusTimeout)
	defer cancel()
	v, _, _, err := c.prom.Query(ctx, q, time.Now())
	if err != nil {
		return 0, fmt.Errorf("query failed: %w", err)
	}
	var f float64
	switch v := v.(type) {
	case model.Vector:
		switch len(v) {
		case 0:
			return 0, errors.New("query returned no data")
		case 1:
			f = float64(v[0].Value)
		default:
			return 0, fmt.Errorf("query returned %d series, want one", len(v))
		}
	case *model.Scalar:
		f = float64(v.Value)
	default:
		return 0, fmt.Errorf("query returned a %s, want a vector of one sample or a scalar", v.Type())
	}
	if math.IsNaN(f) {
		return 0, errors.New("query returned NaN (no data in the range)")
	}
	return f, nil
}
