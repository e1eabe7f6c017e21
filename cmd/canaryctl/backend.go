package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/planstore"
)

// planBackend is where the plan commands act: a service's admin API
// (--server) or etcd directly (--etcd).
type planBackend interface {
	Get(ctx context.Context) (planstore.Plan, error)
	Apply(ctx context.Context, data []byte, expect int64, c planstore.Change) (planstore.Plan, error)
	Rollback(ctx context.Context, to, expect int64, c planstore.Change) (planstore.Plan, error)
	History(ctx context.Context, limit int) ([]planstore.Entry, error)
	Diff(ctx context.Context, a, b int64) (string, error)
}

// storeBackend is the plan store itself.
type storeBackend struct{ planstore.Store }

func (s storeBackend) Diff(ctx context.Context, a, b int64) (string, error) {
	h, err := s.History(ctx, 0)
	if err != nil {
		return "", err
	}
	texts := map[int64][]byte{}
	for _, e := range h {
		texts[e.Version] = e.Data
	}
	for _, v := range []int64{a, b} {
		if _, ok := texts[v]; !ok {
			return "", fmt.Errorf("%w: version %d", planstore.ErrVersionNotFound, v)
		}
	}
	return planstore.Diff(texts[a], texts[b]), nil
}

// Errors of the admin API client, beyond the planstore ones.
var (
	errUnreachable  = errors.New("server unreachable")
	errUnauthorized = errors.New("not authorized")
	errRampRefused  = errors.New("ramp action refused")
)

// apiError is an error answer of the admin API.
type apiError struct {
	Status          int
	Msg             string `json:"error"`
	Field           string `json:"field"`
	Code            string `json:"code"`
	ExpectedVersion *int64 `json:"expected_version"`
	CurrentVersion  *int64 `json:"current_version"`
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("server answered %d", e.Status)
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

// Is matches the planstore errors and errUnauthorized by the answer's code.
func (e *apiError) Is(target error) bool {
	switch e.Code {
	case canary.AdminCodeInvalidPlan:
		return target == planstore.ErrInvalid
	case canary.AdminCodeVersionConflict:
		return target == planstore.ErrVersionConflict
	case canary.AdminCodeVersionNotFound:
		return target == planstore.ErrVersionNotFound
	case canary.AdminCodeUnavailable:
		return target == planstore.ErrUnavailable
	case canary.AdminCodeUnauthorized, canary.AdminCodeReadOnly:
		return target == errUnauthorized
	case canary.AdminCodeRampRefused, canary.AdminCodeNoRamp:
		return target == errRampRefused
	case "": // not the admin handler's JSON (a proxy's page): by status
		switch e.Status {
		case http.StatusUnauthorized, http.StatusForbidden:
			return target == errUnauthorized
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return target == errUnreachable
		}
	}
	return false
}

// apiClient calls a service's admin handler.
type apiClient struct {
	base  string // the handler's URL, without a trailing slash
	token string
	http  *http.Client
}

func newAPIClient(server, token string, timeout time.Duration) (*apiClient, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want the admin handler's URL, e.g. http://127.0.0.1:8081/admin/canary", server)
	}
	if u.User != nil {
		return nil, errors.New("--server: no user or password in the URL (it would show in errors); the token goes in CANARY_ADMIN_TOKEN")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("--server %q: no query or fragment: the handler's URL only", server)
	}
	return &apiClient{base: strings.TrimSuffix(server, "/"), token: token, http: &http.Client{Timeout: timeout}}, nil
}

// call sends a request to route and decodes a 2xx JSON answer into out. It
// returns the status code too (202 matters for the kill switch).
func (c *apiClient) call(ctx context.Context, method, route string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+route, body)
	if err != nil {
		return 0, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %w", errUnreachable, c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%w: %s: reading the answer: %w", errUnreachable, c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		ae := &apiError{Status: resp.StatusCode}
		if json.Unmarshal(data, ae) != nil || ae.Msg == "" {
			ae.Msg = strings.TrimSpace(string(data))
			if len(ae.Msg) > 200 {
				ae.Msg = ae.Msg[:200] + "…"
			}
			if resp.StatusCode == http.StatusNotFound {
				ae.Msg = "no admin handler at " + c.base + route + " (is --server the handler's URL?)"
			}
		}
		return resp.StatusCode, ae
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s%s: the answer is not the expected JSON: %w", c.base, route, err)
		}
	}
	return resp.StatusCode, nil
}

func (c *apiClient) Get(ctx context.Context) (planstore.Plan, error) {
	var r planstore.Record
	_, err := c.call(ctx, http.MethodGet, "/plan", nil, &r)
	return r.ToPlan(), err
}

func expectPtr(expect int64) *int64 {
	if expect == planstore.AnyVersion {
		return nil
	}
	return &expect
}

