// Command canaryctl is the operator's tool for a fleet's rollout: the plan
// (kept in a plan store, see package planstore), the kill switch, and what
// the plan decides for a tenant and user. It talks to a service's admin
// handler (canary.AdminHandler) with --server, or for the plan commands
// directly to etcd with --etcd.
//
//	canaryctl [flags] status
//	canaryctl [flags] plan get
//	canaryctl [flags] plan apply -f FILE [--expect-version N] [--note TEXT]
//	canaryctl [flags] plan history [--limit N]
//	canaryctl [flags] plan diff A B
//	canaryctl [flags] plan rollback [--to N] [--expect-version N] [--note TEXT]
//	canaryctl [flags] kill on|off|rearm [--note TEXT]
//	canaryctl [flags] ramp status|start|pause|resume|abort|promote [--note TEXT]
//	canaryctl [flags] explain [--tenant T] [--user U]
//
// Flags before the command: --server (default $CANARY_ADMIN_URL, the admin
// handler's URL such as http://127.0.0.1:8081/admin/canary), --token
// (default $CANARY_ADMIN_TOKEN; prefer the variable, a flag shows in ps),
// --etcd (default $CANARY_ETCD_ENDPOINTS; used by the plan commands when
// --server is not given), --prefix, --output text|json, --timeout,
// --author (default $USER, else the OS user). "plan get" prints the plan
// alone on stdout (its version, author and note go to stderr), so that it
// can be edited and applied.
//
// Exit codes: 0 done; 1 other error; 2 bad usage; 3 server or store
// unreachable; 4 invalid plan (nothing written); 5 version conflict;
// 6 version not in the history; 7 not authorized (missing or wrong token,
// or a read-only admin handler); 8 ramp action refused (not allowed in the
// ramp's phase, no ramp section, no ramp controller).
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
	"unicode"
	"unicode/utf8"

	"github.com/reqcanary/canary"
	"github.com/reqcanary/canary/planstore"
	"github.com/reqcanary/canary/planstore/etcdstore"
)

