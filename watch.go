package canary

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// watcher polls a plan file and swaps the engine's plan when the file's
// content changes and parses. Polling (rather than file-system events) sees
// every way a file is replaced: in-place writes, editors' rename-on-save,
// Kubernetes' symlink swaps.
type watcher struct {
	e        *Engine
	path     string
	interval time.Duration
	done     chan struct{}
	quit     chan struct{}

	// Owned by the polling goroutine (and by load before it starts).
	last    []byte // content last parsed, good or bad; nil after a read error
	lastErr string // text of the last error reported, to report each once
}

func newWatcher(e *Engine, path string, interval time.Duration) *watcher {
	return &watcher{e: e, path: path, interval: interval,
		done: make(chan struct{}), quit: make(chan struct{})}
}

func (w *watcher) start() { go w.run() }

func (w *watcher) run() {
	defer close(w.done)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-w.quit:
			return
		case <-t.C:
			if err := w.load(); err != nil && err.Error() != w.lastErr {
				w.lastErr = err.Error()
				w.e.log.Error("canary: plan file not applied; keeping the last good plan",
					"path", w.path, "error", err)
			}
		}
	}
}

func (w *watcher) stop() {
	close(w.quit)
	<-w.done
}

// load reads the file and, when its content changed and parses, makes it
// the engine's plan. It records any problem for PlanError and returns it.
func (w *watcher) load() error {
	data, err := readPlanFile(w.path)
	if err != nil {
		w.last = nil
		w.e.planErr.Store(&errBox{err})
		return err
	}
	if w.last != nil && bytes.Equal(data, w.last) {
		return w.e.PlanError() // unchanged: still good, or still the same bad plan
	}
	w.last = data
	p, err := ParsePlan(data)
	if err == nil {
		var c *compiledPlan
		if c, err = compile(p); err == nil {
			prev := w.e.cur.Swap(c)
			w.e.applyGuardConfig(c)
			w.e.planErr.Store(nil)
			w.lastErr = ""
			if prev != nil {
				w.e.log.Info("canary: plan reloaded", "path", w.path,
					"version", p.Version, "canary_percent", p.CanaryPercent, "kill_switch", p.KillSwitch)
			}
			return nil
		}
	}
	err = inPlanFile(err, w.path)
	w.e.planErr.Store(&errBox{err})
	return err
}

// inPlanFile names the plan file in err: each *PlanError (alone or joined)
// gets the path as its File, so that the message says "canary: plan file
// PATH: line L: …" once; other errors (reading the file) already name it.
func inPlanFile(err error, path string) error {
	var pe *PlanError
	if errors.As(err, &pe) && err == error(pe) {
		c := *pe
		c.File = path
		return &c
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list := j.Unwrap()
		out := make([]error, len(list))
		for i, e := range list {
			out[i] = inPlanFile(e, path)
		}
		return errors.Join(out...)
	}
	if strings.Contains(err.Error(), path) {
		return err
	}
	return fmt.Errorf("canary: plan file %s: %w", path, err)
}

// readPlanFile reads at most MaxPlanFileSize bytes of the file at path.
func readPlanFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("canary: plan file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxPlanFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("canary: plan file %s: %w", path, err)
	}
	if len(data) > MaxPlanFileSize {
		return nil, fmt.Errorf("canary: plan file %s: larger than %d bytes", path, MaxPlanFileSize)
	}
	return data, nil
}