func (c *apiClient) Apply(ctx context.Context, data []byte, expect int64, ch planstore.Change) (planstore.Plan, error) {
	var r planstore.Record
	_, err := c.call(ctx, http.MethodPost, "/plan/apply", canary.PlanApplyRequest{Plan: string(data),
		ExpectVersion: expectPtr(expect), Note: ch.Note, Author: ch.Author}, &r)
	return r.ToPlan(), err
}

func (c *apiClient) Rollback(ctx context.Context, to, expect int64, ch planstore.Change) (planstore.Plan, error) {
	var r planstore.Record
	_, err := c.call(ctx, http.MethodPost, "/plan/rollback", canary.PlanRollbackRequest{To: to,
		ExpectVersion: expectPtr(expect), Note: ch.Note, Author: ch.Author}, &r)
	return r.ToPlan(), err
}

func (c *apiClient) History(ctx context.Context, limit int) ([]planstore.Entry, error) {
	var rs []planstore.Record
	if _, err := c.call(ctx, http.MethodGet, "/plan/history?limit="+strconv.Itoa(limit), nil, &rs); err != nil {
		return nil, err
	}
	out := make([]planstore.Entry, 0, len(rs))
	for _, r := range rs {
		out = append(out, planstore.Entry{Plan: r.ToPlan(), Diff: r.Diff})
	}
	return out, nil
}

func (c *apiClient) Diff(ctx context.Context, a, b int64) (string, error) {
	var d canary.DiffResponse
	_, err := c.call(ctx, http.MethodGet, fmt.Sprintf("/plan/diff?from=%d&to=%d", a, b), nil, &d)
	return d.Diff, err
}

// statusView is the part of the admin handler's Status JSON that the text
// output shows.
type statusView struct {
	Plan struct {
		Version       int     `json:"version"`
		CanaryPercent float64 `json:"canary_percent"`
		KillSwitch    bool    `json:"kill_switch"`
	} `json:"plan"`
	PlanError  string                  `json:"plan_error"`
	PlanStore  *canary.PlanStoreStatus `json:"plan_store"`
	KillSwitch canary.KillSwitchStatus `json:"kill_switch"`
	Guard      struct {
		Enabled bool                 `json:"enabled"`
		Tripped bool                 `json:"tripped"`
		Window  string               `json:"window"`
		Stable  canary.CohortFigures `json:"stable"`
		Canary  canary.CohortFigures `json:"canary"`
		Trip    *canary.TripStatus   `json:"trip"`
	} `json:"guard"`
	Fleet *canary.FleetStatus `json:"fleet"`
}

// status is the service's Status (GET on the handler), as raw JSON and as
// the parts the text output shows.
func (c *apiClient) status(ctx context.Context) (json.RawMessage, statusView, error) {
	var raw json.RawMessage
	var s statusView
	if _, err := c.call(ctx, http.MethodGet, "", nil, &raw); err != nil {
		return nil, s, err
	}
	err := json.Unmarshal(raw, &s)
	return raw, s, err
}

// kill posts a kill-switch action; pending is true when the fleet's switch
// is not written yet (202).
func (c *apiClient) kill(ctx context.Context, action, note, author string) (json.RawMessage, statusView, bool, error) {
	var raw json.RawMessage
	var s statusView
	code, err := c.call(ctx, http.MethodPost, "", map[string]string{"action": action, "note": note, "author": author}, &raw)
	if err != nil {
		return nil, s, false, err
	}
	err = json.Unmarshal(raw, &s)
	return raw, s, code == http.StatusAccepted, err
}

func (c *apiClient) explain(ctx context.Context, tenantID, userID string) (canary.Explanation, error) {
	q := url.Values{}
	if tenantID != "" {
		q.Set("tenant", tenantID)
	}
	if userID != "" {
		q.Set("user", userID)
	}
	var x canary.Explanation
	_, err := c.call(ctx, http.MethodGet, "/explain?"+q.Encode(), nil, &x)
	return x, err
}

// rampView is the part of a ramp status the text output shows.
type rampView struct {
	Phase    string  `json:"phase"`
	Reason   string  `json:"reason"`
	Step     int     `json:"step"`
	Steps    int     `json:"steps"`
	Percent  float64 `json:"percent"`
	Leader   string  `json:"leader"`
	Hold     string  `json:"hold"`
	TimeLeft string  `json:"time_left"`
	Gates    []struct {
		Gate    string `json:"gate"`
		Verdict string `json:"verdict"`
		Summary string `json:"summary"`
	} `json:"gates"`
}

// ramp runs a ramp action ("status" is a GET) and returns the answer.
func (c *apiClient) ramp(ctx context.Context, action, note, author string) (json.RawMessage, rampView, error) {
	var raw json.RawMessage
	var v rampView
	var err error
	if action == "status" {
		_, err = c.call(ctx, http.MethodGet, "/ramp", nil, &raw)
	} else {
		_, err = c.call(ctx, http.MethodPost, "/ramp/"+action, map[string]string{"note": note, "author": author}, &raw)
	}
	if err != nil {
		return nil, v, err
	}
	err = json.Unmarshal(raw, &v)
	return raw, v, err
}
