package canary

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reqcanary/canary/planstore"
)

// DefaultPlanStoreStartTimeout bounds how long [New] waits for the plan
// store ([WithPlanStore]) before it starts on the cache file.
const DefaultPlanStoreStartTimeout = 2 * time.Second

// Sources of the plan in force, in [PlanStoreStatus.Source].
const (
	PlanSourceStore   = "store"   // delivered by the store
	PlanSourceCache   = "cache"   // read from the cache file at start; the store was not reachable
	PlanSourceDefault = "default" // neither: the default plan (store empty) or everyone stable (store down, no cache)
)

// storeOptions is what WithPlanStore and WithPlanCacheFile set.
type storeOptions struct {
	store     planstore.Store
	cacheFile string
}

// WithPlanStore makes the engine follow the plan of a shared store (see
// package planstore; etcdstore.New in planstore/etcdstore, with Validate: [ValidatePlan]).
// New reads the store's current plan (waiting at most
// DefaultPlanStoreStartTimeout); Start watches it. Each plan the store
// delivers is compiled and swapped in atomically; a plan that does not
// compile is refused, the last good plan stays in force and
// [Engine.PlanError] reports it. Decisions never wait for the store: when it
// is unreachable the engine keeps deciding on the plan it has, and catches up
// when the store returns. New does not fail when the store is unreachable:
// it starts on the cache file ([WithPlanCacheFile]) or, without one, serves
// everyone stable, and [Engine.Status] says so (PlanStore.Source, .Error).
// It cannot be combined with [WithPlan] or [WithPlanFile]. The engine does
// not close the store.
//
// Default: no store.
func WithPlanStore(s planstore.Store) Option {
	return optionFunc(func(c *config) { c.store.store = s })
}

// WithPlanCacheFile makes an engine with [WithPlanStore] keep a copy of the
// last plan the store delivered in the file at path (written atomically,
// with its store version in a first comment line), and start on it when the
// store cannot be reached at start; [Engine.Status] then says so
// (PlanStore.Source "cache"). Without a cache file such a cold start serves
// everyone stable until the store answers.
//
// Default: no cache file.
func WithPlanCacheFile(path string) Option {
	return optionFunc(func(c *config) { c.store.cacheFile = path })
}

// ValidatePlan reports whether data is a plan the engine accepts: it parses
// ([ParsePlan]) and compiles. It is the validation function to give a plan
// store (etcdstore.Config.Validate), so that a plan the engines would
// refuse never reaches the store.
func ValidatePlan(data []byte) error {
	p, err := ParsePlan(data)
	if err != nil {
		return err
	}
	_, err = compile(p)
	return err
}

// PlanStoreStatus is the part of [Status] about the plan store
// ([WithPlanStore]).
type PlanStoreStatus struct {
	// Source is where the plan in force came from: PlanSourceStore,
	// PlanSourceCache or PlanSourceDefault.
	Source string `json:"source"`
	// Version is the store version of the plan in force (0: none).
	Version int64 `json:"version"`
	// Author and Note are those of that version's write.
	Author string `json:"author,omitempty"`
	Note   string `json:"note,omitempty"`
	// CacheFile is the cache file's path ([WithPlanCacheFile]), "" without one.
	CacheFile string `json:"cache_file,omitempty"`
	// Error is the last problem with the store or the cache file: the store
	// unreachable at start, the cache unreadable or not written. "" once the
	// store has delivered a plan and the cache was written.
	Error string `json:"error,omitempty"`
}

// planSync follows a plan store for an engine.
type planSync struct {
	e     *Engine
	cfg   storeOptions
	state atomic.Pointer[PlanStoreStatus]

	mu     sync.Mutex // start/stop
	cancel context.CancelFunc
	done   chan struct{}
}

// initPlanStore sets up the engine's first plan from the store or the cache.
func (e *Engine) initPlanStore(cfg *config) error {
	if cfg.plan != nil || cfg.planFile != "" {
		return fmt.Errorf("%w: WithPlanStore cannot be combined with WithPlan or WithPlanFile", ErrInvalidOption)
	}
	f := &planSync{e: e, cfg: cfg.store}
	e.ps = f
	st := &PlanStoreStatus{Source: PlanSourceDefault, CacheFile: cfg.store.cacheFile}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultPlanStoreStartTimeout)
	p, err := cfg.store.store.Get(ctx)
	cancel()
	switch {
	case err == nil && p.Version == 0: // an empty store: the default plan
		c, _ := compile(defaultPlan())
		e.cur.Store(c)
		f.state.Store(st)
	case err == nil:
		if perr := f.apply(p, nil); perr != nil {
			// The store holds a plan this engine refuses: everyone stable.
			e.cur.Store(compileUnusable())
			f.state.Store(st)
		}
	default:
		st.Error = err.Error()
		if cp, cerr := f.readCache(); cerr == nil {
			c, _ := compile(cp.plan)
			e.cur.Store(c)
			st.Source, st.Version = PlanSourceCache, cp.version
			e.log.Warn("canary: plan store unreachable at start; using the cache file",
				"cache_file", cfg.store.cacheFile, "version", cp.version, "error", err)
		} else {
			e.cur.Store(compileUnusable())
			if cfg.store.cacheFile != "" {
				st.Error += "; cache file: " + cerr.Error()
			}
			e.log.Error("canary: plan store unreachable at start and no usable cache; serving everyone stable until it answers",
				"error", st.Error)
		}
		f.state.Store(st)
	}
	return nil
}

