// Command canaryctl is the operator's tool for the plan of a fleet kept in
// etcd (package planstore): read it, apply a new one by compare-and-swap,
// see its history and diffs, roll back.
//
//	canaryctl [flags] plan get
//	canaryctl [flags] plan apply -f FILE [--expect-version N] [--note TEXT]
//	canaryctl [flags] plan history [--limit N]
//	canaryctl [flags] plan diff A B
//	canaryctl [flags] plan rollback [--to N] [--expect-version N] [--note TEXT]
//
// Flags before the command: --etcd (default $CANARY_ETCD_ENDPOINTS),
// --prefix, --output text|json, --timeout, --author (default $USER, else
// the OS user). "plan get" prints the plan alone on stdout (its version,
// author and note go to stderr), so that it can be edited and applied.
//
// Exit codes: 0 done; 1 other error; 2 bad usage; 3 store unreachable;
// 4 invalid plan (nothing written); 5 version conflict; 6 version not in the
// history.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/planstore"
	"github.com/reqcanary/canary/planstore/etcdstore"
)

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitUnreachable = 3
	exitInvalid     = 4
	exitConflict    = 5
	exitNotFound    = 6
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type globals struct {
	etcd, prefix, output, author string
	timeout                      time.Duration
}

func usage(stderr io.Writer, msg string) int {
	fmt.Fprintf(stderr, "canaryctl: %s\nusage: canaryctl [--etcd HOST:PORT,...] [--prefix P] [--output text|json] [--timeout D] [--author NAME] plan get|apply|history|diff|rollback ...\n", msg)
	return exitUsage
}