// Exit codes.
const (
	exitOK           = 0
	exitError        = 1
	exitUsage        = 2
	exitUnreachable  = 3
	exitInvalid      = 4
	exitConflict     = 5
	exitNotFound     = 6
	exitUnauthorized = 7
	exitRampRefused  = 8
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type globals struct {
	server, token, etcd, prefix, output, author string
	timeout                                     time.Duration
}

const usageText = `usage: canaryctl [--server URL] [--token T] [--etcd HOST:PORT,...] [--prefix P] [--output text|json] [--timeout D] [--author NAME] COMMAND
commands:
  status
  plan get | apply -f FILE [--expect-version N] [--note T] | history [--limit N] | diff A B | rollback [--to N] [--expect-version N] [--note T]
  kill on|off|rearm [--note T]
  ramp status|start|pause|resume|abort|promote [--note T]
  explain [--tenant T] [--user U]`

func usage(stderr io.Writer, msg string) int {
	fmt.Fprintf(stderr, "canaryctl: %s\n%s\n", msg, usageText)
	return exitUsage
}

func run(args []string, stdout, stderr io.Writer) int {
	var g globals
	fs := flag.NewFlagSet("canaryctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&g.server, "server", os.Getenv("CANARY_ADMIN_URL"), "admin handler URL")
	fs.StringVar(&g.token, "token", os.Getenv("CANARY_ADMIN_TOKEN"), "admin token")
	fs.StringVar(&g.etcd, "etcd", os.Getenv("CANARY_ETCD_ENDPOINTS"), "etcd endpoints, comma-separated")
	fs.StringVar(&g.prefix, "prefix", etcdstore.DefaultPrefix, "key prefix of the plan store")
	fs.StringVar(&g.output, "output", "text", "text or json")
	fs.DurationVar(&g.timeout, "timeout", 5*time.Second, "bound of each call")
	fs.StringVar(&g.author, "author", defaultAuthor(), "author recorded in the history")
	if err := fs.Parse(args); err != nil {
		return usage(stderr, err.Error())
	}
	if g.output != "text" && g.output != "json" {
		return usage(stderr, fmt.Sprintf("--output must be text or json, got %q", g.output))
	}
	if g.timeout <= 0 {
		return usage(stderr, "--timeout must be > 0")
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usage(stderr, "no command")
	}
	ctx := context.Background()
	switch rest[0] {
	case "plan":
		return planCmd(ctx, g, rest[1:], stdout, stderr)
	case "status", "kill", "explain", "ramp":
		if g.server == "" {
			return usage(stderr, rest[0]+" needs --server (or CANARY_ADMIN_URL): the admin handler's URL")
		}
		api, err := newAPIClient(g.server, g.token, g.timeout)
		if err != nil {
			return usage(stderr, err.Error())
		}
		switch rest[0] {
		case "status":
			return statusCmd(ctx, g, api, rest[1:], stdout, stderr)
		case "kill":
			return killCmd(ctx, g, api, rest[1:], stdout, stderr)
		case "ramp":
			return rampCmd(ctx, g, api, rest[1:], stdout, stderr)
		default:
			return explainCmd(ctx, g, api, rest[1:], stdout, stderr)
		}
	}
	return usage(stderr, fmt.Sprintf("unknown command %q", rest[0]))
}

// backend opens what the plan commands act on: the admin API when --server
// is given, else etcd.
func (g globals) backend() (planBackend, func(), error) {
	if g.server != "" {
		api, err := newAPIClient(g.server, g.token, g.timeout)
		return api, func() {}, err
	}
	if g.etcd == "" {
		return nil, nil, errors.New("the plan commands need --server (or CANARY_ADMIN_URL) or --etcd (or CANARY_ETCD_ENDPOINTS)")
	}
	store, err := etcdstore.New(etcdstore.Config{Endpoints: strings.Split(g.etcd, ","), Prefix: g.prefix,
		Validate: canary.ValidatePlan, OpTimeout: g.timeout})
	if err != nil {
		return nil, nil, err
	}
	return storeBackend{store}, func() { _ = store.Close() }, nil
}

func planCmd(ctx context.Context, g globals, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return usage(stderr, "expected: plan get|apply|history|diff|rollback")
	}
	sub, sargs := args[0], args[1:]
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
	switch sub {
	case "get", "apply", "history", "diff", "rollback":
	default:
		return usage(stderr, fmt.Sprintf("unknown command plan %s", sub))
	}
	if sub == "apply" && *file == "" {
		return usage(stderr, "plan apply needs -f FILE")
	}
	var a, b int64
	if sub == "diff" {
		if sf.NArg() != 2 {
			return usage(stderr, "plan diff needs two versions: plan diff A B")
		}
		var errA, errB error
		a, errA = strconv.ParseInt(sf.Arg(0), 10, 64)
		b, errB = strconv.ParseInt(sf.Arg(1), 10, 64)
		if errA != nil || errB != nil || a < 1 || b < 1 {
			return usage(stderr, "plan diff: versions must be numbers >= 1")
		}
	} else if sf.NArg() != 0 {
		return usage(stderr, fmt.Sprintf("plan %s: unexpected argument %q", sub, sf.Arg(0)))
	}
	be, closeBE, err := g.backend()
	if err != nil {
		return usage(stderr, err.Error())
	}
	defer closeBE()
	change := planstore.Change{Author: g.author, Note: *note}
	if err := checkChangeText(change); err != nil {
		return usage(stderr, err.Error())
	}
	switch sub {
	case "get":
		p, err := be.Get(ctx)
		if err != nil {
			return fail(stderr, err)
		}
		// The plan alone on stdout, so that it can be edited and applied
		// as is; what it is on stderr.
		return show(stdout, g, planJSON(p), func() {
			fmt.Fprintf(stderr, "canaryctl: version %d by %s at %s: %s\n", p.Version, printable(p.Author), p.Time.Format(time.RFC3339), printable(p.Note))
			fmt.Fprintf(stdout, "%s", p.Data)
		})
	case "apply":
		data, err := os.ReadFile(*file)
		if err != nil {
			return fail(stderr, err)
		}
		p, err := be.Apply(ctx, data, *expect, change)
		if err != nil {
			return fail(stderr, err)
		}
		return show(stdout, g, planJSON(p), func() { fmt.Fprintf(stdout, "applied version %d (was %d)\n", p.Version, p.From) })
	case "rollback":
		p, err := be.Rollback(ctx, *to, *expect, change)
		if err != nil {
			return fail(stderr, err)
		}
		return show(stdout, g, planJSON(p), func() {
			fmt.Fprintf(stdout, "rolled back to the text of version %d as version %d (was %d)\n", p.RolledBackTo, p.Version, p.From)
		})
	case "history":
		h, err := be.History(ctx, *limit)
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
				fmt.Fprintf(stdout, "%d\t%s\t%s\t%s\tfrom %d\t%s\n", e.Version, e.Time.Format(time.RFC3339), printable(e.Author), e.Action, e.From, printable(e.Note))
			}
		})
	default: // diff
		d, err := be.Diff(ctx, a, b)
		if err != nil {
			return fail(stderr, err)
		}
		return show(stdout, g, map[string]any{"from": a, "to": b, "diff": d}, func() { fmt.Fprint(stdout, d) })
	}
}

