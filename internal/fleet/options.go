package fleet

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

// Limits on what Set accepts.
const (
	MaxReasonLen = 256
	MaxActorLen  = 128
)

// Options configure a [Switch]. The zero value is the default.
type Options struct {
	// Prefix starts the names of the Redis key (Prefix + "kill-switch") and
	// channel (Prefix + "kill-switch:changes"). Instances share a switch when
	// they share the Redis and the prefix. Default "canary:".
	Prefix string
	// ResyncInterval is how often the key is re-read, in case a message was
	// missed (the key is also re-read as soon as a lost subscription is
	// restored). Default 5s.
	ResyncInterval time.Duration
	// Timeout bounds each Redis call made in the background (re-reads).
	// Default 2s.
	Timeout time.Duration
	// Logger receives warnings when Redis cannot be reached or holds a
	// malformed state, and when it can be reached again. Default: discard.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
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

// Key returns the Redis key that holds the state.
func (o Options) Key() string { return o.withDefaults().Prefix + "kill-switch" }

// Channel returns the Redis channel on which changes are published.
func (o Options) Channel() string { return o.withDefaults().Prefix + "kill-switch:changes" }