func run(args []string, stdout, stderr io.Writer) int {
	var g globals
	fs := flag.NewFlagSet("canaryctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&g.etcd, "etcd", os.Getenv("CANARY_ETCD_ENDPOINTS"), "etcd endpoints, comma-separated")
	fs.StringVar(&g.prefix, "prefix", etcdstore.DefaultPrefix, "key prefix of the plan store")
	fs.StringVar(&g.output, "output", "text", "text or json")
	fs.DurationVar(&g.timeout, "timeout", 5*time.Second, "bound of each call to the store")
	fs.StringVar(&g.author, "author", defaultAuthor(), "author recorded in the history")
	if err := fs.Parse(args); err != nil {
		return usage(stderr, err.Error())
	}
	if g.output != "text" && g.output != "json" {
		return usage(stderr, fmt.Sprintf("--output must be text or json, got %q", g.output))
	}
	rest := fs.Args()
	if len(rest) < 2 || rest[0] != "plan" {
		return usage(stderr, "expected: plan get|apply|history|diff|rollback")
	}
	if g.etcd == "" {
		return usage(stderr, "--etcd (or CANARY_ETCD_ENDPOINTS) is required")
	}
	store, err := etcdstore.New(etcdstore.Config{Endpoints: strings.Split(g.etcd, ","), Prefix: g.prefix,
		Validate: canary.ValidatePlan, OpTimeout: g.timeout})
	if err != nil {
		return fail(stderr, err)
	}
	defer store.Close()
	ctx := context.Background()
	sub, sargs := rest[1], rest[2:]
	sf := flag.NewFlagSet("plan "+sub, flag.ContinueOnError)
	sf.SetOutput(io.Discard)
	file := sf.String("f", "", "plan file (apply)")
	expect := sf.Int64("expect-version", planstore.AnyVersion, "version the write is based on")
	note := sf.String("note", "", "why (recorded in the history)")
	to := sf.Int64("to", 0, "version to roll back to (default: the previous one)")
	limit := sf.Int("limit", 20, "history entries to show")
	if err := sf.Parse(sargs); err != nil {
		return usage(stderr, err.Error())
	}
	change := planstore.Change{Author: g.author, Note: *note}
	switch sub {
	case "get":
		p, err := store.Get(ctx)
		if err != nil {
			return fail(stderr, err)
		}
		// The plan alone on stdout, so that it can be edited and applied
		// as is; what it is on stderr.
		return show(stdout, g, planJSON(p), func() {
			fmt.Fprintf(stderr, "canaryctl: version %d by %s at %s: %s\n", p.Version, p.Author, p.Time.Format(time.RFC3339), p.Note)
			fmt.Fprintf(stdout, "%s", p.Data)
		})
	case "apply":
		if *file == "" {
			return usage(stderr, "plan apply needs -f FILE")
		}
		data, err := os.ReadFile(*file)
		if err != nil {
			return fail(stderr, err)
		}
		p, err := store.Apply(ctx, data, *expect, change)
		if err != nil {
			return fail(stderr, err)
		}
		return show(stdout, g, planJSON(p), func() { fmt.Fprintf(stdout, "applied version %d (was %d)\n", p.Version, p.From) })
	case "rollback":
		p, err := store.Rollback(ctx, *to, *expect, change)
		if err != nil {
			return fail(stderr, err)
		}
		return show(stdout, g, planJSON(p), func() {
			fmt.Fprintf(stdout, "rolled back to the text of version %d as version %d (was %d)\n", p.RolledBackTo, p.Version, p.From)
		})
	case "history":
		h, err := store.History(ctx, *limit)
		if err != nil {
			return fail(stderr, err)
		}
		out := make([]map[string]any, 0, len(h))
		for _, e := range h {
			m := planJSON(e.Plan)
			m["diff"] = e.Diff
			out = append(out, m)
		}
		return show(stdout, g, out, func() {
			for _, e := range h {
				fmt.Fprintf(stdout, "%d\t%s\t%s\t%s\tfrom %d\t%s\n", e.Version, e.Time.Format(time.RFC3339), e.Author, e.Action, e.From, e.Note)
			}
		})
	case "diff":
		if sf.NArg() != 2 {
			return usage(stderr, "plan diff needs two versions: plan diff A B")
		}
		a, errA := strconv.ParseInt(sf.Arg(0), 10, 64)
		b, errB := strconv.ParseInt(sf.Arg(1), 10, 64)
		if errA != nil || errB != nil {
			return usage(stderr, "plan diff: versions must be numbers")
		}
		h, err := store.History(ctx, 0)
		if err != nil {
			return fail(stderr, err)
		}
		texts := map[int64][]byte{}
		for _, e := range h {
			texts[e.Version] = e.Data
		}
		for _, v := range []int64{a, b} {
			if _, ok := texts[v]; !ok {
				return fail(stderr, fmt.Errorf("%w: version %d", planstore.ErrVersionNotFound, v))
			}
		}
		d := planstore.Diff(texts[a], texts[b])
		return show(stdout, g, map[string]any{"from": a, "to": b, "diff": d}, func() { fmt.Fprint(stdout, d) })
	default:
		return usage(stderr, fmt.Sprintf("unknown command plan %s", sub))
	}
}

func planJSON(p planstore.Plan) map[string]any {
	return map[string]any{"version": p.Version, "plan": string(p.Data), "author": p.Author, "note": p.Note,
		"time": p.Time, "action": p.Action, "from": p.From, "rolled_back_to": p.RolledBackTo}
}

func show(stdout io.Writer, g globals, v any, text func()) int {
	if g.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return exitError
		}
		return exitOK
	}
	text()
	return exitOK
}

// fail prints err and returns the exit code for its kind.
func fail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "canaryctl: %v\n", err)
	switch {
	case errors.Is(err, planstore.ErrUnavailable):
		return exitUnreachable
	case errors.Is(err, planstore.ErrInvalid):
		return exitInvalid
	case errors.Is(err, planstore.ErrVersionConflict):
		return exitConflict
	case errors.Is(err, planstore.ErrVersionNotFound):
		return exitNotFound
	}
	return exitError
}

// defaultAuthor is $USER, else the name of the OS user.
func defaultAuthor() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}