func statusCmd(ctx context.Context, g globals, api *apiClient, args []string, stdout, stderr io.Writer) int {
	if len(args) != 0 {
		return usage(stderr, "status takes no arguments")
	}
	raw, s, err := api.status(ctx)
	if err != nil {
		return fail(stderr, err)
	}
	return show(stdout, g, raw, func() {
		printStatus(stdout, s)
		// The ramp, when the handler has a controller (and the token).
		if _, v, err := api.ramp(ctx, "status", "", ""); err == nil {
			printRamp(stdout, v)
		}
	})
}

func printStatus(w io.Writer, s statusView) {
	fmt.Fprintf(w, "plan        version %d, canary %g %%", s.Plan.Version, s.Plan.CanaryPercent)
	if ps := s.PlanStore; ps != nil {
		fmt.Fprintf(w, ", store version %d (%s)", ps.Version, ps.Source)
		if ps.Author != "" {
			fmt.Fprintf(w, " by %s", ps.Author)
		}
		if ps.Error != "" {
			fmt.Fprintf(w, "; store: %s", ps.Error)
		}
	}
	fmt.Fprintln(w)
	if s.PlanError != "" {
		fmt.Fprintf(w, "plan error  %s\n", s.PlanError)
	}
	if s.KillSwitch.On {
		fmt.Fprintf(w, "kill switch ON (%s; held by %s)\n", s.KillSwitch.Reason, strings.Join(s.KillSwitch.Sources, ", "))
	} else {
		fmt.Fprintln(w, "kill switch off")
	}
	switch {
	case !s.Guard.Enabled:
		fmt.Fprintln(w, "guard       off")
	case s.Guard.Tripped && s.Guard.Trip != nil:
		fmt.Fprintf(w, "guard       TRIPPED: %s\n", s.Guard.Trip.Summary)
	case s.Guard.Tripped:
		fmt.Fprintln(w, "guard       TRIPPED (elsewhere in the fleet)")
	default:
		fmt.Fprintf(w, "guard       armed, window %s\n", s.Guard.Window)
	}
	if s.Guard.Enabled {
		for _, c := range []struct {
			name string
			f    canary.CohortFigures
		}{{"stable", s.Guard.Stable}, {"canary", s.Guard.Canary}} {
			fmt.Fprintf(w, "  %-9s %d requests, %d failures (%.2f %%), p95 %.1f ms\n", c.name, c.f.Requests, c.f.Failures,
				100*c.f.FailureRate, c.f.P95Millis)
		}
	}
	if f := s.Fleet; f != nil {
		state := "off"
		if f.On {
			state = "ON: " + f.Reason
		}
		fmt.Fprintf(w, "fleet       %s (key %s, instance %s)", state, f.Key, f.Instance)
		if f.Pending {
			fmt.Fprint(w, "; an ON is pending: Redis not written yet")
		}
		if f.Error != "" {
			fmt.Fprintf(w, "; error: %s", f.Error)
		}
		fmt.Fprintln(w)
	}
}

func killCmd(ctx context.Context, g globals, api *apiClient, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return usage(stderr, "expected: kill on|off|rearm [--note TEXT]")
	}
	action := args[0]
	if action != "on" && action != "off" && action != "rearm" {
		return usage(stderr, fmt.Sprintf("kill: want on, off or rearm, got %q", action))
	}
	sf := flag.NewFlagSet("kill", flag.ContinueOnError)
	sf.SetOutput(io.Discard)
	note := sf.String("note", "", "why (logged and audited)")
	if err := sf.Parse(args[1:]); err != nil {
		return usage(stderr, err.Error())
	}
	if sf.NArg() != 0 {
		return usage(stderr, fmt.Sprintf("kill %s: unexpected argument %q", action, sf.Arg(0)))
	}
	raw, s, pending, err := api.kill(ctx, action, *note, g.author)
	if err != nil {
		return fail(stderr, err)
	}
	return show(stdout, g, raw, func() {
		if pending {
			fmt.Fprintln(stderr, "canaryctl: the kill switch is on in this instance, but the fleet's switch is not written yet (Redis did not answer); the instance writes it when Redis answers")
		}
		printStatus(stdout, s)
	})
}