// apply compiles a plan delivered by the store and swaps it in; a plan that
// does not compile is refused and reported by PlanError.
func (f *planSync) apply(p planstore.Plan, prev *PlanStoreStatus) error {
	e := f.e
	pl, err := ParsePlan(p.Data)
	var c *compiledPlan
	if err == nil {
		c, err = compile(pl)
	}
	if err != nil {
		err = fmt.Errorf("canary: plan store version %d refused, keeping the last good plan: %w", p.Version, err)
		e.planErr.Store(&errBox{err})
		e.log.Error(err.Error(), "author", p.Author)
		return err
	}
	st := &PlanStoreStatus{Source: PlanSourceStore, Version: p.Version, Author: p.Author, Note: p.Note,
		CacheFile: f.cfg.cacheFile}
	// The plan and the state that describes it are swapped back to back,
	// before the cache file is written, so that Status never pairs a new
	// plan with an old source for longer than two atomic stores.
	e.cur.Swap(c)
	f.state.Store(st)
	e.applyGuardConfig(c)
	e.planErr.Store(nil)
	if cerr := f.writeCache(p); cerr != nil {
		failed := *st
		failed.Error = cerr.Error()
		f.state.Store(&failed)
		e.log.Warn("canary: plan cache file not written", "error", cerr)
	}
	if prev != nil {
		e.log.Info("canary: plan store version applied", "version", p.Version, "from", prev.Version,
			"author", p.Author, "canary_percent", pl.CanaryPercent, "kill_switch", pl.KillSwitch)
	}
	return nil
}

func (f *planSync) start() {
	f.mu.Lock()
	defer f.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan struct{})
	ch := f.cfg.store.Watch(ctx)
	go func() {
		defer close(f.done)
		for p := range ch {
			cur := f.state.Load()
			if p.Version == 0 || (cur.Source == PlanSourceStore && p.Version == cur.Version) {
				continue
			}
			_ = f.apply(p, cur)
		}
	}()
}

func (f *planSync) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cancel != nil {
		f.cancel()
		<-f.done
		f.cancel = nil
	}
}

// cacheHeader opens the cache file; the store version follows it.
const cacheHeader = "# canary plan cache; store version "

type cachedPlan struct {
	version int64
	plan    Plan
}

func (f *planSync) readCache() (cachedPlan, error) {
	path := f.cfg.cacheFile
	if path == "" {
		return cachedPlan{}, errors.New("no cache file")
	}
	data, err := readPlanFile(path)
	if err != nil {
		return cachedPlan{}, err
	}
	line, _, _ := bufio.NewReader(bytes.NewReader(data)).ReadLine()
	v, err := strconv.ParseInt(strings.TrimPrefix(string(line), cacheHeader), 10, 64)
	if !strings.HasPrefix(string(line), cacheHeader) || err != nil {
		return cachedPlan{}, fmt.Errorf("canary: plan cache file %s: first line is not %q<version>", path, cacheHeader)
	}
	p, err := ParsePlan(data)
	if err == nil {
		_, err = compile(p)
	}
	if err != nil {
		return cachedPlan{}, fmt.Errorf("canary: plan cache file %s: %w", path, err)
	}
	return cachedPlan{version: v, plan: p}, nil
}

// writeCache writes the plan to the cache file by a rename, so that a reader
// (a starting engine) never sees half a file.
func (f *planSync) writeCache(p planstore.Plan) error {
	path := f.cfg.cacheFile
	if path == "" {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("canary: plan cache file %s: %w", path, err)
	}
	_, err = fmt.Fprintf(tmp, "%s%d\n%s", cacheHeader, p.Version, p.Data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("canary: plan cache file %s: %w", path, err)
	}
	return nil
}

// planStoreStatus is Status.PlanStore: nil without a store.
func (e *Engine) planStoreStatus() *PlanStoreStatus {
	if e.ps == nil {
		return nil
	}
	st := *e.ps.state.Load()
	return &st
}
