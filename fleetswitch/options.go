package fleetswitch

import (
	"io"
	"log/slog"
	"time"
)

// Defaults of [Options].
const (
	DefaultPrefix         = "canary:"
	DefaultResyncInterval = 5 * time.Second
	DefaultTimeout        = 2 * time.Second
)

// Limits on what [Switch.Set] accepts, in bytes.
const (
	MaxReasonLen = 256
	MaxActorLen  = 128
)

// Options configure the [Switch] a [Backend] opens. The zero value is the
// default.
type Options struct {
	// Prefix names the fleet's switch in the backend's store: instances
	// share a switch when they share the store and the prefix (the Redis
	// backend keeps the state in the key Prefix+"kill-switch" and publishes
	// changes on the channel Prefix+"kill-switch:changes"). Default
	// [DefaultPrefix].
	Prefix string
	// ResyncInterval is how often the state is re-read, in case a change was
	// missed (it is also re-read as soon as a lost connection is restored).
	// Must not be negative. Default [DefaultResyncInterval].
	ResyncInterval time.Duration
	// Timeout bounds each call to the store made in the background
	// (re-reads). Must not be negative. Default [DefaultTimeout].
	Timeout time.Duration
	// Logger receives warnings when the store cannot be reached or holds a
	// malformed state, and when it can be reached again. Default: discard.
	Logger *slog.Logger
}

// WithDefaults returns o with its zero fields set to their defaults, for a
// [Backend] to apply in Open. Negative durations are left as they are, for
// Open to refuse.
func (o Options) WithDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.ResyncInterval == 0 {
		o.ResyncInterval = DefaultResyncInterval
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}
