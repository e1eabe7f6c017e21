package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/fallback"
	"github.com/reqcanary/canary/tenant"
)

// The pricing dependency runs in two versions on loopback: stable (list
// prices) and canary (the new pricing: 10 % off). Each can be made slow or
// failing at run time through POST /admin/pricing/{version}?mode=slow|fail|ok.

// listPrices are the stable prices, in cents, by product id.
var listPrices = map[int64]int64{1: 1200, 2: 3400, 3: 12900, 4: 1800, 5: 2450}

// Pricing modes.
const (
	modeOK   = "ok"   // answer at once
	modeSlow = "slow" // answer after slowDelay (longer than any fallback timeout)
	modeFail = "fail" // answer 503
)

// slowDelay is how long a slow pricing version takes to answer, unless the
// caller gives up first.
const slowDelay = 3 * time.Second

// Timeouts of the calls to pricing (fallback.Config): the canary cohort's
// attempts are cut short sooner, so a slow canary costs its users little.
const (
	pricingTimeout       = 400 * time.Millisecond
	pricingCanaryTimeout = 200 * time.Millisecond
)

// pricingVersion is one version of the pricing service.
type pricingVersion struct {
	name    string // "stable" or "canary"
	percent int64  // price as a percentage of the list price
	mode    atomic.Value
	srv     *http.Server
	ln      net.Listener
	done    chan struct{}
}

// price is the pricing service's answer for one product.
type price struct {
	ProductID int64  `json:"product_id"`
	Cents     int64  `json:"cents"`
	Version   string `json:"version"` // the version that computed it
}

// startPricing starts one version on a free loopback port.
func startPricing(name string, percent int64) (*pricingVersion, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("pricing %s: %w", name, err)
	}
	v := &pricingVersion{name: name, percent: percent, ln: ln, done: make(chan struct{})}
	v.mode.Store(modeOK)
	r := chi.NewRouter()
	r.Get("/prices", v.serveAll)
	r.Get("/prices/{id}", v.serveOne)
	v.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(v.done)
		_ = v.srv.Serve(ln) // ErrServerClosed after shutdown
	}()
	return v, nil
}

// url is the version's base URL.
func (v *pricingVersion) url() string { return "http://" + v.ln.Addr().String() }

// setMode switches the version's behaviour.
func (v *pricingVersion) setMode(m string) error {
	switch m {
	case modeOK, modeSlow, modeFail:
		v.mode.Store(m)
		return nil
	}
	return fmt.Errorf("mode: %q is not one of ok, slow, fail", m)
}

func (v *pricingVersion) getMode() string { return v.mode.Load().(string) }

// misbehave applies the mode; it reports whether the handler must stop.
func (v *pricingVersion) misbehave(w http.ResponseWriter, r *http.Request) bool {
	switch v.getMode() {
	case modeFail:
		http.Error(w, "pricing "+v.name+": failing (demo mode)", http.StatusServiceUnavailable)
		return true
	case modeSlow:
		t := time.NewTimer(slowDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done(): // the caller gave up
			return true
		}
	}
	return false
}

func (v *pricingVersion) priceOf(id int64) price {
	return price{ProductID: id, Cents: listPrices[id] * v.percent / 100, Version: v.name}
}

func (v *pricingVersion) serveAll(w http.ResponseWriter, r *http.Request) {
	if v.misbehave(w, r) {
		return
	}
	all := make([]price, 0, len(listPrices))
	for id := int64(1); id <= int64(len(listPrices)); id++ {
		all = append(all, v.priceOf(id))
	}
	writeJSON(w, http.StatusOK, all)
}

func (v *pricingVersion) serveOne(w http.ResponseWriter, r *http.Request) {
	if v.misbehave(w, r) {
		return
	}
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if _, ok := listPrices[id]; err != nil || !ok {
		http.Error(w, "no such product", http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, v.priceOf(id))
}

// shutdown stops the version's server.
func (v *pricingVersion) shutdown(ctx context.Context) {
	if err := v.srv.Shutdown(ctx); err != nil {
		v.srv.Close()
	}
	<-v.done
}

// pricingClient calls pricing through the fallback transport.
type pricingClient struct {
	stable, canary *pricingVersion
	base           *http.Transport
	rt             fallback.Transport
	client         *http.Client
}

// pricingResult says who answered a pricing call.
type pricingResult struct {
	ServedBy string // X-Canary-Served-By: canary, stable, shadow or cache
	Reason   string // X-Canary-Fallback-Reason, "" when none
}

// errPricing is matched by errors of pricing calls no one answered.
var errPricing = errors.New("pricing unavailable")

// get fetches path from pricing into out, on behalf of the request in ctx
// (whose labels choose the version).
func (p *pricingClient) get(ctx context.Context, path string, out any) (pricingResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://pricing"+path, nil)
	if err != nil {
		return pricingResult{}, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		markFallback(ctx, "")
		return pricingResult{}, fmt.Errorf("%w: %w", errPricing, err)
	}
	defer resp.Body.Close()
	res := pricingResult{
		ServedBy: resp.Header.Get(fallback.HeaderServedBy),
		Reason:   resp.Header.Get(fallback.HeaderFallbackReason),
	}
	markFallback(ctx, res.ServedBy)
	body, err := io.ReadAll(resp.Body) // read to the end: only then is the answer cached
	if err != nil {
		return res, fmt.Errorf("%w: %w", errPricing, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return res, errNotFound
	case resp.StatusCode != http.StatusOK:
		return res, fmt.Errorf("%w: status %d (%s)", errPricing, resp.StatusCode, res.Reason)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return res, fmt.Errorf("%w: %w", errPricing, err)
	}
	return res, nil
}

// markFallback tells the guard that the request in ctx was degraded when
// its own cohort's pricing version did not answer (servedBy is the other
// version, the shadow, the cache, or nothing): the shop still answers 200
// (fallback did its job), so without this the guard would not see a pricing
// version failing. It marks the request (canary.MarkFailed) rather than
// recording an outcome of its own: the engine's middleware or gRPC
// interceptor counts each request once, with the mark. Both cohorts are
// treated alike, so an outage of every pricing version (everyone served from
// the cache) fails stable as much as canary and trips nothing.
func markFallback(ctx context.Context, servedBy string) {
	if l, ok := tenant.FromContext(ctx); ok && servedBy != string(l.Cohort) {
		canary.MarkFailed(ctx)
	}
}

// close closes the transport and stops both versions.
func (p *pricingClient) close(ctx context.Context) {
	p.rt.Close()
	p.base.CloseIdleConnections()
	p.canary.shutdown(ctx)
	p.stable.shutdown(ctx)
}