func rampCmd(ctx context.Context, g globals, api *apiClient, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return usage(stderr, "expected: ramp status|start|pause|resume|abort|promote [--note TEXT]")
	}
	action := args[0]
	switch action {
	case "status", "start", "pause", "resume", "abort", "promote":
	default:
		return usage(stderr, fmt.Sprintf("ramp: want status, start, pause, resume, abort or promote, got %q", action))
	}
	sf := flag.NewFlagSet("ramp", flag.ContinueOnError)
	sf.SetOutput(io.Discard)
	note := sf.String("note", "", "why (recorded in the plan history)")
	if err := sf.Parse(args[1:]); err != nil {
		return usage(stderr, err.Error())
	}
	if sf.NArg() != 0 {
		return usage(stderr, fmt.Sprintf("ramp %s: unexpected argument %q", action, sf.Arg(0)))
	}
	raw, v, err := api.ramp(ctx, action, *note, g.author)
	if err != nil {
		return fail(stderr, err)
	}
	return show(stdout, g, raw, func() { printRamp(stdout, v) })
}

func printRamp(w io.Writer, v rampView) {
	fmt.Fprintf(w, "ramp        %s", v.Phase)
	if v.Steps > 0 {
		fmt.Fprintf(w, ", step %d/%d at %g %%", v.Step+1, v.Steps, v.Percent)
	}
	if v.Hold != "" && v.Hold != "0s" {
		fmt.Fprintf(w, ", hold %s, %s left", v.Hold, v.TimeLeft)
	}
	if v.Leader != "" {
		fmt.Fprintf(w, ", leader %s", v.Leader)
	}
	fmt.Fprintln(w)
	if v.Reason != "" {
		fmt.Fprintf(w, "  why       %s\n", v.Reason)
	}
	for _, gt := range v.Gates {
		fmt.Fprintf(w, "  gate %-8s %s %s\n", gt.Gate, gt.Verdict, gt.Summary)
	}
}

func explainCmd(ctx context.Context, g globals, api *apiClient, args []string, stdout, stderr io.Writer) int {
	sf := flag.NewFlagSet("explain", flag.ContinueOnError)
	sf.SetOutput(io.Discard)
	tn := sf.String("tenant", "", "tenant id")
	u := sf.String("user", "", "user id")
	if err := sf.Parse(args); err != nil {
		return usage(stderr, err.Error())
	}
	if sf.NArg() != 0 {
		return usage(stderr, fmt.Sprintf("explain: unexpected argument %q", sf.Arg(0)))
	}
	if *tn == "" && *u == "" {
		return usage(stderr, "explain needs --tenant, --user or both")
	}
	x, err := api.explain(ctx, *tn, *u)
	if err != nil {
		return fail(stderr, err)
	}
	return show(stdout, g, x, func() {
		fmt.Fprintf(stdout, "%s (rule %s)\n", x.Cohort, x.Reason)
		if x.KillSwitch {
			fmt.Fprintf(stdout, "kill switch on; without it the plan says %s (rule %s)\n", x.PlanCohort, x.PlanReason)
		}
		if x.Bucket >= 0 {
			fmt.Fprintf(stdout, "bucket %d of 10000; canary below %d (%g %%)\n", x.Bucket, x.CanaryBelow, x.Percent)
		} else {
			fmt.Fprintln(stdout, "no bucket: neither tenant nor user")
		}
		fmt.Fprintf(stdout, "plan version %d", x.PlanVersion)
		if x.StoreVersion != 0 {
			fmt.Fprintf(stdout, ", store version %d", x.StoreVersion)
		}
		fmt.Fprintln(stdout)
		if x.UserHash != "" {
			fmt.Fprintf(stdout, "user hash %s\n", x.UserHash)
		}
	})
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
	case errors.Is(err, errUnauthorized):
		return exitUnauthorized
	case errors.Is(err, errRampRefused):
		return exitRampRefused
	case errors.Is(err, errUnreachable), errors.Is(err, planstore.ErrUnavailable):
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

// printable returns s with control and format characters escaped (\u009b,
// \u202e…), so that a note or author cannot drive the terminal.
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// checkChangeText refuses, before anything is sent, an author or note the
// admin handler would refuse (control or format characters, too long), so
// that writes directly on etcd (--etcd) obey the same rule.
func checkChangeText(c planstore.Change) error {
	for _, f := range []struct {
		name, v string
		max     int
	}{{"--author", c.Author, canary.MaxAdminAuthorLen}, {"--note", c.Note, canary.MaxAdminNoteLen}} {
		if len(f.v) > f.max {
			return fmt.Errorf("%s: longer than %d bytes", f.name, f.max)
		}
		if !utf8.ValidString(f.v) {
			return fmt.Errorf("%s: not valid UTF-8", f.name)
		}
		for _, r := range f.v {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				return fmt.Errorf("%s: contains a control or format character (%U)", f.name, r)
			}
		}
	}
	return nil
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
