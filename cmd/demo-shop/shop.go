package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/reqcanary/canary/tenant"
)

// shop is the logic behind both APIs (http.go, grpc.go). Every reply carries
// the request's labels and who served it, so the walk-through is visible.
type shop struct {
	store   *store
	pricing *pricingClient
	log     *slog.Logger // details of server-side failures
}

// servedView says who served the parts of an answer.
type servedView struct {
	// Pricing is who answered the pricing call (X-Canary-Served-By):
	// canary, stable or cache.
	Pricing string `json:"pricing,omitempty"`
	// PricingFallback is X-Canary-Fallback-Reason: the failed steps.
	PricingFallback string `json:"pricing_fallback,omitempty"`
	// DB is where dbwrap sent the read, and why.
	DB string `json:"db,omitempty"`
}

// pricedProduct is a product with its price.
type pricedProduct struct {
	product
	PriceCents   int64  `json:"price_cents"`
	PriceVersion string `json:"price_version"`
}

// reply is every answer's envelope.
type reply struct {
	Labels   tenant.Labels   `json:"labels"` // its own JSON form
	Served   servedView      `json:"served_by"`
	Products []pricedProduct `json:"products,omitempty"`
	Product  *pricedProduct  `json:"product,omitempty"`
	Order    *order          `json:"order,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// newOrder is the body of POST /orders and of CreateOrder.
type newOrder struct {
	ProductID int64 `json:"product_id"`
	Quantity  int64 `json:"quantity"`
}

// idRequest is the body of GetProduct and GetOrder.
type idRequest struct {
	ID int64 `json:"id"`
}

// Errors of the shop, mapped to HTTP and gRPC codes in one place each
// (httpStatus, grpcCode).
var (
	errBadInput = errors.New("bad input")
	errNoUser   = errors.New("X-User-ID: required to place an order")
)

// newReply starts a reply with the labels of ctx.
func newReply(ctx context.Context) *reply {
	l, _ := tenant.FromContext(ctx)
	l.UserHash = strings.Clone(l.UserHash) // it may share the request's memory
	return &reply{Labels: l}
}

func (rp *reply) pricedBy(res pricingResult) {
	rp.Served.Pricing, rp.Served.PricingFallback = res.ServedBy, res.Reason
}

// listProducts lists the products with their prices.
func (s *shop) listProducts(ctx context.Context) (*reply, error) {
	rp := newReply(ctx)
	ps, route, err := s.store.products(ctx)
	rp.Served.DB = route
	if err != nil {
		return rp, err
	}
	var prices []price
	res, err := s.pricing.get(ctx, "/prices", &prices)
	rp.pricedBy(res)
	if err != nil {
		return rp, err
	}
	byID := make(map[int64]price, len(prices))
	for _, p := range prices {
		byID[p.ProductID] = p
	}
	rp.Products = make([]pricedProduct, 0, len(ps))
	for _, p := range ps {
		pr := byID[p.ID]
		rp.Products = append(rp.Products, pricedProduct{product: p, PriceCents: pr.Cents, PriceVersion: pr.Version})
	}
	return rp, nil
}

// getProduct reads one product and its price.
func (s *shop) getProduct(ctx context.Context, id int64) (*reply, error) {
	rp := newReply(ctx)
	p, route, err := s.store.product(ctx, id)
	rp.Served.DB = route
	if err != nil {
		return rp, err
	}
	var pr price
	res, err := s.pricing.get(ctx, "/prices/"+strconv.FormatInt(id, 10), &pr)
	rp.pricedBy(res)
	if err != nil {
		return rp, err
	}
	rp.Product = &pricedProduct{product: p, PriceCents: pr.Cents, PriceVersion: pr.Version}
	return rp, nil
}

// createOrder prices and stores an order of the request's tenant and user.
func (s *shop) createOrder(ctx context.Context, in newOrder) (*reply, error) {
	rp := newReply(ctx)
	if rp.Labels.UserHash == "" {
		return rp, errNoUser
	}
	if in.ProductID <= 0 {
		return rp, fmt.Errorf("%w: product_id: must be a positive product id", errBadInput)
	}
	if in.Quantity <= 0 || in.Quantity > 1000 {
		return rp, fmt.Errorf("%w: quantity: must be 1 to 1000", errBadInput)
	}
	var pr price
	res, err := s.pricing.get(ctx, "/prices/"+strconv.FormatInt(in.ProductID, 10), &pr)
	rp.pricedBy(res)
	if err != nil {
		return rp, err
	}
	o, err := s.store.createOrder(ctx, order{
		Tenant: rp.Labels.Tenant, UserHash: rp.Labels.UserHash, ProductID: in.ProductID,
		Quantity: in.Quantity, UnitCents: pr.Cents, PricedBy: res.ServedBy,
	})
	rp.Served.DB = "primary (transaction)"
	if err != nil {
		return rp, err
	}
	rp.Order = &o
	return rp, nil
}

// getOrder reads an order of the request's tenant. Right after the same user
// (or request) wrote, dbwrap sends the read where the write is visible.
func (s *shop) getOrder(ctx context.Context, id int64) (*reply, error) {
	rp := newReply(ctx)
	o, route, err := s.store.order(ctx, id, rp.Labels.Tenant)
	rp.Served.DB = route
	if err != nil {
		return rp, err
	}
	rp.Order = &o
	return rp, nil
}
