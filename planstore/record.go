package planstore

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of the stores' configurations (etcdstore.Config, redisstore.Config).
const (
	DefaultHistoryLimit  = 50
	DefaultOpTimeout     = 3 * time.Second
	DefaultRetryInterval = 500 * time.Millisecond
	// MaxPlanBytes is the largest plan a store accepts: the plan, its
	// history entry and diff go into one etcd transaction, and etcd refuses
	// requests above 1.5 MiB by default.
	MaxPlanBytes = 256 << 10
)

// Record is the stored form of one plan version (JSON), under a store's plan
// key and its history keys; the store implementations share it.
type Record struct {
	Version      int64     `json:"version"`
	Plan         string    `json:"plan"`
	Author       string    `json:"author,omitempty"`
	Note         string    `json:"note,omitempty"`
	Time         time.Time `json:"time"`
	Action       string    `json:"action"`
	From         int64     `json:"from"`
	RolledBackTo int64     `json:"rolled_back_to,omitempty"`
	Diff         string    `json:"diff,omitempty"` // history entries only
}

// ToPlan returns the plan the record holds.
func (r Record) ToPlan() Plan {
	return Plan{Version: r.Version, Data: []byte(r.Plan), Author: r.Author, Note: r.Note, Time: r.Time,
		Action: r.Action, From: r.From, RolledBackTo: r.RolledBackTo}
}

// Unavailable returns the error of a store operation op that could not reach
// its backend: it matches [ErrUnavailable] and wraps err.
func Unavailable(op string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

// CheckPlan refuses, with an error matching [ErrInvalid], a plan larger than
// [MaxPlanBytes] or one validate refuses; stores call it before writing.
func CheckPlan(data []byte, validate func([]byte) error) error {
	if len(data) > MaxPlanBytes {
		return &invalidError{fmt.Errorf("plan is %d bytes, more than the %d a store accepts", len(data), MaxPlanBytes)}
	}
	if err := validate(data); err != nil {
		return &invalidError{err}
	}
	return nil
}

// Settings are the settings every store's configuration has; a store's
// constructor checks them and fills in the defaults with [Settings.Check].
type Settings struct {
	Validate      func([]byte) error
	HistoryLimit  int
	OpTimeout     time.Duration
	RetryInterval time.Duration
}

// Check refuses missing or negative settings, naming the field as
// typ.Field (e.g. "etcdstore.Config.HistoryLimit"), and fills in the
// defaults: DefaultHistoryLimit, DefaultOpTimeout, DefaultRetryInterval.
func (s *Settings) Check(typ string) error {
	if s.Validate == nil {
		return errors.New(typ + ".Validate is required (the plan validation function)")
	}
	if s.HistoryLimit < 0 {
		return fmt.Errorf("%s.HistoryLimit must be >= 0, got %d", typ, s.HistoryLimit)
	}
	if s.OpTimeout < 0 || s.RetryInterval < 0 {
		return fmt.Errorf("%s.OpTimeout and %s.RetryInterval must be >= 0", typ, typ)
	}
	if s.HistoryLimit == 0 {
		s.HistoryLimit = DefaultHistoryLimit
	}
	if s.OpTimeout == 0 {
		s.OpTimeout = DefaultOpTimeout
	}
	if s.RetryInterval == 0 {
		s.RetryInterval = DefaultRetryInterval
	}
	return nil
}
